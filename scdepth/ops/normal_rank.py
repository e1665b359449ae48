"""normal_rank_error: autograd and fake registration of scdepth::normal_rank_error, and its
public entry."""

import torch

from . import _checks, _ext
from .warp import alert_not_deterministic


def normal_rank_error(normal, pseudo_normal, valid, points, weight):
    """The per-anchor errors of SC-DepthV3's edge-guided normal ranking loss.

    normal [B, 3, H, W]: predicted surface normals (receives the gradient).
    pseudo_normal [B, 3, H, W]: the pseudo-depth's normals, same dtype (no gradient).
    valid [B, 1, H, W] bool: pixels whose pseudo-depth is finite and > 0.
    points [S, 4, B, M] int64: anchor m of image b in sampler s has four points a, b, c, d,
        pixel indices of image b in [0, H * W) (an index outside is an IndexError on the CPU
        and a device-side assert on CUDA).
    weight [S, B, M]: each anchor's weight (no gradient).

    An anchor's pairs are (a, b), (b, c), (c, d); a pair counts when both pixels are valid, and
    its error is | |n_i . n_j| - |p_i . p_j| |. Returns (error [S, B, M]: weight times the sum
    of the counted pairs' errors; pair_weight [S, B, M]: weight times their number, not
    differentiable). The loss is error.sum() / pair_weight.sum(). An invalid pixel's normals
    are never read, so NaN there reaches neither output nor gradient.
    """
    _ext.require()
    error, pair_weight, _ = torch.ops.scdepth.normal_rank_error.default(
        normal, pseudo_normal.detach(), valid, points, weight.detach()
    )
    return error, pair_weight


if _ext.AVAILABLE:

    @torch.library.register_fake("scdepth::normal_rank_error")
    def _(normal, pseudo_normal, valid, points, weight):
        _checks.check_normal_rank(normal, pseudo_normal, valid, points, weight)
        slope = weight.new_empty((*weight.shape, 3), dtype=_checks.compute_dtype(weight.dtype))
        return weight.new_empty(weight.shape), weight.new_empty(weight.shape), slope

    @torch.library.register_fake("scdepth::normal_rank_error_backward")
    def _(grad_error, normal, points, pair_slope):
        return normal.new_empty(normal.shape)

    def _setup_context(ctx, inputs, output):
        normal, _, _, points, _ = inputs
        ctx.save_for_backward(normal, points, output[2])
        ctx.mark_non_differentiable(output[1], output[2])

    def _backward(ctx, grad_error, _grad_pair_weight, _grad_pair_slope):
        if not ctx.needs_input_grad[0] or grad_error is None:
            return None, None, None, None, None
        normal, points, pair_slope = ctx.saved_tensors
        if normal.is_cuda:
            alert_not_deterministic("normal_rank_error's backward on CUDA (it uses atomics)")
        grad = torch.ops.scdepth.normal_rank_error_backward.default(
            grad_error, normal, points, pair_slope
        )
        return grad, None, None, None, None

    torch.library.register_autograd(
        "scdepth::normal_rank_error", _backward, setup_context=_setup_context
    )
