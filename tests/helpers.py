"""Input generators shared by the tests."""

import torch
import torch.nn.functional as F

from scdepth.geometry import pose_vec2mat


def smooth_field(B, C, H, W, *, generator, dtype=torch.float64, cells=4):
    """Random images with content at every scale down to a few pixels."""
    coarse = torch.randn(
        B, C, max(H // cells, 2), max(W // cells, 2), generator=generator, dtype=torch.float64
    )
    return F.interpolate(coarse, size=(H, W), mode="bilinear", align_corners=True).to(dtype)


def intrinsics(B, H, W, dtype=torch.float64):
    f = 0.9 * max(H, W)
    K = torch.tensor(
        [[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    return K.expand(B, 3, 3).to(dtype).contiguous()


def warp_inputs(
    B=3, C=4, H=12, W=16, *, seed=0, dtype=torch.float64, device="cpu", smooth=False, extreme=True
):
    """src, depth, pose, K. With `extreme`, the last image moves the camera so that part of
    the target lands outside the source and part behind it (z' <= 1e-3)."""
    g = torch.Generator().manual_seed(seed)
    src = (
        smooth_field(B, C, H, W, generator=g)
        if smooth
        else torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    )
    depth = 1.0 + 4.0 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    vec = torch.cat(
        [
            0.3 * torch.randn(B, 3, generator=g, dtype=torch.float64),
            0.05 * torch.randn(B, 3, generator=g, dtype=torch.float64),
        ],
        1,
    )
    if extreme and B > 1:
        vec[-1] = torch.tensor([0.2, 0.1, -2.0, 0.05, 0.1, 0.0], dtype=torch.float64)
    pose = pose_vec2mat(vec)
    K = intrinsics(B, H, W)
    return tuple(t.to(device=device, dtype=dtype) for t in (src, depth, pose, K))
