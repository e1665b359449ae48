"""inverse_warp: autograd and fake registration of scdepth::inverse_warp, and its public entry."""

import warnings

import torch

from . import _checks, _ext


def alert_not_deterministic(what):
    """What torch does for its own nondeterministic kernels under
    ``torch.use_deterministic_algorithms``: raise, or warn with ``warn_only=True``."""
    if not torch.are_deterministic_algorithms_enabled():
        return
    msg = f"{what} is not deterministic, but torch.use_deterministic_algorithms is on"
    if not torch.is_deterministic_algorithms_warn_only_enabled():
        raise RuntimeError(msg)
    warnings.warn(msg, stacklevel=2)


def inverse_warp(src, depth, pose, K):
    """Warps the source view into the target view (bilinear inverse warping).

    src [B, C, H, W]: the source view (any C >= 1), or a sequence of [B, C_i, H, W] tensors
    warped as their concatenation along channels (e.g. an image and its depth): one pass for
    all, and the backward scatters gradients only into the channels from the first tensor
    that requires one on (put those that need none first).
    depth [B, 1, H, W]: depth of the target view.
    pose [B, 3, 4]: [R | t] mapping target-camera points into the source camera.
    K [B, 3, 3]: pinhole intrinsics shared by both views. K receives no gradient.

    For target pixel (u, v): X = depth K^-1 [u, v, 1]^T, X' = R X + t, z' = X'_z and
    (u', v') = (K X')_xy / z'. Returns (warped [B, C, H, W], computed_depth [B, 1, H, W],
    valid [B, 1, H, W]): src sampled bilinearly at (u', v') with pixel centres at integer
    coordinates and zero padding (grid_sample with align_corners=True); z'; and 1 where the
    depth is finite and > 0, z' > 1e-3 and (u', v') is inside the image, else 0. Where z' <= 1e-3
    or the depth is invalid, warped is 0 and passes no gradient. valid is not differentiable.
    """
    _ext.require()
    src, src_grad_from = _checks.stacked_sources(src)
    _checks.check_intrinsics(K)
    return torch.ops.scdepth.inverse_warp.default(src, depth, pose, K, src_grad_from)


if _ext.AVAILABLE:

    @torch.library.register_fake("scdepth::inverse_warp")
    def _(src, depth, pose, K, src_grad_from=0):
        _checks.check_inverse_warp(src, depth, pose, K)
        _checks.check_src_grad_from(src_grad_from)
        return src.new_empty(src.shape), depth.new_empty(depth.shape), depth.new_empty(depth.shape)

    @torch.library.register_fake("scdepth::inverse_warp_backward")
    def _(grad_warped, grad_computed_depth, src, depth, pose, K, src_grad_from):
        _checks.check_inverse_warp(src, depth, pose, K)
        _checks.check_src_grad_from(src_grad_from)
        grad_src = src.new_empty(src.shape if src_grad_from < src.shape[1] else (0,))
        return grad_src, depth.new_empty(depth.shape), pose.new_empty(pose.shape)

    def _setup_context(ctx, inputs, output):
        src, depth, pose, K, src_grad_from = inputs
        ctx.save_for_backward(src, depth, pose, K)
        ctx.src_grad_from = src_grad_from
        ctx.mark_non_differentiable(output[2])

    def _backward(ctx, grad_warped, grad_computed_depth, _grad_valid):
        src, depth, pose, K = ctx.saved_tensors
        need_src, need_depth, need_pose = ctx.needs_input_grad[:3]
        if not (need_src or need_depth or need_pose):
            return None, None, None, None, None
        if need_src and src.is_cuda:
            alert_not_deterministic("inverse_warp's backward on CUDA (grad_src uses atomics)")
        src_grad_from = ctx.src_grad_from if need_src else src.shape[1]
        grad_src, grad_depth, grad_pose = torch.ops.scdepth.inverse_warp_backward.default(
            grad_warped, grad_computed_depth, src, depth, pose, K, src_grad_from
        )
        return (
            grad_src if need_src else None,
            grad_depth if need_depth else None,
            grad_pose if need_pose else None,
            None,
            None,
        )

    torch.library.register_autograd(
        "scdepth::inverse_warp", _backward, setup_context=_setup_context
    )
