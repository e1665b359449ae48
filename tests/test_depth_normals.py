"""depth_normals: SC-DepthV3's fused surface normals from depth against their pure-PyTorch
reference, the gradient, determinism, layouts, and argument errors."""

import pytest
import torch

import scdepth.ops as ops
from scdepth.ops import reference

F64 = torch.float64
FLOAT_TYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def intrinsics(B, H, W):
    """A different K per image: non-square pixels, skew, an off-centre principal point."""
    K = torch.zeros(B, 3, 3, dtype=F64)
    for b in range(B):
        K[b] = torch.tensor(
            [[0.9 * W + 3 * b, 0.4 + 0.3 * b, 0.45 * W + b], [0, 0.6 * H + 2 * b, 0.55 * H - b],
             [0, 0, 1]], dtype=F64,
        )  # fmt: skip
    return K


def random_inputs(B=2, H=12, W=16, *, seed=0, dtype=F64):
    """depth in (1, 5) with structure at every scale, the Ks of intrinsics(), and a gradient
    for the normals."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(B, 1, max(H // 4, 1), max(W // 4, 1), generator=g, dtype=F64)
    smooth = torch.nn.functional.interpolate(coarse, size=(H, W), mode="bilinear")
    depth = 1 + 3 * smooth + 0.5 * torch.rand(B, 1, H, W, generator=g, dtype=F64)
    grad = torch.randn(B, 3, H, W, generator=g, dtype=F64)
    return depth.to(dtype), intrinsics(B, H, W).to(dtype), grad.to(dtype)


def forward_and_grad(op, depth, K, grad):
    d = depth.detach().clone().requires_grad_()
    normal = op(d, K)
    (g,) = torch.autograd.grad(normal, d, grad)
    return normal.detach(), g


TOL = {
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=2e-2, atol=2e-2),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
}


def assert_close_scaled(x, y, tol, msg):
    """x and y equal within tol relative to y's largest magnitude (the gradient sums terms of
    that size, so its rounding error scales with it, not with each element)."""
    scale = y.abs().max().item()
    torch.testing.assert_close(x / scale, y / scale, **tol, msg=msg)


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize(
    "shape",
    [(2, 12, 16), (3, 2, 2), (2, 2, 5), (2, 3, 3), (1, 3, 7), (2, 6, 3), (1, 37, 70)],
)
def test_matches_reference(dtype, shape):
    """Sizes with 2 and 3 rows or columns: replicate padding at both borders at once."""
    depth, K, grad = random_inputs(*shape, seed=sum(shape), dtype=dtype)
    ext = forward_and_grad(ops.depth_normals, depth, K, grad)
    ref = forward_and_grad(reference.depth_normals, depth, K, grad)
    for name, x, y in zip(("normal", "grad_depth"), ext, ref, strict=True):
        assert x.dtype == dtype and x.shape == y.shape, name
        assert torch.isfinite(x).all(), name
        assert_close_scaled(x, y, TOL[dtype], name)
    n = ext[0].double()
    assert torch.allclose(n.norm(dim=1), torch.ones(()).double(), atol=2e-2)
    assert ext[1].abs().sum() > 0


@pytest.mark.parametrize("shape", [(2, 1, 6), (2, 5, 1), (1, 1, 1)])
def test_a_one_pixel_axis_has_no_derivative_across_it(shape):
    """Replicate padding makes the Sobel derivative across a 1-pixel axis exactly 0, so n = 0:
    the normals are 0 and no gradient reaches the depth. The reference's gradient is 0 only up
    to rounding (it adds +g and -g through the padding, each scaled by 1 / eps)."""
    depth, K, grad = random_inputs(*shape, seed=3)
    normal, g = forward_and_grad(ops.depth_normals, depth, K, grad)
    r_normal, r_g = forward_and_grad(reference.depth_normals, depth, K, grad)
    assert torch.equal(normal, torch.zeros_like(normal)) and torch.equal(normal, r_normal)
    assert torch.equal(g, torch.zeros_like(g))
    assert r_g.abs().max() < 1e-6


def test_each_image_uses_its_own_K():
    depth, K, grad = random_inputs(B=3, H=9, W=11, seed=4)
    together = forward_and_grad(ops.depth_normals, depth, K, grad)
    for b in range(3):
        alone = forward_and_grad(ops.depth_normals, depth[b : b + 1], K[b : b + 1], grad[b : b + 1])
        for x, y in zip(together, alone, strict=True):
            assert torch.equal(x[b : b + 1], y)
    assert not torch.allclose(together[0][0], ops.depth_normals(depth[:1], K[1:2])[0])


def test_the_clamped_norm_passes_no_gradient_below_eps():
    """Depths of 1e-4 to 1e-2 make |n|^2 straddle eps^2 = 1e-16: where it is below, the normal is
    n / eps and the clamp passes no gradient, as torch.clamp_min's."""
    depth, K, grad = random_inputs(B=2, H=10, W=12, seed=5)
    depth = depth * torch.logspace(-4, -2.5, 12, dtype=F64)  # smaller to the left
    ext = forward_and_grad(ops.depth_normals, depth, K, grad)
    ref = forward_and_grad(reference.depth_normals, depth, K, grad)
    norm = ext[0].norm(dim=1)
    below = norm < 1 - 1e-6  # n / eps is shorter than a unit vector
    assert below.any() and (~below).any(), "both sides of the clamp"
    for name, x, y in zip(("normal", "grad_depth"), ext, ref, strict=True):
        assert_close_scaled(x, y, dict(rtol=1e-10, atol=1e-10), name)


