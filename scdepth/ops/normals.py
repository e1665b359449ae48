"""depth_normals: autograd and fake registration of scdepth::depth_normals, and its public
entry."""

import torch

from . import _checks, _ext


def depth_normals(depth, K):
    """Unit surface normals of a depth map: SC-DepthV3's normals from depth and intrinsics.

    depth [B, 1, H, W]: depth (receives the gradient).
    K [B, 3, 3]: pinhole intrinsics of each image, same dtype and device; finite and
        invertible, else ValueError. K receives no gradient (as in inverse_warp).

    P = depth K^-1 [u, v, 1]^T (pixel centres at integer coordinates); du, dv = the normalised
    Sobel derivatives of P along u and v (weights / 8, replicate padding); n = du x dv.
    Returns n / sqrt(max(|n|^2, eps^2)) [B, 3, H, W], eps = 1e-8: below it the norm passes
    no gradient (torch.clamp_min's). A non-finite depth makes the normals whose 3 x 3
    neighbourhood holds it non-finite, and the gradients around them.
    """
    _ext.require()
    _checks.check_intrinsics(K)
    return torch.ops.scdepth.depth_normals.default(depth, K)


if _ext.AVAILABLE:

    @torch.library.register_fake("scdepth::depth_normals")
    def _(depth, K):
        _checks.check_depth_normals(depth, K)
        B, _, H, W = depth.shape
        return depth.new_empty((B, 3, H, W))

    @torch.library.register_fake("scdepth::depth_normals_backward")
    def _(grad_normal, depth, K):
        _checks.check_depth_normals(depth, K)
        return depth.new_empty(depth.shape)

    def _setup_context(ctx, inputs, output):
        depth, K = inputs
        ctx.save_for_backward(depth, K)

    def _backward(ctx, grad_normal):
        if not ctx.needs_input_grad[0]:
            return None, None
        depth, K = ctx.saved_tensors
        grad = torch.ops.scdepth.depth_normals_backward.default(grad_normal, depth, K)
        return grad, None

    torch.library.register_autograd(
        "scdepth::depth_normals", _backward, setup_context=_setup_context
    )
