import math

import pytest
import torch
from conftest import devices
from helpers import warp_inputs

import scdepth.ops as ops
from scdepth.ops import _checks, reference

FLOAT_TYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def grads(op, src, depth, pose, K, gw, gz):
    src, depth, pose = (t.detach().requires_grad_() for t in (src, depth, pose))
    warped, z, _ = op(src, depth, pose, K)
    loss = (warped * gw).sum() + (z * gz).sum()
    return torch.autograd.grad(loss, (src, depth, pose))


def test_forward_matches_reference_float64_with_outside_and_behind_points():
    args = warp_inputs()
    out, ref = ops.inverse_warp(*args), reference.inverse_warp(*args)
    valid = ref[2]
    assert 0 < valid[-1].mean() < 1, "the extreme image must have invalid pixels"
    behind = ref[1][-1] <= 1e-3
    assert behind.any() and (~behind).any(), "the extreme image must have points behind"
    assert (out[0][-1][:, behind[0]] == 0).all()
    for o, r in zip(out, ref, strict=True):
        torch.testing.assert_close(o, r, rtol=1e-12, atol=1e-12)


def test_forward_float32_is_accurate_against_float64():
    args32 = warp_inputs(smooth=True, dtype=torch.float32, seed=1)
    out = ops.inverse_warp(*args32)
    ref = reference.inverse_warp(*(t.double() for t in args32))
    torch.testing.assert_close(out[0].double(), ref[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[1].double(), ref[1], rtol=1e-5, atol=1e-5)
    assert (out[2].double() != ref[2]).float().mean() < 0.01  # only ties at the border


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_forward_half_types_match_reference(dtype):
    args = warp_inputs(smooth=True, dtype=dtype, seed=2, extreme=False)
    out, ref = ops.inverse_warp(*args), reference.inverse_warp(*args)
    for o, r in zip(out[:2], ref[:2], strict=True):
        assert o.dtype == dtype
        torch.testing.assert_close(o.float(), r.float(), rtol=2e-2, atol=2e-2)


def test_gradients_match_reference_float64():
    args = warp_inputs(seed=3)
    g = torch.Generator().manual_seed(4)
    gw = torch.randn(args[0].shape, generator=g, dtype=torch.float64)
    gz = torch.randn(args[1].shape, generator=g, dtype=torch.float64)
    for o, r in zip(
        grads(ops.inverse_warp, *args, gw, gz),
        grads(reference.inverse_warp, *args, gw, gz),
        strict=True,
    ):
        torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-10)


def test_gradients_float32_match_float64_reference():
    args = warp_inputs(seed=5, smooth=True, dtype=torch.float32)
    gw, gz = torch.ones_like(args[0]), torch.ones_like(args[1])
    ours = grads(ops.inverse_warp, *args, gw, gz)
    ref = grads(reference.inverse_warp, *(t.double() for t in args), gw.double(), gz.double())
    for o, r in zip(ours, ref, strict=True):
        scale = r.abs().max()
        torch.testing.assert_close(o.double() / scale, r / scale, rtol=1e-4, atol=1e-5)


def away_from_kinks(seed):
    """Inputs whose projections stay >= 0.01 px from integer coordinates (bilinear cells and
    the image border), so that finite differences do not cross a kink."""
    for s in range(seed, seed + 100):
        src, depth, pose, K = warp_inputs(B=2, C=2, H=5, W=6, seed=s, extreme=False)
        _, z, _ = reference.inverse_warp(src, depth, pose, K)
        uv = (
            K[:, :2]
            @ (
                pose[:, :, :3] @ (depth.view(2, 1, -1) * (torch.linalg.inv(K) @ pixel_grid(5, 6)))
                + pose[:, :, 3:]
            )
        ) / z.view(2, 1, -1)
        frac = uv - uv.floor()
        if ((frac > 0.01) & (frac < 0.99)).all():
            return src, depth, pose, K
    raise AssertionError("no kink-free inputs found")


def pixel_grid(H, W):
    v, u = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    return torch.stack([u, v, torch.ones_like(u)]).view(1, 3, -1)


