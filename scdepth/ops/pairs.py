"""sample_dynamic_pairs: fake registration of scdepth::sample_dynamic_pairs and its public entry."""

import torch

from . import _checks, _ext


def sample_dynamic_pairs(score, pseudo_depth, *, ratio=0.2, tau=0.15, seed):
    """Pairs for the depth ranking loss of SC-DepthV3's dynamic region refinement.

    score [B, 1, H, W]: higher means more likely dynamic (the trainer passes D_diff); NaN counts
        as the lowest score, -0 equals +0.
    pseudo_depth [B, 1, H, W]: relative depth (only ratios matter). Each input may have any
        floating dtype, independently of the other.
    ratio: in (0, 1). With N = H * W, k = min(floor(ratio * N), N - 1) (floor in float64).
    tau: >= 0, the ordinal margin (SC-DepthV3: 0.15).
    seed: int; the same seed gives the same pairs on the CPU and on CUDA.

    For image b, A_b holds the k pixels of highest score, ties broken by lower flat index
    (exactly the first k of a stable descending sort); S_b holds the other N - k. Returns
    idx_a [B, k] int64: A_b's flat indices in increasing order; idx_b [B, k] int64: for the
    i-th element of A_b, a partner uniform over S_b (with replacement), drawn from
    Philox4x32-10 keyed by seed with subsequence b * k + i (csrc/ranking/pairs.h); label [B, k]
    int8: +1 if pd_a >= (1 + tau) pd_b, -1 if pd_b >= (1 + tau) pd_a, else 0, and 0 where either
    pseudo depth is not finite or <= 0 (compared in float64). No gradients (integer outputs).
    """
    _ext.require()
    return torch.ops.scdepth.sample_dynamic_pairs.default(
        score.detach(), pseudo_depth.detach(), float(ratio), float(tau), _checks.seed_to_int64(seed)
    )


if _ext.AVAILABLE:

    @torch.library.register_fake("scdepth::sample_dynamic_pairs")
    def _(score, pseudo_depth, ratio, tau, seed):
        _checks.check_sample_dynamic_pairs(score, pseudo_depth, ratio, tau)
        B, N = score.shape[0], score.shape[2] * score.shape[3]
        k = _checks.num_selected(N, ratio)
        return (
            score.new_empty((B, k), dtype=torch.int64),
            score.new_empty((B, k), dtype=torch.int64),
            score.new_empty((B, k), dtype=torch.int8),
        )
