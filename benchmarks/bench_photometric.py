"""photometric_error: the trainer's call (RGB target vs warped source, with a weight mask) at
the dataset sizes, SSIM window 3 (SC-Depth paper) and 7 (public SC-Depth code)."""

import torch

from benchmarks.common import Case

WINDOWS = (3, 7)
C = 3


def inputs(B, H, W, device, dtype, requires_grad):
    g = torch.Generator().manual_seed(0)
    tgt = torch.rand(B, C, H, W, generator=g)
    warped = (tgt + 0.1 * torch.randn(B, C, H, W, generator=g)).clamp(0, 1)
    weight = torch.rand(B, 1, H, W, generator=g)
    out = [t.to(device=device, dtype=dtype) for t in (tgt, warped, weight)]
    for t in out:
        t.requires_grad_(requires_grad)
    return out


def make(B, H, W, window):
    def build(backend, device, dtype, backward):
        from scdepth.ops import get_backend

        op = get_backend(backend).photometric_error
        tgt, warped, weight = inputs(B, H, W, device, dtype, backward)
        grads = None
        if backward:
            grads = [torch.ones(B, 1, H, W, device=device, dtype=dtype)] * 2

        def forward():
            return list(op(tgt, warped, weight, window=window))

        return forward, grads

    return build


def bytes_moved(B, H, W):
    # Forward reads tgt, warped (C planes each) and weight, writes photo and l1; backward
    # (recomputing the statistics) reads tgt, warped, weight and both output gradients and
    # writes grad_tgt, grad_warped and grad_weight.
    def count(dtype):
        e = torch.finfo(dtype).bits // 8
        return e * B * H * W * ((2 * C + 1 + 2) + (2 * C + 3) + (2 * C + 1))

    return count


def case_at(name, B, H, W):
    """The benchmarks at one size, one per SSIM window (run.py calls it for every size it
    runs)."""
    return [
        Case.at(
            "photometric_error",
            f"{name} B{B} C{C} {H}x{W} k{k}",
            (B, H, W),
            lambda B, H, W, k=k: make(B, H, W, k),
            bytes_moved,
            meta={"window": k},
        )
        for k in WINDOWS
    ]