def test_gradcheck():
    src, depth, pose, K = away_from_kinks(10)
    src, depth, pose = (t.requires_grad_() for t in (src, depth, pose))
    assert torch.autograd.gradcheck(
        lambda s, d, p: ops.inverse_warp(s, d, p, K)[:2], (src, depth, pose)
    )


def test_gradient_only_to_requested_inputs():
    src, depth, pose, K = warp_inputs(seed=6)
    depth.requires_grad_()
    warped, z, valid = ops.inverse_warp(src, depth, pose, K)
    assert not valid.requires_grad
    (gd,) = torch.autograd.grad(warped.sum() + z.sum(), depth)
    src_r = src.clone()
    depth_r = depth.detach().clone().requires_grad_()
    w_r, z_r, _ = reference.inverse_warp(src_r, depth_r, pose, K)
    (gd_r,) = torch.autograd.grad(w_r.sum() + z_r.sum(), depth_r)
    torch.testing.assert_close(gd, gd_r, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("threads", [1, 4])  # an image per thread; rows, then planes
def test_source_gradient_from_a_channel_on(threads):
    """The raw backward with src_grad_from = k: channels below k get 0, the others the bits of
    k = 0; k >= C: no source gradient."""
    src, depth, pose, K = warp_inputs(B=3, C=4, H=13, W=21, seed=16, dtype=torch.float32)
    g = torch.Generator().manual_seed(17)
    gw, gz = torch.randn(src.shape, generator=g), torch.randn(depth.shape, generator=g)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        back = [
            torch.ops.scdepth.inverse_warp_backward(gw, gz, src, depth, pose, K, k)
            for k in range(6)
        ]
    finally:
        torch.set_num_threads(before)
    assert back[0][0].abs().sum() > 0
    for k, (grad_src, grad_depth, grad_pose) in enumerate(back):
        assert torch.equal(grad_depth, back[0][1]) and torch.equal(grad_pose, back[0][2])
        if k >= 4:
            assert grad_src.numel() == 0
            continue
        assert (grad_src[:, :k] == 0).all()
        assert torch.equal(grad_src[:, k:], back[0][0][:, k:])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("backend", [ops, reference])
def test_stacked_sources_give_the_gradients_of_their_concatenation(backend, device):
    """src as [image, depth]: the image needs no gradient, so only the depth's is scattered,
    with the bits the concatenated tensor gets (CUDA's atomics: within rounding)."""
    src, depth, pose, K = (t.to(device) for t in warp_inputs(B=2, C=4, H=9, W=11, seed=18))
    image, ref_depth = src[:, :3], src[:, 3:].clone().requires_grad_()
    depth.requires_grad_()
    pose.requires_grad_()
    g = torch.Generator().manual_seed(19)
    gw = torch.randn(src.shape, generator=g, dtype=src.dtype).to(device)
    gz = torch.randn(depth.shape, generator=g, dtype=src.dtype).to(device)

    def grads(stacked):
        warped, z, valid = backend.inverse_warp(stacked, depth, pose, K)
        loss = (warped * gw).sum() + (z * gz).sum()
        return [warped, z, valid], torch.autograd.grad(loss, (ref_depth, depth, pose))

    out_list, g_list = grads([image, ref_depth])
    out_cat, g_cat = grads(torch.cat([image, ref_depth], 1))
    for a, b in zip([*out_list, *g_list], [*out_cat, *g_cat], strict=True):
        if device == "cpu":
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_stacked_sources_are_checked():
    src, depth, pose, K = warp_inputs(B=2, C=2, H=4, W=5, seed=20)
    with pytest.raises(ValueError, match="non-empty sequence"):
        ops.inverse_warp([], depth, pose, K)
    with pytest.raises(ValueError, match=r"src\[1\] must be \[B, C, H, W\] with B, H, W of"):
        ops.inverse_warp([src, src[:, :, :3]], depth, pose, K)
    with pytest.raises(TypeError, match=r"src\[1\] must have the dtype"):
        reference.inverse_warp([src, src.float()], depth, pose, K)


def test_opcheck():
    for seed, dtype in [(0, torch.float64), (1, torch.float32)]:
        src, depth, pose, K = warp_inputs(B=2, C=3, H=6, W=7, seed=seed, dtype=dtype)
        src.requires_grad_()
        depth.requires_grad_()
        pose.requires_grad_()
        torch.library.opcheck(torch.ops.scdepth.inverse_warp.default, (src, depth, pose, K))
        gw, gz = torch.randn_like(src), torch.randn_like(depth)
        for grad_from in (0, 2, 3):  # all channels, the last, none
            torch.library.opcheck(
                torch.ops.scdepth.inverse_warp_backward.default,
                (gw, gz, src.detach(), depth.detach(), pose.detach(), K, grad_from),
            )


def test_torch_compile_fullgraph_matches_eager():
    args = warp_inputs(seed=7, dtype=torch.float32)

    def f(src, depth, pose, K):
        warped, z, valid = ops.inverse_warp(src, depth, pose, K)
        return (warped * valid).sum(1) + z

    compiled = torch.compile(f, fullgraph=True)
    torch.testing.assert_close(compiled(*args), f(*args))


def test_invalid_depths_give_invalid_zero_pixels():
    src, depth, pose, K = warp_inputs(seed=8, extreme=False)
    depth[0, 0, 0, :4] = torch.tensor([math.nan, math.inf, 0.0, -1.0], dtype=torch.float64)
    depth.requires_grad_()
    warped, z, valid = ops.inverse_warp(src, depth, pose, K)
    assert (valid[0, 0, 0, :4] == 0).all()
    assert (warped[0, :, 0, :4] == 0).all()
    ref = reference.inverse_warp(src, depth, pose, K)
    finite = torch.isfinite(depth)
    torch.testing.assert_close(z[finite], ref[1][finite])
    assert not torch.isfinite(z[~finite]).any()
    torch.testing.assert_close(warped, ref[0])
    (g,) = torch.autograd.grad(warped.sum(), depth)
    assert (g[0, 0, 0, :4] == 0).all() and torch.isfinite(g).all()


@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 1, 1, 6), (2, 2, 5, 1), (1, 1, 1, 1)])
def test_degenerate_shapes_match_reference(shape):
    B, C, H, W = shape
    src, depth, pose, K = warp_inputs(B=max(B, 1), C=C, H=H, W=W, seed=9, extreme=False)
    src, depth, pose, K = src[:B], depth[:B], pose[:B], K[:B]
    for t in (src, depth, pose):
        t.requires_grad_()
    out, ref = ops.inverse_warp(src, depth, pose, K), reference.inverse_warp(src, depth, pose, K)
    for o, r in zip(out, ref, strict=True):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-12, atol=1e-12)
    g = torch.autograd.grad(out[0].sum() + out[1].sum(), (src, depth, pose))
    g_r = torch.autograd.grad(ref[0].sum() + ref[1].sum(), (src, depth, pose))
    for o, r in zip(g, g_r, strict=True):
        torch.testing.assert_close(o, r, rtol=1e-10, atol=1e-10)


