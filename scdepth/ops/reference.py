"""Pure-PyTorch references of the fused ops: same signatures and semantics, built from
standard ops. They are the oracle of the tests and the baseline of the benchmarks.

16-bit inputs are computed in float32 and the results cast back, as the kernels do.
"""

import torch
import torch.nn.functional as F

from . import _checks

MIN_Z = 1e-3  # a point is sampled only in front of the source camera (csrc/warp/warp.h kMinZ)


def _compute_dtype(dtype):
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def inverse_warp(src, depth, pose, K):
    """Reference of scdepth.ops.inverse_warp (see there for the contract)."""
    _checks.check_inverse_warp(src, depth, pose, K)
    _checks.check_intrinsics(K)
    out_dtype = src.dtype
    ct = _compute_dtype(out_dtype)
    src, depth, pose, K = (t.to(ct) for t in (src, depth, pose, K))
    B, C, H, W = src.shape
    v, u = torch.meshgrid(
        torch.arange(H, dtype=ct, device=src.device),
        torch.arange(W, dtype=ct, device=src.device),
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)]).view(1, 3, H * W)
    d = depth.reshape(B, 1, H * W)
    X = d * (torch.linalg.inv(K) @ pix)
    Xs = pose[:, :, :3] @ X + pose[:, :, 3:]
    z = Xs[:, 2:3]
    front = torch.isfinite(d) & (d > 0) & (z > MIN_Z)
    uv = (K[:, :2] @ Xs) / torch.where(front, z, torch.ones_like(z))
    uv = torch.where(front, uv, torch.full_like(uv, -2.0))  # -2: no corner inside the image
    # align_corners=False with x = (2u + 1) / W - 1 samples pixel coordinate u exactly as
    # align_corners=True with x = 2u / (W - 1) - 1 does, and stays defined for W = 1.
    size = torch.tensor([W, H], dtype=ct, device=src.device).view(1, 2, 1)
    grid = ((2 * uv + 1) / size - 1).transpose(1, 2).reshape(B, H, W, 2)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = (uv[:, 0:1] >= 0) & (uv[:, 0:1] <= W - 1) & (uv[:, 1:2] >= 0) & (uv[:, 1:2] <= H - 1)
    valid = (front & inside).to(ct)
    shape = (B, 1, H, W)
    return (
        warped.to(out_dtype),
        z.reshape(shape).to(out_dtype),
        valid.reshape(shape).to(out_dtype),
    )


SSIM_C1 = 0.01**2  # csrc/photometric/photometric.h kC1: (K1 L)^2, K1 = 0.01, L = 1
SSIM_C2 = 0.03**2  # kC2: (K2 L)^2, K2 = 0.03


def photometric_error(tgt, warped, weight=None, *, alpha=0.85, window=3):
    """Reference of scdepth.ops.photometric_error (see there for the contract)."""
    _checks.check_photometric(tgt, warped, weight, alpha, window)
    out_dtype = tgt.dtype
    ct = _compute_dtype(out_dtype)
    x, y = tgt.to(ct), warped.to(ct)
    p = window // 2
    xp = F.pad(x, (p, p, p, p), mode="reflect")
    yp = F.pad(y, (p, p, p, p), mode="reflect")

    def pool(t):
        return F.avg_pool2d(t, window, stride=1)

    mu_x, mu_y = pool(xp), pool(yp)
    sigma_x = pool(xp * xp) - mu_x**2
    sigma_y = pool(yp * yp) - mu_y**2
    sigma_xy = pool(xp * yp) - mu_x * mu_y
    ssim_n = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    ssim_d = (mu_x**2 + mu_y**2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    ssim = ssim_n / ssim_d
    diff = (x - y).abs()
    photo = (1 - alpha) * diff.clamp(0, 1) + alpha * ((1 - ssim) / 2).clamp(0, 1)
    photo = photo.mean(1, keepdim=True)
    if weight is not None:
        photo = photo * weight.to(ct)
    return photo.to(out_dtype), diff.mean(1, keepdim=True).to(out_dtype)
