"""inverse_warp against the public code's warp (benchmarks/public_baseline.py: the image and
the reference depth sampled by two grid_sample calls), forward + backward at KITTI size,
in turns in one process.

    python -m benchmarks.bench_warp_public [--size B H W] [--repeat N] [--dtype float32]

Ours samples image and depth in one call (C = 4, as the trainer stacks them); gradients
flow to the image, both depths and the pose, as in training, from fixed random upstream
gradients (dense, as the photometric loss hands them back: a constant one from .sum() would
be an expanded tensor that both sides treat specially). "ours, portable" is the same op
with its AVX2 row kernels switched off (SCDEPTH_CPU_SIMD=0): the code of CPUs without AVX2,
and the op as it was before those kernels.
"""

from __future__ import annotations

import argparse
import os
import statistics

import torch

from benchmarks import public_baseline
from benchmarks.common import describe, interleaved_timings, machine, paired_ratio
from scdepth import ops
from scdepth.geometry import pose_vec2mat


def inputs(B, H, W, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(B, 3, H, W, generator=g, dtype=dtype)
    depth = 1 + 9 * torch.rand(B, 1, H, W, generator=g, dtype=dtype)
    ref_depth = 1 + 9 * torch.rand(B, 1, H, W, generator=g, dtype=dtype)
    vec = torch.cat(
        [0.05 * torch.randn(B, 3, generator=g), 0.01 * torch.randn(B, 3, generator=g)], 1
    ).to(dtype)
    f = 0.6 * W
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]], dtype=dtype).expand(B, 3, 3)
    upstream = (
        torch.randn(B, 4, H, W, generator=g, dtype=dtype),
        torch.randn(B, 1, H, W, generator=g, dtype=dtype),
    )
    return img, depth, ref_depth, vec, K.contiguous(), upstream


def ours(img, depth, ref_depth, vec, K, upstream, backward):
    leaves = [t.detach().requires_grad_(backward) for t in (img, depth, ref_depth, vec)]
    img, depth, ref_depth, vec = leaves
    warped, z, _ = ops.inverse_warp(torch.cat([img, ref_depth], 1), depth, pose_vec2mat(vec), K)
    if backward:
        torch.autograd.backward([warped, z], list(upstream))


def portable(*args, **kwargs):
    os.environ["SCDEPTH_CPU_SIMD"] = "0"
    try:
        ours(*args, **kwargs)
    finally:
        del os.environ["SCDEPTH_CPU_SIMD"]


def public(img, depth, ref_depth, vec, K, upstream, backward):
    leaves = [t.detach().requires_grad_(backward) for t in (img, depth, ref_depth, vec)]
    img, depth, ref_depth, vec = leaves
    warped, projected, z = public_baseline.inverse_warp(img, depth, ref_depth, vec, K)
    if backward:
        g, gz = upstream
        torch.autograd.backward([warped, projected, z], [g[:, :3], g[:, 3:], gz])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, nargs=3, default=(4, 256, 832), metavar=("B", "H", "W"))
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    a = ap.parse_args(argv)
    x = inputs(*a.size, getattr(torch, a.dtype))
    print(describe(machine("cpu")))
    print(
        f"inverse_warp {a.dtype} B{a.size[0]} {a.size[1]}x{a.size[2]}, {a.repeat} rounds in turns"
    )
    for backward in (False, True):
        with torch.set_grad_enabled(backward):
            t = interleaved_timings(
                {
                    "ours": lambda b=backward: ours(*x, backward=b),
                    "ours, portable": lambda b=backward: portable(*x, backward=b),
                    "public": lambda b=backward: public(*x, backward=b),
                },
                "cpu",
                warmup=2,
                repeat=a.repeat,
            )
        what = "forward + backward" if backward else "forward"
        print(
            f"{what:>18}: ours {statistics.median(t['ours']) * 1e3:7.1f} ms, public "
            f"{statistics.median(t['public']) * 1e3:7.1f} ms, "
            f"ours {paired_ratio(t['public'], t['ours']):.2f}x faster; portable path "
            f"{statistics.median(t['ours, portable']) * 1e3:7.1f} ms "
            f"({paired_ratio(t['public'], t['ours, portable']):.2f}x public, ours "
            f"{paired_ratio(t['ours, portable'], t['ours']):.2f}x portable)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
