"""normal_rank_error: the fused gather of SC-DepthV3's normal ranking pairs against its
pure-PyTorch reference, its gradient, determinism, and argument errors."""

import pytest
import torch

import scdepth.ops as ops
from scdepth import losses
from scdepth.ops import reference

FLOAT_TYPES = (torch.float64, torch.float32, torch.bfloat16, torch.float16)


def random_inputs(B=2, H=12, W=16, S=2, M=60, *, seed=0, dtype=torch.float64, shared=True):
    """Normals, pseudo-normals, a validity map with NaN normals where invalid, points (many
    shared between anchors when `shared`, so the backward's adds collide) and weights."""
    g = torch.Generator().manual_seed(seed)
    normal = torch.randn(B, 3, H, W, generator=g, dtype=torch.float64)
    pseudo = torch.randn(B, 3, H, W, generator=g, dtype=torch.float64)
    valid = torch.rand(B, 1, H, W, generator=g) > 0.25
    normal = normal.masked_fill(~valid, float("nan"))
    pseudo = pseudo.masked_fill(~valid, float("nan"))
    pixels = min(H * W, 7) if shared else H * W
    points = torch.randint(0, pixels, (S, 4, B, M), generator=g)
    weight = torch.rand(S, B, M, generator=g, dtype=torch.float64)
    return normal.to(dtype), pseudo.to(dtype), valid, points, weight.to(dtype)


TOL = {
    torch.float64: dict(rtol=1e-12, atol=1e-12),
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=2e-2, atol=2e-2),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
}


def forward_and_grad(op, normal, pseudo, valid, points, weight, grad_error):
    n = normal.detach().clone().requires_grad_()
    error, pair_weight = op(n, pseudo, valid, points, weight)
    (grad,) = torch.autograd.grad((error.float() * grad_error).sum(), n)
    return error, pair_weight, grad


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("shared", [True, False])
def test_matches_reference(dtype, shared):
    inputs = random_inputs(seed=1, dtype=dtype, shared=shared)
    g = torch.randn(inputs[-1].shape, generator=torch.Generator().manual_seed(2))
    ext = forward_and_grad(ops.normal_rank_error, *inputs, g)
    ref = forward_and_grad(reference.normal_rank_error, *inputs, g)
    for name, x, y in zip(("error", "pair_weight", "grad"), ext, ref, strict=True):
        assert x.dtype == dtype, name
        assert torch.isfinite(x).all(), name  # NaN normals sit only on invalid pixels
        torch.testing.assert_close(x, y, **TOL[dtype], msg=name)
    assert ext[0].abs().sum() > 0 and ext[2].abs().sum() > 0


def test_pair_weight_counts_the_pairs_with_both_pixels_valid():
    normal, pseudo, valid, _, _ = random_inputs(B=1, H=2, W=3, S=1, M=1)
    valid = torch.tensor([[[[True, True, False], [True, True, True]]]])
    points = torch.tensor([0, 1, 2, 3]).view(1, 4, 1, 1)  # (0, 1) counts; (1, 2), (2, 3) not
    weight = torch.full((1, 1, 1), 0.5, dtype=torch.float64)
    normal, pseudo = normal.nan_to_num(), pseudo.nan_to_num()
    error, pair_weight = ops.normal_rank_error(normal, pseudo, valid, points, weight)
    assert pair_weight.item() == 0.5
    n, p = normal.flatten(2)[0], pseudo.flatten(2)[0]
    expected = 0.5 * abs(abs(float(n[:, 0] @ n[:, 1])) - abs(float(p[:, 0] @ p[:, 1])))
    assert error.item() == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("op", [ops.normal_rank_error, reference.normal_rank_error])
