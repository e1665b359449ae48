"""PoseNet: ResNet on the stacked image pair, 6-DoF relative pose [t x 0.01, euler x s_r]."""

import torch
import torch.nn as nn

from .encoder import ResnetEncoder

POSE_SCALE = 0.01  # SC-Depth / Monodepth2 scale the raw output so early poses are small
# The rotation's scale (raw output x this = radians). SC-Depth and Monodepth2 scale it by
# POSE_SCALE too; then a hand-held step of 3 degrees needs a raw output of 5, which a few
# thousand Adam steps do not reach: the rotation stays near zero and the translation learns
# to mimic it (benchmarks/pose_diagnosis.py). Checkpoints record the scale they were trained
# with (config pose_rotation_scale).
ROTATION_SCALE = 0.1


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
