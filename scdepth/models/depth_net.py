"""DepthNet: ResNet encoder and a Monodepth2-style decoder, single (finest) output scale."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from .encoder import ResnetEncoder

# Disparity range of SC-Depth / Monodepth2: disp = ALPHA * sigmoid(x) + BETA, depth = 1 / disp.
ALPHA, BETA = 10.0, 0.01


class ConvBlock(nn.Sequential):
    """Reflection-padded 3x3 convolution, then ELU."""

    def __init__(self, cin, cout, act=True):
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
        super().__init__(*layers, *([nn.ELU(inplace=True)] if act else []))


class DepthDecoder(nn.Module):
    CHANNELS = (16, 32, 64, 128, 256)

    def __init__(self, enc_channels):
        super().__init__()
        dec = self.CHANNELS
        self.up0 = nn.ModuleList()
        self.up1 = nn.ModuleList()
        for i in range(4, -1, -1):
            cin = enc_channels[-1] if i == 4 else dec[i + 1]
            self.up0.append(ConvBlock(cin, dec[i]))
            skip = enc_channels[i - 1] if i > 0 else 0
            self.up1.append(ConvBlock(dec[i] + skip, dec[i]))
        self.disp = ConvBlock(dec[0], 1, act=False)

    def forward(self, features):
        x = features[-1]
        for j, i in enumerate(range(4, -1, -1)):
            x = F.interpolate(self.up0[j](x), scale_factor=2, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], 1)
            x = self.up1[j](x)
        return ALPHA * torch.sigmoid(self.disp(x)) + BETA


class DepthNet(nn.Module):
    """[B, 3, H, W] normalised images -> depth [B, 1, H, W] (H and W multiples of 32)."""

    def __init__(self, layers=18, pretrained=False):
        super().__init__()
        self.encoder = ResnetEncoder(layers, pretrained, num_images=1)
        self.decoder = DepthDecoder(self.encoder.channels)

    def forward(self, img):
        if img.shape[-2] % 32 or img.shape[-1] % 32:
            raise ValueError(
                f"image height and width must be multiples of 32, got {list(img.shape)}"
            )
        return 1.0 / self.decoder(self.encoder(img))
