"""Camera geometry in PyTorch: pose vectors, back-projection."""

import torch


def euler2mat(angle):
    """Rotation matrices [B, 3, 3] from Euler angles [B, 3] = (rx, ry, rz) in radians,
    R = Rx @ Ry @ Rz (the SC-Depth / SfMLearner convention)."""
    x, y, z = angle.unbind(-1)
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    Rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1)
    Ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1)
    Rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1)
    shape = angle.shape[:-1] + (3, 3)
    return Rx.view(shape) @ Ry.view(shape) @ Rz.view(shape)


def mat2euler(R):
    """Euler angles [..., 3] = (rx, ry, rz) of rotation matrices [..., 3, 3], the inverse of
    euler2mat for |ry| < pi / 2: R = Rx @ Ry @ Rz has R[0, 2] = sin ry,
    (R[1, 2], R[2, 2]) = cos ry (-sin rx, cos rx), (R[0, 1], R[0, 0]) = cos ry (-sin rz, cos rz)."""
    ry = torch.asin(R[..., 0, 2].clamp(-1, 1))
    rx = torch.atan2(-R[..., 1, 2], R[..., 2, 2])
    rz = torch.atan2(-R[..., 0, 1], R[..., 0, 0])
    return torch.stack([rx, ry, rz], -1)


def pose_vec2mat(vec):
    """[B, 6] pose vectors [tx, ty, tz, rx, ry, rz] -> [B, 3, 4] transforms [R | t]."""
    if vec.dim() != 2 or vec.shape[-1] != 6:
        raise ValueError(f"vec must be [B, 6] (tx, ty, tz, rx, ry, rz), got {list(vec.shape)}")
    return torch.cat([euler2mat(vec[:, 3:]), vec[:, :3].unsqueeze(-1)], dim=2)


def pixel_rays(K, H, W):
    """K^-1 [u, v, 1]^T for every pixel: [B, 3, H, W] (pixel centres at integer coordinates)."""
    v, u = torch.meshgrid(
        torch.arange(H, dtype=K.dtype, device=K.device),
        torch.arange(W, dtype=K.dtype, device=K.device),
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)]).view(1, 3, H * W)
    return (torch.linalg.inv(K) @ pix).view(-1, 3, H, W)


def backproject(depth, K):
    """Camera-frame 3-D points [B, 3, H, W] of depth [B, 1, H, W]."""
    return depth * pixel_rays(K, depth.shape[-2], depth.shape[-1])


def sobel(x):
    """(d/du, d/dv) of every channel of x [B, C, H, W], each [B, C, H, W]: the normalised
    Sobel filter (sum of absolute weights 1) with replicate padding, the image gradient
    SC-DepthV3 takes through kornia. Written as separable differences of shifted views,
    which is several times faster on the CPU than a grouped 3x3 convolution."""
    p = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    du = p[..., 2:] - p[..., :-2]  # central differences along u, [B, C, H + 2, W]
    dv = p[..., 2:, :] - p[..., :-2, :]  # along v, [B, C, H, W + 2]
    return (
        (du[..., :-2, :] + 2 * du[..., 1:-1, :] + du[..., 2:, :]) / 8,
        (dv[..., :-2] + 2 * dv[..., 1:-1] + dv[..., 2:]) / 8,
    )