def test_non_contiguous_inputs():
    src, depth, pose, K = warp_inputs(seed=11)
    src_nc = src.transpose(2, 3).contiguous().transpose(2, 3)  # channels-last-like strides
    depth_nc = torch.cat([depth, depth], 1)[:, ::2]
    pose_nc = torch.cat([pose, pose], 2)[:, :, :4].transpose(1, 2).contiguous().transpose(1, 2)
    K_nc = K.transpose(1, 2).contiguous().transpose(1, 2)
    assert not (src_nc.is_contiguous() or depth_nc.is_contiguous() or K_nc.is_contiguous())
    out = ops.inverse_warp(src_nc, depth_nc, pose_nc, K_nc)
    ref = reference.inverse_warp(src, depth, pose, K)
    for o, r in zip(out, ref, strict=True):
        torch.testing.assert_close(o, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", [ops.inverse_warp, reference.inverse_warp], ids=["ext", "ref"])
@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda a: (a[0][0],) + a[1:], ValueError, ["src", "[B, C, H, W]"]),
        (
            lambda a: (a[0], a[1].expand(-1, 2, -1, -1)) + a[2:],
            ValueError,
            ["depth", "[B, 1, H, W]"],
        ),
        (lambda a: (a[0], a[1][:, :, :-1]) + a[2:], ValueError, ["depth"]),
        (lambda a: a[:2] + (a[2][:, :, :3],) + a[3:], ValueError, ["pose", "[B, 3, 4]"]),
        (lambda a: a[:2] + (a[2][:1],) + a[3:], ValueError, ["pose"]),
        (lambda a: a[:3] + (a[3][:, :2],), ValueError, ["K", "[B, 3, 3]"]),
        (lambda a: (a[0].float(),) + a[1:], TypeError, ["depth", "dtype"]),
        (lambda a: (a[0], a[1].int()) + a[2:], TypeError, ["depth", "float"]),
        (lambda a: (a[0].long(), a[1].long()) + a[2:], TypeError, ["src"]),
        (lambda a: (a[0], a[1].to("meta")) + a[2:], ValueError, ["depth", "device"]),
        (lambda a: a[:3] + (torch.zeros_like(a[3]),), ValueError, ["K[0]", "invertible"]),
    ],
)
def test_bad_arguments_raise_clear_errors(op, change, error, words):
    args = change(warp_inputs(B=2, C=2, H=4, W=5, seed=12))
    with pytest.raises(error) as info:
        op(*args)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("op", [ops.inverse_warp, reference.inverse_warp], ids=["ext", "ref"])
