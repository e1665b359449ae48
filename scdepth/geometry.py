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


def pose_vec2mat(vec):
    """[B, 6] pose vectors [tx, ty, tz, rx, ry, rz] -> [B, 3, 4] transforms [R | t]."""
    if vec.dim() != 2 or vec.shape[-1] != 6:
        raise ValueError(f"vec must be [B, 6] (tx, ty, tz, rx, ry, rz), got {list(vec.shape)}")
    return torch.cat([euler2mat(vec[:, 3:]), vec[:, :3].unsqueeze(-1)], dim=2)
