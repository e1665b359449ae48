"""inverse_warp: the trainer's call (image stacked with depth, C = 4) at the dataset sizes."""

import torch

from benchmarks.common import Case
from scdepth.geometry import pose_vec2mat

C = 4


def inputs(B, H, W, device, dtype, requires_grad):
    g = torch.Generator().manual_seed(0)
    src = torch.rand(B, C, H, W, generator=g)
    depth = 1 + 9 * torch.rand(B, 1, H, W, generator=g)
    vec = torch.cat(
        [0.05 * torch.randn(B, 3, generator=g), 0.01 * torch.randn(B, 3, generator=g)], 1
    )
    pose = pose_vec2mat(vec)
    f = 0.6 * W
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]]).expand(B, 3, 3).contiguous()
    out = [t.to(device=device, dtype=dtype) for t in (src, depth, pose, K)]
    for t in out[:3]:
        t.requires_grad_(requires_grad)
    return out


def make(B, H, W):
    def build(backend, device, dtype, backward):
        from scdepth.ops import get_backend

        op = get_backend(backend).inverse_warp
        src, depth, pose, K = inputs(B, H, W, device, dtype, backward)
        grads = None
        if backward:
            grads = [torch.ones_like(src), torch.ones_like(depth)]

        def forward():
            warped, z, _ = op(src, depth, pose, K)
            return [warped, z]

        return forward, grads

    return build


def bytes_moved(B, H, W):
    # forward reads src and depth, writes warped, z', valid; backward reads the output grads,
    # src and depth again, writes grad_src and grad_depth.
    def count(dtype):
        e = torch.finfo(dtype).bits // 8
        return e * B * H * W * ((C + 1) + (C + 2) + (C + 1) + (C + 1) + (C + 1))

    return count


def case_at(name, B, H, W):
    """The benchmark at one size (run.py calls it for every size it runs)."""
    return Case.at("inverse_warp", f"{name} B{B} C{C} {H}x{W}", (B, H, W), make, bytes_moved)
