"""PoseNet: ResNet on the stacked image pair, 6-DoF relative pose [t, euler] x 0.01."""

import torch
import torch.nn as nn

from .encoder import ResnetEncoder

POSE_SCALE = 0.01  # SC-Depth / Monodepth2 scale the raw output so early poses are small
# The rotation's default scale (raw output x this = radians): SC-Depth's and Monodepth2's,
# the translation's. A trained PoseNet under-predicts rotation with it, but a larger one gave
# worse poses (RESULTS.md, "The PoseNet against constant velocity"); config
# pose_rotation_scale sets another.
ROTATION_SCALE = POSE_SCALE


class PoseNet(nn.Module):
    """(img1, img2) [B, 3, H, W] each -> [B, 6] = [tx, ty, tz, rx, ry, rz] of the transform
    that maps points of img1's camera into img2's camera (use with pose_vec2mat)."""

    OUTPUTS = 6  # [t, euler]; RectifyNet predicts the 3 angles only

    def __init__(self, layers=18, pretrained=False, rotation_scale=ROTATION_SCALE):
        super().__init__()
        self.rotation_scale = rotation_scale
        self.encoder = ResnetEncoder(layers, pretrained, num_images=2)
        c = self.encoder.channels[-1]
        self.decoder = nn.Sequential(
            nn.Conv2d(c, 256, 1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, self.OUTPUTS, 1),
        )

    def forward(self, img1, img2):
        out = self.decoder(self.encoder(torch.cat([img1, img2], 1))[-1]).mean((2, 3))
        rotation = self.rotation_scale * out[:, -3:]
        if self.OUTPUTS == 3:
            return rotation
        return torch.cat([POSE_SCALE * out[:, :3], rotation], 1)
