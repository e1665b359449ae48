"""photometric_error: autograd and fake registration of scdepth::photometric_error, and its
public entry."""

import torch

from . import _checks, _ext


def photometric_error(tgt, warped, weight=None, *, alpha=0.85, window=3):
    """Per-pixel photometric error between a target view and a warped source view.

    tgt, warped [B, C, H, W]: the two images (C >= 1). weight [B, 1, H, W] or None.
    alpha in [0, 1]: weight of the SSIM term; window: odd box size k, 3 <= k <= 11, with
    H and W > k // 2.

    SSIM uses k x k box means (F.avg_pool2d(·, k, stride=1)) of the inputs reflection-padded
    by p = k // 2 (F.pad(·, (p, p, p, p), mode='reflect')), with C1 = 0.01², C2 = 0.03².
    Returns (photo, l1), both [B, 1, H, W]:
      photo = weight · mean_c((1 - alpha) clamp(|tgt - warped|, 0, 1)
                              + alpha clamp((1 - SSIM) / 2, 0, 1))   (weight 1 when None),
      l1 = mean_c |tgt - warped|   (unweighted).
    Both are differentiable with respect to tgt, warped and weight; clamps pass gradient
    strictly inside their bounds, as torch.clamp does.
    """
    _ext.require()
    _checks.check_window_alpha(alpha, window)
    return torch.ops.scdepth.photometric_error.default(
        tgt, warped, weight, float(alpha), int(window)
    )


if _ext.AVAILABLE:

    @torch.library.register_fake("scdepth::photometric_error")
    def _(tgt, warped, weight, alpha, window):
        _checks.check_photometric(tgt, warped, weight, alpha, window)
        B, _, H, W = tgt.shape
        return tgt.new_empty((B, 1, H, W)), tgt.new_empty((B, 1, H, W))

    @torch.library.register_fake("scdepth::photometric_error_backward")
    def _(grad_photo, grad_l1, tgt, warped, weight, alpha, window):
        _checks.check_photometric_backward(grad_photo, grad_l1, tgt, warped, weight, alpha, window)
        grad_weight = tgt.new_empty(weight.shape if weight is not None else (0,))
        return tgt.new_empty(tgt.shape), tgt.new_empty(tgt.shape), grad_weight

    def _setup_context(ctx, inputs, output):
        tgt, warped, weight, alpha, window = inputs
        ctx.save_for_backward(tgt, warped, weight)
        ctx.alpha, ctx.window = alpha, window

    def _backward(ctx, grad_photo, grad_l1):
        tgt, warped, weight = ctx.saved_tensors
        if not any(ctx.needs_input_grad[:3]):
            return None, None, None, None, None
        grad_tgt, grad_warped, grad_weight = torch.ops.scdepth.photometric_error_backward.default(
            grad_photo, grad_l1, tgt, warped, weight, ctx.alpha, ctx.window
        )
        need_tgt, need_warped, need_weight = ctx.needs_input_grad[:3]
        return (
            grad_tgt if need_tgt else None,
            grad_warped if need_warped else None,
            grad_weight if need_weight else None,
            None,
            None,
        )

    torch.library.register_autograd(
        "scdepth::photometric_error", _backward, setup_context=_setup_context
    )
