"""sample_dynamic_pairs: the trainer's call (score = D_diff with out-of-view zeros, pseudo
depth) at the dataset sizes. Forward only: the op has no backward."""

import torch

from benchmarks.common import Case


def inputs(B, H, W, device, dtype):
    g = torch.Generator().manual_seed(0)
    score = torch.rand(B, 1, H, W, generator=g)
    score[torch.rand(B, 1, H, W, generator=g) < 0.05] = 0  # out-of-view pixels
    pd = 0.5 + 10 * torch.rand(B, 1, H, W, generator=g)
    return score.to(device=device, dtype=dtype), pd.to(device=device, dtype=dtype)


def make(B, H, W):
    def build(backend, device, dtype, backward):
        from scdepth.ops import get_backend

        op = get_backend(backend).sample_dynamic_pairs
        score, pd = inputs(B, H, W, device, dtype)

        def forward():
            return list(op(score, pd, ratio=0.2, tau=0.15, seed=0))

        return forward, None  # no gradients: forward only

    return build


def bytes_moved(B, H, W):
    # reads score, writes idx_a, idx_b, label and reads two pseudo depths per pair (k = 0.2 N)
    def count(dtype):
        e = torch.finfo(dtype).bits // 8
        return B * H * W * (e + 0.2 * (8 + 8 + 1 + 2 * e))

    return count


def case_at(name, B, H, W):
    """The benchmark at one size (run.py calls it for every size it runs)."""
    return Case.at("sample_dynamic_pairs", f"{name} B{B} {H}x{W}", (B, H, W), make, bytes_moved)