def test_gradcheck():
    for shape in [(2, 4, 5), (1, 2, 3), (1, 3, 2)]:
        depth, K, _ = random_inputs(*shape, seed=6)
        depth.requires_grad_()
        assert torch.autograd.gradcheck(lambda d, K=K: ops.depth_normals(d, K), (depth,))


def test_K_gets_no_gradient_on_either_backend():
    depth, K, grad = random_inputs(seed=8)
    for op in (ops.depth_normals, reference.depth_normals):
        d, k = depth.clone().requires_grad_(), K.clone().requires_grad_()
        g_d, g_K = torch.autograd.grad(op(d, k), (d, k), grad, allow_unused=True)
        assert g_d is not None and g_K is None, op


def with_threads(n, fn):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(n)
        return fn()
    finally:
        torch.set_num_threads(threads)


def test_same_bits_at_any_thread_count_and_every_time():
    """3 images of 80 rows: 2 bands per image on one thread, 5 on four, so the bands' edge
    rows are computed by other tasks."""
    depth, K, grad = random_inputs(B=3, H=80, W=50, seed=9, dtype=torch.float32)
    runs = [with_threads(n, lambda: forward_and_grad(ops.depth_normals, depth, K, grad))
            for n in (1, 4, 1, 2, 4)]  # fmt: skip
    assert runs[0][1].abs().sum() > 0
    for normal, g in runs[1:]:
        assert torch.equal(normal, runs[0][0]) and torch.equal(g, runs[0][1])


def test_non_contiguous_and_channels_last_inputs_give_the_same_bits():
    depth, K, grad = random_inputs(B=2, H=10, W=24, seed=10, dtype=torch.float32)
    expected = forward_and_grad(ops.depth_normals, depth, K, grad)
    wide = torch.zeros(2, 1, 10, 48).index_copy(3, torch.arange(0, 48, 2), depth)
    strided = wide[..., ::2]  # every other column of a wider map
    K_t = K.transpose(1, 2).contiguous().transpose(1, 2)  # column-major 3x3
    grad_cl = grad.to(memory_format=torch.channels_last)
    assert not strided.is_contiguous() and not K_t.is_contiguous()
    assert not grad_cl.is_contiguous()
    for d, k, g in ((strided, K, grad), (depth, K_t, grad), (depth, K, grad_cl),
                    (depth.to(memory_format=torch.channels_last), K, grad)):  # fmt: skip
        got = forward_and_grad(ops.depth_normals, d, k, g)
        for x, y in zip(got, expected, strict=True):
            assert torch.equal(x, y)


def test_empty_batch_and_empty_image():
    for shape in [(0, 5, 6), (2, 0, 6), (2, 5, 0)]:
        B, H, W = shape
        depth = torch.rand(B, 1, H, W, dtype=F64, requires_grad=True)
        normal = ops.depth_normals(depth, intrinsics(B, max(H, 1), max(W, 1)))
        assert normal.shape == (B, 3, H, W)
        normal.sum().backward()
        assert depth.grad.shape == depth.shape