def test_intrinsics_invertible_only_in_float64_are_rejected_in_float32(op):
    # det = 1e-40 is a float32 denormal: the float32 inverse overflows, the float64 one does not
    src, depth, pose, K = warp_inputs(B=2, C=1, H=4, W=5, seed=14)
    K[1] = torch.diag(torch.tensor([1e-20, 1e-20, 1.0], dtype=torch.float64))
    warped, _, valid = op(src, depth, pose, K)  # float64 takes it
    assert torch.isfinite(warped).all()
    with pytest.raises(ValueError, match=r"K\[1\] must be finite and invertible"):
        op(*(t.float() for t in (src, depth, pose, K)))


def test_intrinsics_are_read_once_until_they_change(monkeypatch):
    """A K that passed is not read back again (no device sync per warp); in-place changes
    void that."""
    src, depth, pose, K = warp_inputs(B=2, C=1, H=4, W=5, seed=15)
    ops.inverse_warp(src, depth, pose, K)
    with monkeypatch.context() as m:
        m.setattr(_checks, "_det_and_cofactors", lambda k: pytest.fail("K was read again"))
        ops.inverse_warp(src, depth, pose, K)
    K[0] = 0
    with pytest.raises(ValueError, match=r"K\[0\] must be finite and invertible"):
        ops.inverse_warp(src, depth, pose, K)


def test_the_trainer_checks_k_on_the_host_before_the_copy():
    from scdepth.data.loader import collate, to_device

    _, _, _, K = warp_inputs(B=2, C=1, H=4, W=5, seed=16)
    items = [{"K": k, "name": "x"} for k in K.float()]
    moved = to_device(collate(items), "cpu")
    assert _checks._is_marked(moved["K"]) and moved["name"] == ["x", "x"]
    items[1]["K"] = items[1]["K"].clone().fill_(float("nan"))
    with pytest.raises(ValueError, match=r"K\[1\] must be finite"):
        collate(items)


def test_raw_op_checks_arguments_too():
    src, depth, pose, K = warp_inputs(B=2, C=2, H=4, W=5, seed=13)
    with pytest.raises(ValueError, match="pose must be"):
        torch.ops.scdepth.inverse_warp(src, depth, pose[:, :2], K)
    with pytest.raises(ValueError, match="grad_warped must be shaped like src"):
        torch.ops.scdepth.inverse_warp_backward(src[:, :1], depth, src, depth, pose, K, 0)
    with pytest.raises(ValueError, match="src_grad_from must be >= 0"):
        torch.ops.scdepth.inverse_warp_backward(src, depth, src, depth, pose, K, -1)


