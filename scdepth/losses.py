"""Loss terms of SC-Depth V1 and SC-DepthV3, one small function per term, named after it.

Depth ranking (SC-DepthV3, dynamic region refinement): ordinal labels from a pseudo depth map
supervise the order of predicted depths on pairs of pixels, the pairs coming from the
dynamic regions (scdepth.ops.sample_dynamic_pairs) and from the whole image
(global_random_pairs). Pair sets are [B, n] flat pixel indices with int8 labels; several sets
are combined by concatenating them along dim 1 before depth_ranking_loss, which then averages
over all their pairs, as the public code does.
"""

import math

import torch
import torch.nn.functional as F

from scdepth.ops.reference import ordinal_labels

# SC-DepthV3 public code (losses/mask_ranking_loss.py): theta = 0.15 is the ordinal margin,
# sample_ratio = 0.1 the share of pixels paired at random over the whole image.
RANKING_TAU = 0.15
GLOBAL_PAIR_RATIO = 0.1


def _check_pairs(depth, idx_a, idx_b, label):
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be [B, 1, H, W], got {list(depth.shape)}")
    B = depth.shape[0]
    for name, t in (("idx_a", idx_a), ("idx_b", idx_b), ("label", label)):
        if t.dim() != 2 or t.shape[0] != B or t.shape != idx_a.shape:
            raise ValueError(
                f"{name} must be [B, n] with B = {B} like idx_a {list(idx_a.shape)}, "
                f"got {list(t.shape)}"
            )
        if t.device != depth.device:
            raise ValueError(
                f"{name} must be on the device of depth ({depth.device}), got {t.device}"
            )
    for name, t in (("idx_a", idx_a), ("idx_b", idx_b)):
        if t.dtype != torch.int64:
            raise TypeError(f"{name} must be int64, got {t.dtype}")
    if label.dtype.is_floating_point or label.dtype.is_complex or label.dtype == torch.bool:
        raise TypeError(f"label must be an integer tensor (-1, 0, +1), got {label.dtype}")


def depth_ranking_loss(depth, idx_a, idx_b, label):
    """Depth ranking loss of SC-DepthV3: mean over the pairs with label != 0 of
    softplus(-label * (z_a - z_b)), z = depth at the flat pixel indices idx_a, idx_b [B, n]
    (int64) of each image; label [B, n] in {-1, 0, +1} (+1: a is farther than b).

    softplus(x) = log(1 + exp(x)) computed stably (the public code's log(1 + exp(x)) overflows
    to inf for x > 88 in float32). Pairs with label 0, or no pairs at all, add nothing: with
    no labelled pair the result is a zero that is still connected to `depth` (its gradient
    is zero). Computed in float32 at least; returns a scalar tensor.
    """
    _check_pairs(depth, idx_a, idx_b, label)
    ct = torch.promote_types(depth.dtype, torch.float32)
    z = depth.reshape(depth.shape[0], -1).to(ct)
    z_a, z_b = z.gather(1, idx_a), z.gather(1, idx_b)
    labelled = label != 0
    # Unlabelled pairs are zeroed before softplus, so that their depths (even NaN or inf)
    # reach neither the value nor the gradient.
    diff = torch.where(labelled, z_a - z_b, 0.0)
    loss = torch.where(labelled, F.softplus(-label.to(ct) * diff), 0.0)
    return loss.sum() / labelled.sum().clamp_min(1).to(ct)


def global_random_pairs(pseudo_depth, *, ratio=GLOBAL_PAIR_RATIO, tau=RANKING_TAU, generator=None):
    """SC-DepthV3's global random pairs: in every image, n = floor(ratio * N + 0.5) ordered
    pairs (a, b) of distinct pixels, each uniform over all such pairs and independent of the
    others, with labels from pseudo_depth [B, 1, H, W] by the rule of
    scdepth.ops.sample_dynamic_pairs (+1 if pd_a >= (1 + tau) pd_b, -1 if pd_b >= (1 + tau)
    pd_a, else 0; 0 where either depth is not finite or <= 0).

    Returns (idx_a, idx_b, label) [B, n] (int64, int64, int8) like sample_dynamic_pairs; n = 0
    when N < 2. Random numbers come from `generator` (drawn on its device, then moved to the
    pseudo depth's; default: the global generator of the pseudo depth's device).

    The public code draws one Bernoulli(ratio) mask for the whole batch and pairs its pixels
    in index order with a permutation of the same mask, so a pixel can be paired with itself
    and the count varies; here every image gets its own independent pairs and a static count.
    """
    if pseudo_depth.dim() != 4 or pseudo_depth.shape[1] != 1:
        raise ValueError(f"pseudo_depth must be [B, 1, H, W], got {list(pseudo_depth.shape)}")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if not (math.isfinite(tau) and tau >= 0.0):
        raise ValueError(f"tau must be finite and >= 0, got {tau}")
    B, N = pseudo_depth.shape[0], pseudo_depth.shape[2] * pseudo_depth.shape[3]
    n = math.floor(ratio * N + 0.5) if N >= 2 else 0
    device = generator.device if generator is not None else pseudo_depth.device
    idx_a = torch.randint(max(N, 1), (B, n), generator=generator, device=device)
    # b = a + an offset uniform in [1, N): uniform over the N - 1 pixels other than a.
    offset = torch.randint(1, max(N, 2), (B, n), generator=generator, device=device)
    idx_b = (idx_a + offset) % max(N, 1)
    idx_a, idx_b = idx_a.to(pseudo_depth.device), idx_b.to(pseudo_depth.device)
    pd = pseudo_depth.detach().reshape(B, N)
    return idx_a, idx_b, ordinal_labels(pd.gather(1, idx_a), pd.gather(1, idx_b), tau)
