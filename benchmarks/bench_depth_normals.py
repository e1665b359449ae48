"""depth_normals: the trainer's call (the predicted depth's normals, with a gradient) at the
dataset sizes, forward and backward."""

import torch

from benchmarks.common import Case


def inputs(B, H, W, device, dtype):
    g = torch.Generator().manual_seed(0)
    depth = 1 + 9 * torch.rand(B, 1, H, W, generator=g)
    f = 0.6 * W
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]]).expand(B, 3, 3).contiguous()
    grad = torch.randn(B, 3, H, W, generator=g)
    return [t.to(device=device, dtype=dtype) for t in (depth, K, grad)]


def make(B, H, W):
    def build(backend, device, dtype, backward):
        from scdepth.ops import get_backend

        op = get_backend(backend).depth_normals
        depth, K, grad = inputs(B, H, W, device, dtype)
        depth.requires_grad_(backward)

        def forward():
            return [op(depth, K)]

        return forward, [grad] if backward else None

    return build


def bytes_moved(B, H, W):
    # forward reads depth, writes the 3 normal planes; backward reads their gradient and the
    # depth again, writes grad_depth.
    def count(dtype):
        e = torch.finfo(dtype).bits // 8
        return e * B * H * W * ((1 + 3) + (3 + 1 + 1))

    return count


def case_at(name, B, H, W):
    """The benchmark at one size (run.py calls it for every size it runs)."""
    return Case.at("depth_normals", f"{name} B{B} {H}x{W}", (B, H, W), make, bytes_moved)