def test_non_finite_depth_stays_in_its_neighbourhood():
    """A NaN and an inf depth spoil the normals of the 8 pixels around them (Sobel's centre
    weight is 0), as in the reference, and the gradients only of pixels within two of them;
    elsewhere both agree."""
    depth, K, grad = random_inputs(B=1, H=14, W=16, seed=11)
    depth[0, 0, 4, 5] = float("nan")
    depth[0, 0, 10, 12] = float("inf")
    normal, g = forward_and_grad(ops.depth_normals, depth, K, grad)
    r_normal, r_g = forward_and_grad(reference.depth_normals, depth, K, grad)
    near = torch.zeros(14, 16, dtype=torch.bool)
    near[3:6, 4:7] = near[9:12, 11:14] = True
    near[4, 5] = near[10, 12] = False
    assert torch.equal(~torch.isfinite(normal[0]).all(0), near)
    assert torch.equal(torch.isfinite(normal), torch.isfinite(r_normal))
    torch.testing.assert_close(normal[:, :, ~near], r_normal[:, :, ~near], rtol=1e-12, atol=1e-12)
    reach = torch.zeros(14, 16, dtype=torch.bool)
    reach[2:7, 3:8] = reach[8:13, 10:15] = True
    assert torch.isfinite(g[0, 0, ~reach]).all()
    torch.testing.assert_close(g[0, 0, ~reach], r_g[0, 0, ~reach], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("op", [ops.depth_normals, reference.depth_normals])
@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda d, K: (d.int(), K), TypeError, "depth must be float"),
        (lambda d, K: (d[:, 0], K), ValueError, r"depth must be \[B, 1, H, W\]"),
        (lambda d, K: (d.expand(2, 2, 12, 16), K), ValueError, r"depth must be \[B, 1, H, W\]"),
        (lambda d, K: (d, K.float()), TypeError, "K must have the dtype of depth"),
        (lambda d, K: (d, K[:1]), ValueError, r"K must be \[B, 3, 3\] with B = 2"),
        (lambda d, K: (d, K[:, :2]), ValueError, r"K must be \[B, 3, 3\]"),
        (lambda d, K: (d, K.to("meta")), ValueError, "K must be on the device of depth"),
        (lambda d, K: (d, K.index_fill(0, torch.tensor([1]), 0.0)), ValueError,
         r"K\[1\] must be finite and invertible"),
        (lambda d, K: (d, K.index_fill(0, torch.tensor([0]), float("nan"))), ValueError,
         r"K\[0\] must be finite and invertible"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_clear_errors(op, change, error, words):
    depth, K, _ = random_inputs(seed=12)
    with pytest.raises(error, match=words):
        op(*change(depth, K))


def test_raw_backward_checks_its_arguments():
    depth, K, grad = random_inputs(seed=13, dtype=torch.float32)
    backward = torch.ops.scdepth.depth_normals_backward
    assert backward(grad, depth, K).shape == depth.shape
    with pytest.raises(ValueError, match=r"grad_normal must be \[B, 3, H, W\] like depth"):
        backward(grad[:, :2], depth, K)
    with pytest.raises(TypeError, match="grad_normal must have the dtype of depth"):
        backward(grad.double(), depth, K)
    with pytest.raises(ValueError, match=r"K must be \[B, 3, 3\]"):
        backward(grad, depth, K[:1])


def test_opcheck():
    for dtype in (torch.float32, torch.float64):
        depth, K, _ = random_inputs(seed=14, dtype=dtype)
        torch.library.opcheck(torch.ops.scdepth.depth_normals.default, (depth.requires_grad_(), K))


def test_get_backend_has_the_op():
    assert ops.get_backend("ext").depth_normals is ops.depth_normals
    assert ops.get_backend("reference").depth_normals is reference.depth_normals


def test_compiles_whole():
    depth, K, grad = random_inputs(seed=15, dtype=torch.float32)
    compiled = torch.compile(ops.depth_normals, fullgraph=True, backend="aot_eager")
    ext = forward_and_grad(compiled, depth, K, grad)
    eager = forward_and_grad(ops.depth_normals, depth, K, grad)
    for x, y in zip(ext, eager, strict=True):
        assert torch.equal(x, y)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_cuda_matches_cpu(dtype):
    depth, K, grad = random_inputs(B=3, H=70, W=90, seed=16, dtype=dtype)
    cpu = forward_and_grad(ops.depth_normals, depth, K, grad)
    cuda = forward_and_grad(ops.depth_normals, depth.cuda(), K.cuda(), grad.cuda())
    for name, x, y in zip(("normal", "grad_depth"), cuda, cpu, strict=True):
        assert_close_scaled(x.cpu(), y, TOL[dtype], name)


@pytest.mark.cuda
def test_cuda_backward_is_deterministic():
    depth, K, grad = (
        t.cuda() for t in random_inputs(B=2, H=70, W=90, seed=17, dtype=torch.float32)
    )
    with torch.use_deterministic_algorithms(True):
        runs = [forward_and_grad(ops.depth_normals, depth, K, grad) for _ in range(3)]
    for normal, g in runs[1:]:
        assert torch.equal(normal, runs[0][0]) and torch.equal(g, runs[0][1])