def test_identity_pose_reproduces_the_source():
    src, depth, _, K = warp_inputs(seed=14, extreme=False)
    pose = torch.eye(3, 4, dtype=torch.float64).expand(src.shape[0], 3, 4)
    warped, z, valid = ops.inverse_warp(src, depth, pose, K)
    torch.testing.assert_close(warped, src)
    torch.testing.assert_close(z, depth)
    # The last row and column may land a rounding error outside [0, W-1] x [0, H-1].
    assert (valid[..., :-1, :-1] == 1).all()


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_device_matches_cpu_and_reference(device, dtype):
    args = warp_inputs(B=3, C=4, H=33, W=47, seed=15, smooth=True, dtype=dtype)
    dev_args = tuple(t.to(device) for t in args)
    tol = {torch.float64: 1e-10, torch.float32: 1e-4}.get(dtype, 3e-2)
    out = ops.inverse_warp(*dev_args)
    for o, c, r in zip(
        out, ops.inverse_warp(*args), reference.inverse_warp(*dev_args), strict=True
    ):
        torch.testing.assert_close(o.cpu().double(), c.double(), rtol=tol, atol=tol)
        torch.testing.assert_close(o.double(), r.double(), rtol=tol, atol=tol)
    gw, gz = torch.ones_like(args[0]), torch.ones_like(args[1])
    g_dev = grads(ops.inverse_warp, *dev_args, gw.to(device), gz.to(device))
    g_cpu = grads(ops.inverse_warp, *args, gw, gz)
    for o, c in zip(g_dev, g_cpu, strict=True):
        scale = c.abs().max().double().clamp_min(1)
        torch.testing.assert_close(o.cpu().double() / scale, c.double() / scale, rtol=tol, atol=tol)


def avx2_available():
    return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


@pytest.mark.skipif(not avx2_available(), reason="the CPU has no AVX2: only the portable path")
@pytest.mark.parametrize("threads", [1, 4])  # 4 > B: rows, then planes in parallel
@pytest.mark.parametrize("grad_from", [0, 2])
def test_avx2_rows_match_the_portable_path(monkeypatch, threads, grad_from):
    # W = 21: two blocks of 8 pixels and a tail of 5 that the portable code finishes
    src, depth, pose, K = warp_inputs(B=3, C=4, H=13, W=21, seed=11, dtype=torch.float32)
    depth[0, 0, 0, :5] = torch.tensor([math.nan, math.inf, 0.0, -1.0, 1e-9])
    g = torch.Generator().manual_seed(12)
    gw, gz = torch.randn(src.shape, generator=g), torch.randn(depth.shape, generator=g)

    def run(simd):
        monkeypatch.setenv("SCDEPTH_CPU_SIMD", "1" if simd else "0")
        out = torch.ops.scdepth.inverse_warp(src, depth, pose, K)
        back = torch.ops.scdepth.inverse_warp_backward(gw, gz, src, depth, pose, K, grad_from)
        return out, back

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        (out, back), (out_p, back_p) = run(True), run(False)
    finally:
        torch.set_num_threads(before)
    assert out[2].sum() > 0 and (out[2] == 0).any()
    # warped, z', valid, the source and the depth gradients: the same bits
    for a, b in zip([*out, *back[:2]], [*out_p, *back_p[:2]], strict=True):
        assert torch.equal(a.nan_to_num(7.0), b.nan_to_num(7.0))
    # the pose gradient is summed in another order: NaN where the portable one is (the
    # non-finite depths), and on finite depths as close to float64 as the portable one
    assert torch.isnan(back[2]).equal(torch.isnan(back_p[2]))
    args = (src, torch.where(torch.isfinite(depth), depth, torch.full_like(depth, 2.0)), pose, K)
    monkeypatch.setenv("SCDEPTH_CPU_SIMD", "1")
    gp = torch.ops.scdepth.inverse_warp_backward(gw, gz, *args, 0)[2].double()
    monkeypatch.setenv("SCDEPTH_CPU_SIMD", "0")
    gp_p = torch.ops.scdepth.inverse_warp_backward(gw, gz, *args, 0)[2].double()
    gp64 = torch.ops.scdepth.inverse_warp_backward(
        gw.double(), gz.double(), *(t.double() for t in args), 0
    )[2]
    scale = gp64.abs().max()
    assert (gp - gp64).abs().max() < 1e-5 * scale
    assert (gp - gp64).abs().max() <= 4 * (gp_p - gp64).abs().max() + 1e-6 * scale