@pytest.mark.parametrize("bad", ["grad_error", "weight"])
def test_an_invalid_pixel_gets_no_gradient_whatever_the_gradient_or_the_weight(op, bad):
    """An anchor whose pairs do not count adds nothing to the gradient, also when its
    incoming gradient is NaN or its weight infinite (NaN x 0 must not reach the NaN normals
    of its invalid pixels); the other anchors' gradients are untouched."""
    normal, pseudo, valid, points, weight = random_inputs(B=1, H=4, W=4, S=1, M=2, seed=9)
    valid[:] = True
    valid.view(-1)[:4] = False  # anchor 0 on the invalid pixels 0-3, anchor 1 on valid ones
    normal = normal.nan_to_num(0.5).masked_fill(~valid, float("nan"))
    pseudo = pseudo.nan_to_num(0.5).masked_fill(~valid, float("nan"))
    points = torch.tensor([[0, 5], [1, 6], [2, 7], [3, 8]]).view(1, 4, 1, 2)
    g = torch.ones(1, 1, 2, dtype=torch.float64)
    (g if bad == "grad_error" else weight)[0, 0, 0] = float("nan" if bad == "grad_error" else "inf")
    _, pair_weight, grad = forward_and_grad(op, normal, pseudo, valid, points, weight, g)
    assert pair_weight[0, 0, 0] == 0 or bad == "weight"  # inf x 0 pairs is NaN
    assert torch.equal(grad[..., :1, :], torch.zeros_like(grad[..., :1, :]))  # pixels 0-3
    weight[0, 0, 0], g[0, 0, 0] = 1.0, 1.0
    expected = forward_and_grad(reference.normal_rank_error, normal, pseudo, valid, points,
                                weight, g)[2]  # fmt: skip
    torch.testing.assert_close(grad[..., 1:, :], expected[..., 1:, :], rtol=1e-12, atol=1e-12)
    assert grad[..., 1:, :].abs().sum() > 0


def test_gradcheck():
    normal, pseudo, valid, points, weight = random_inputs(B=2, H=5, W=6, M=12, seed=3)
    normal = normal.nan_to_num(0.5).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda n: ops.normal_rank_error(n, pseudo, valid, points, weight)[0], (normal,)
    )


def test_backward_is_the_same_at_any_thread_count_and_every_time():
    inputs = random_inputs(B=3, H=40, W=50, M=4000, seed=4, dtype=torch.float32)
    g = torch.randn(inputs[-1].shape, generator=torch.Generator().manual_seed(5))
    threads = torch.get_num_threads()
    try:
        grads = []
        for n in (1, 2, 3, 1, 2):
            torch.set_num_threads(n)
            grads.append(forward_and_grad(ops.normal_rank_error, *inputs, g)[2])
    finally:
        torch.set_num_threads(threads)
    assert grads[0].abs().sum() > 0
    for grad in grads[1:]:
        assert torch.equal(grad, grads[0])


def test_non_contiguous_inputs_give_the_same_result():
    normal, pseudo, valid, points, weight = random_inputs(seed=6, dtype=torch.float32)
    expected = ops.normal_rank_error(normal, pseudo, valid, points, weight)
    cl = normal.to(memory_format=torch.channels_last)
    points_t = points.transpose(2, 3).contiguous().transpose(2, 3)
    got = ops.normal_rank_error(cl, pseudo, valid, points_t, weight)
    for x, y in zip(got, expected, strict=True):
        assert torch.equal(x, y)


def test_empty_anchor_set():
    normal, pseudo, valid, points, weight = random_inputs(M=0, seed=7)
    error, pair_weight = ops.normal_rank_error(
        normal.requires_grad_(), pseudo, valid, points, weight
    )
    assert error.shape == pair_weight.shape == (2, 2, 0)
    error.sum().backward()
    assert torch.equal(normal.grad, torch.zeros_like(normal))


@pytest.mark.parametrize("op", [ops.normal_rank_error, reference.normal_rank_error])
@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda a: {**a, "valid": a["valid"].float()}, TypeError, "valid must be bool"),
        (lambda a: {**a, "points": a["points"].int()}, TypeError, "points must be int64"),
        (lambda a: {**a, "points": a["points"][:, :3]}, ValueError, "points must be"),
        (lambda a: {**a, "weight": a["weight"][:, :, 1:]}, ValueError, "weight must be"),
        (lambda a: {**a, "weight": a["weight"].float()}, TypeError, "weight must have"),
        (lambda a: {**a, "pseudo_normal": a["pseudo_normal"][:, :2]}, ValueError, "pseudo_normal"),
        (lambda a: {**a, "normal": a["normal"][:, :2]}, ValueError, "normal must be"),
        (lambda a: {**a, "valid": a["valid"][:, :, 1:]}, ValueError, "valid must be"),
        (lambda a: {**a, "points": a["points"] + 500}, IndexError, "points must be pixel"),
        (lambda a: {**a, "points": a["points"] - 500}, IndexError, "points must be pixel"),
    ],
)
def test_bad_arguments_raise_clear_errors(op, change, error, words):
    names = ("normal", "pseudo_normal", "valid", "points", "weight")
    args = change(dict(zip(names, random_inputs(seed=8), strict=True)))
    with pytest.raises(error, match=words):
        op(**args)


