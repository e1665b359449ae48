"""PoseNet: ResNet on the stacked image pair, 6-DoF relative pose [t, euler] x 0.01."""

import torch
import torch.nn as nn

from .encoder import ResnetEncoder

POSE_SCALE = 0.01  # SC-Depth / Monodepth2 scale the raw output so early poses are small


class PoseNet(nn.Module):
    """(img1, img2) [B, 3, H, W] each -> [B, 6] = [tx, ty, tz, rx, ry, rz] of the transform
    that maps points of img1's camera into img2's camera (use with pose_vec2mat)."""

    OUTPUTS = 6  # [t, euler]; RectifyNet predicts the 3 angles only

    def __init__(self, layers=18, pretrained=False):
        super().__init__()
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
        out = self.decoder(self.encoder(torch.cat([img1, img2], 1))[-1])
        return POSE_SCALE * out.mean((2, 3))