def test_opcheck():
    for dtype in (torch.float32, torch.float64):
        normal, pseudo, valid, points, weight = random_inputs(seed=9, dtype=dtype)
        torch.library.opcheck(
            torch.ops.scdepth.normal_rank_error.default,
            (normal.nan_to_num().requires_grad_(), pseudo, valid, points, weight),
        )


def test_get_backend_has_the_op():
    assert ops.get_backend("ext").normal_rank_error is ops.normal_rank_error
    assert ops.get_backend("reference").normal_rank_error is reference.normal_rank_error


def test_normal_ranking_loss_is_the_same_on_both_backends():
    g = torch.Generator().manual_seed(10)
    B, H, W = 2, 48, 64
    img = torch.rand(B, 3, H, W, generator=g)
    pseudo = 1 + torch.nn.functional.interpolate(
        torch.rand(B, 1, 6, 8, generator=g), size=(H, W), mode="bicubic"
    )
    pseudo[:, :, :4] = 0  # invalid rows: their pairs weigh 0
    K = torch.tensor([[50.0, 0, 31.5], [0, 50.0, 23.5], [0, 0, 1]]).expand(B, 3, 3)
    pseudo_normal = reference.depth_normals(pseudo, K)
    draws = losses.edge_pair_draws(B, H, W, torch.Generator().manual_seed(11))
    results = []
    for backend in ("ext", "reference"):
        depth = 1 + torch.rand(B, 1, H, W, generator=torch.Generator().manual_seed(12))
        depth.requires_grad_()
        loss = losses.normal_ranking_loss(
            ops.get_backend(backend), img, pseudo, reference.depth_normals(depth, K),
            pseudo_normal,
            draws=draws,
        )  # fmt: skip
        loss.backward()
        results.append((loss.detach(), depth.grad))
    assert results[0][0] > 0.01 and results[0][1].abs().sum() > 0
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-7)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_cuda_matches_cpu(dtype):
    inputs = random_inputs(B=3, H=64, W=80, M=3000, seed=13, dtype=dtype)
    g = torch.randn(inputs[-1].shape, generator=torch.Generator().manual_seed(14))
    cpu = forward_and_grad(ops.normal_rank_error, *inputs, g)
    with torch.use_deterministic_algorithms(True, warn_only=True):
        cuda = forward_and_grad(ops.normal_rank_error, *(t.cuda() for t in inputs), g.cuda())
    for name, x, y in zip(("error", "pair_weight", "grad"), cuda, cpu, strict=True):
        torch.testing.assert_close(x.cpu(), y, **TOL[dtype], msg=name)


def test_raw_backward_checks_its_arguments():
    normal, pseudo, valid, points, weight = random_inputs(seed=17, dtype=torch.float32)
    _, _, slope = torch.ops.scdepth.normal_rank_error(normal, pseudo, valid, points, weight)
    grad_error = torch.ones_like(weight)
    backward = torch.ops.scdepth.normal_rank_error_backward
    assert backward(grad_error, normal, points, slope).shape == normal.shape
    with pytest.raises(IndexError, match="points must be pixel indices"):
        backward(grad_error, normal, points + 10_000, slope)
    with pytest.raises(TypeError, match="pair_slope must be"):
        backward(grad_error, normal, points, slope.double())
    with pytest.raises(ValueError, match="pair_slope must be"):
        backward(grad_error, normal, points, slope[..., :2])
    with pytest.raises(ValueError, match="grad_error must be"):
        backward(grad_error[:1], normal, points, slope)
