import ctypes
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import devices
from helpers import build_host, smooth_field

import scdepth.ops as ops
from scdepth.ops import reference

FLOAT_TYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
WINDOWS = [3, 5, 7, 9, 11]


def images(B=2, C=3, H=12, W=17, *, seed=0, dtype=torch.float64, device="cpu", weight=True):
    """tgt, warped (warped = tgt plus noise) and a weight map. The images are textured at every
    pixel (every window's variance well above C2), so that float32 stays within 1e-5 of
    float64: in flat or saturated regions σ² = E[x²] − μ² cancels against C2 = 9e-4 and any
    float32 evaluation (the reference's too) is off by up to ~1e-4 (see the flat-region test)."""
    g = torch.Generator().manual_seed(seed)
    tgt = 0.5 + 0.1 * smooth_field(B, C, H, W, generator=g, cells=2)
    tgt = tgt + 0.4 * (torch.rand(B, C, H, W, generator=g, dtype=torch.float64) - 0.5)
    warped = tgt + 0.15 * torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    w = torch.rand(B, 1, H, W, generator=g, dtype=torch.float64) if weight else None
    return tuple(
        t.to(device=device, dtype=dtype) if t is not None else None for t in (tgt, warped, w)
    )


def output_grads(tgt, *, seed=1):
    g = torch.Generator().manual_seed(seed)
    B, _, H, W = tgt.shape
    return tuple(
        torch.randn(B, 1, H, W, generator=g, dtype=torch.float64).to(tgt) for _ in range(2)
    )


def run(op, tgt, warped, weight, gphoto, gl1, **kw):
    """Outputs and the gradients of sum(photo * gphoto + l1 * gl1) to every input."""
    inputs = [t.detach().requires_grad_() for t in (tgt, warped)]
    if weight is not None:
        inputs.append(weight.detach().requires_grad_())
    photo, l1 = op(*inputs[:2], inputs[2] if weight is not None else None, **kw)
    grads = torch.autograd.grad((photo * gphoto).sum() + (l1 * gl1).sum(), inputs)
    return (photo.detach(), l1.detach(), *grads)


def assert_all_close(ours, ref, **tol):
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref, strict=True):
        assert o.dtype == r.dtype and o.shape == r.shape
        torch.testing.assert_close(o, r, **tol)


def assert_all_close_scaled(ours, ref, tol):
    """Each pair within tol relative to the largest magnitude of the expected tensor."""
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref, strict=True):
        assert o.shape == r.shape
        scale = r.double().abs().max().clamp_min(1e-6).item()
        torch.testing.assert_close(
            o.detach().cpu().double() / scale, r.detach().cpu().double() / scale, rtol=tol, atol=tol
        )


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("weighted", [True, False], ids=["weight", "no-weight"])
def test_forward_and_gradients_match_reference_float64(window, weighted):
    args = images(B=2, C=3, H=13, W=19, seed=window, weight=weighted)
    g = output_grads(args[0])
    for alpha in (0.85, 0.3):
        ours = run(ops.photometric_error, *args, *g, alpha=alpha, window=window)
        ref = run(reference.photometric_error, *args, *g, alpha=alpha, window=window)
        assert_all_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_contract_by_hand():
    """photo and l1 written out for one pixel: SSIM over the reflected 3x3 window at a corner."""
    tgt, warped, weight = images(B=1, C=2, H=4, W=5, seed=3)
    photo, l1 = ops.photometric_error(tgt, warped, weight, alpha=0.85, window=3)
    rows, cols = [1, 0, 1], [1, 0, 1]  # reflect(-1) = 1: the window of pixel (0, 0)
    terms = []
    for c in range(2):
        x = tgt[0, c][rows][:, cols]
        y = warped[0, c][rows][:, cols]
        mx, my = x.mean(), y.mean()
        sx, sy = (x * x).mean() - mx**2, (y * y).mean() - my**2
        sxy = (x * y).mean() - mx * my
        ssim = ((2 * mx * my + 1e-4) * (2 * sxy + 9e-4)) / (
            (mx**2 + my**2 + 1e-4) * (sx + sy + 9e-4)
        )
        d = (tgt[0, c, 0, 0] - warped[0, c, 0, 0]).abs()
        terms.append(0.15 * d.clamp(0, 1) + 0.85 * ((1 - ssim) / 2).clamp(0, 1))
    torch.testing.assert_close(photo[0, 0, 0, 0], weight[0, 0, 0, 0] * sum(terms) / 2)
    torch.testing.assert_close(l1[0, 0, 0, 0], (tgt[0, :, 0, 0] - warped[0, :, 0, 0]).abs().mean())


def test_identical_images_give_zero_error_and_zero_gradient():
    tgt, _, weight = images(seed=4)
    photo, l1 = ops.photometric_error(tgt, tgt.clone(), weight)
    assert (photo == 0).all() and (l1 == 0).all()
    # SSIM = 1 exactly: (1 - SSIM)/2 = 0 sits on clamp's lower bound, |x - y| = 0 on abs's kink.
    g = output_grads(tgt)
    ours = run(ops.photometric_error, tgt, tgt.clone(), weight, *g)
    ref = run(reference.photometric_error, tgt, tgt.clone(), weight, *g)
    assert_all_close(ours, ref, rtol=0, atol=1e-14)
    assert all((t == 0).all() for t in ours[2:4])


def test_clamp_bounds_pass_no_gradient():
    """|x - y| = 1 exactly, |x - y| > 1 and identical patches: every clamp kink, with the
    gradient 0 at the bounds on every torch version (torch 2.11's clamp passes 1 there)."""
    tgt, warped, weight = images(B=2, C=2, H=10, W=11, seed=5)
    tgt[0, 0, 2, 3], warped[0, 0, 2, 3] = 1.0, 0.0  # |d| = 1: on the upper bound
    tgt[0, 1, 4, :5], warped[0, 1, 4, :5] = -0.5, 1.0  # |d| = 1.5: clamped
    warped[1, :, 5:, 6:] = tgt[1, :, 5:, 6:]  # identical patch: SSIM = 1 inside
    g = output_grads(tgt, seed=6)
    ours = run(ops.photometric_error, tgt, warped, weight, *g)
    ref = run(reference.photometric_error, tgt, warped, weight, *g)
    assert_all_close(ours, ref, rtol=1e-10, atol=1e-12)
    v = torch.tensor([0.0, 1.0, 0.5, 1.5, -0.5, float("nan")], requires_grad=True)
    reference._clamp01(v).sum().backward()
    assert v.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_float32_matches_float64_reference():
    args = images(B=2, C=3, H=40, W=53, seed=7, dtype=torch.float32)
    g = output_grads(args[0])
    for window in (3, 7):
        ours = run(ops.photometric_error, *args, *g, window=window)
        as64 = (t.double() for t in args + g)
        ref = run(reference.photometric_error, *as64, window=window)
        assert all(o.dtype == torch.float32 for o in ours)
        assert_all_close_scaled(ours, ref, 1e-5)


def test_float32_is_as_accurate_as_the_reference_in_flat_regions():
    """In flat regions σ² = E[x²] − μ² is a cancellation measured against C2 = 9e-4: running
    sums that drift would show there (the float32 kernels sum columns in float64)."""
    tgt, warped, weight = images(B=2, C=3, H=160, W=64, seed=8)
    tgt[:, :, 90:130, 10:50] = 0.3
    warped[:, :, 90:130, 10:50] = 0.3001
    exact = reference.photometric_error(tgt, warped, weight, window=3)[0]
    args32 = [t.float() for t in (tgt, warped, weight)]
    err = (ops.photometric_error(*args32, window=3)[0].double() - exact).abs().max()
    ref_err = (reference.photometric_error(*args32, window=3)[0].double() - exact).abs().max()
    assert err <= 4 * ref_err + 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_types_match_reference(dtype):
    args = images(B=2, C=3, H=20, W=24, seed=9, dtype=dtype)
    g = output_grads(args[0])
    ours = run(ops.photometric_error, *args, *g, window=5)
    ref = run(reference.photometric_error, *args, *g, window=5)
    assert all(o.dtype == dtype for o in ours)
    assert_all_close_scaled(ours, ref, 1e-2)


def kink_free_inputs(window, seed):
    """Inputs whose |x - y| and (1 - SSIM)/2 stay >= 1e-3 from the clamp and abs kinks."""
    for s in range(seed, seed + 100):
        tgt, warped, weight = images(B=2, C=2, H=6, W=7, seed=s)
        p = window // 2
        x = F.pad(tgt, (p,) * 4, mode="reflect")
        y = F.pad(warped, (p,) * 4, mode="reflect")

        def pool(t):
            return F.avg_pool2d(t, window, stride=1)

        mx, my = pool(x), pool(y)
        ssim = ((2 * mx * my + 1e-4) * (2 * (pool(x * y) - mx * my) + 9e-4)) / (
            (mx**2 + my**2 + 1e-4) * (pool(x * x) - mx**2 + pool(y * y) - my**2 + 9e-4)
        )
        d, e = (tgt - warped).abs(), (1 - ssim) / 2
        if ((d > 1e-3) & (d < 1 - 1e-3) & (e > 1e-3) & (e < 1 - 1e-3)).all():
            return tgt, warped, weight
    raise AssertionError("no kink-free inputs found")


@pytest.mark.parametrize("window", [3, 5])
def test_gradcheck(window):
    tgt, warped, weight = (t.requires_grad_() for t in kink_free_inputs(window, 10))
    assert torch.autograd.gradcheck(
        lambda x, y, w: ops.photometric_error(x, y, w, window=window), (tgt, warped, weight)
    )
    assert torch.autograd.gradcheck(
        lambda x, y: ops.photometric_error(x, y, window=window), (tgt, warped)
    )


@pytest.mark.parametrize("window", WINDOWS)
def test_smallest_images_reflect_every_border_pixel(window):
    """H = W = p + 1 (the smallest the reflection allows): every source pixel is read through
    both the top and the bottom reflection, the adjoint must send each padded tap back."""
    p = window // 2
    for H, W in [(p + 1, p + 1), (p + 1, 3 * p + 4), (2 * p + 3, p + 1)]:
        args = images(B=2, C=2, H=H, W=W, seed=11 + H + W)
        g = output_grads(args[0])
        ours = run(ops.photometric_error, *args, *g, window=window)
        ref = run(reference.photometric_error, *args, *g, window=window)
        assert_all_close(ours, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 3, 150, 41), (3, 1, 37, 70), (2, 2, 17, 33), (1, 4, 9, 100)])
def test_odd_sizes_and_many_row_bands(shape):
    """Sizes not multiples of the CUDA tile (16 or 8 x 32) nor of the CPU row bands."""
    B, C, H, W = shape
    args = images(B=B, C=C, H=H, W=W, seed=H + W)
    g = output_grads(args[0])
    for window in (3, 7):
        ours = run(ops.photometric_error, *args, *g, window=window)
        ref = run(reference.photometric_error, *args, *g, window=window)
        assert_all_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_result_does_not_depend_on_the_thread_count():
    args = images(B=1, C=3, H=130, W=40, seed=12)
    g = output_grads(args[0])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(ops.photometric_error, *args, *g, window=7)
        torch.set_num_threads(max(threads, 4))
        many = run(ops.photometric_error, *args, *g, window=7)
    finally:
        torch.set_num_threads(threads)
    assert_all_close(one, many, rtol=1e-12, atol=1e-14)


def reaching(bad, window, times=1):
    """Pixels whose reflection-padded window (grown `times` times) holds a pixel of bad."""
    p = window // 2
    m = bad.double()
    for _ in range(times):
        m = F.max_pool2d(F.pad(m, (p,) * 4, mode="reflect"), window, 1)
    return m > 0


WILD = pytest.mark.parametrize("value", [math.nan, math.inf, -1e30], ids=["nan", "inf", "huge"])


def wild_case(value, window):
    """Inputs with `value` at two pixels (one a corner, which also reaches through the
    reflection), over several CPU row bands on any thread count; the float64 reference's
    outputs and gradients; the masks of photo, l1 and gradient elements the value must not
    reach."""
    tgt, warped, weight = images(B=2, C=3, H=70, W=40, seed=21)
    tgt[1, 1, 20, 7] = value
    warped[0, 2, -1, -1] = value
    grads = output_grads(tgt)
    ref = run(reference.photometric_error, tgt, warped, weight, *grads, window=window)
    bad = ~torch.isfinite(tgt) | (tgt.abs() > 2) | ~torch.isfinite(warped) | (warped.abs() > 2)
    bad = bad.any(1, keepdim=True)
    outputs, sources = ~reaching(bad, window), ~reaching(bad, window, times=2)
    return (tgt, warped, weight, *grads), ref, [outputs, ~bad, sources, sources, outputs]


def assert_unreached(ours, ref, clean, tol):
    for name, o, r, c in zip(
        ["photo", "l1", "grad_tgt", "grad_warped", "grad_weight"], ours, ref, clean, strict=True
    ):
        o, r, c = o.cpu().double(), r.double(), c.expand_as(r)
        assert torch.isfinite(o[c]).all(), f"{name}: non-finite outside the windows"
        torch.testing.assert_close(
            o[c], r[c], rtol=tol, atol=tol, msg=lambda m, name=name: f"{name}: {m}"
        )


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@WILD
@pytest.mark.parametrize("window", [3, 7])
def test_a_wild_value_reaches_only_the_windows_that_hold_it(device, dtype, value, window):
    """A NaN, inf or huge input spoils the outputs whose windows hold it and the gradients of
    the pixels that share a window with it, and nothing more: the CPU kernels' sums over rows
    must not carry it (or the rounding it leaves behind) to the rest of their band of rows."""
    args, ref, clean = wild_case(value, window)
    ours = run(
        ops.photometric_error, *(t.to(device=device, dtype=dtype) for t in args), window=window
    )
    assert_unreached(ours, ref, clean, {torch.float64: 1e-10, torch.float32: 1e-4}[dtype])


def test_empty_batch():
    tgt, warped, weight = (t[:0] for t in images(B=1, H=5, W=6, seed=13))
    for w in (weight, None):
        ours = run(ops.photometric_error, tgt, warped, w, *output_grads(tgt))
        ref = run(reference.photometric_error, tgt, warped, w, *output_grads(tgt))
        assert_all_close(ours, ref)
        assert ours[0].shape == (0, 1, 5, 6)


def test_non_contiguous_inputs():
    tgt, warped, weight = images(B=2, C=3, H=14, W=15, seed=14)
    tgt_nc = tgt.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # channels last
    warped_nc = torch.stack([warped, warped], -1)[..., 0]  # every other element
    weight_nc = weight.transpose(2, 3).contiguous().transpose(2, 3)
    gp, gl = (t.transpose(2, 3).contiguous().transpose(2, 3) for t in output_grads(tgt))
    assert not any(t.is_contiguous() for t in (tgt_nc, warped_nc, weight_nc, gp))
    ours = run(ops.photometric_error, tgt_nc, warped_nc, weight_nc, gp, gl, window=5)
    ref = run(reference.photometric_error, tgt, warped, weight, gp.contiguous(), gl, window=5)
    assert_all_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_gradient_only_to_requested_inputs():
    tgt, warped, weight = images(seed=15)
    warped.requires_grad_()
    photo, l1 = ops.photometric_error(tgt, warped, weight)
    (g,) = torch.autograd.grad(photo.sum() + l1.sum(), warped)
    warped_r = warped.detach().requires_grad_()
    photo_r, l1_r = reference.photometric_error(tgt, warped_r, weight)
    (g_r,) = torch.autograd.grad(photo_r.sum() + l1_r.sum(), warped_r)
    torch.testing.assert_close(g, g_r, rtol=1e-10, atol=1e-12)
    # Only l1 used: photo's gradient is zero.
    (g_l1,) = torch.autograd.grad(ops.photometric_error(tgt, warped, weight)[1].sum(), warped)
    torch.testing.assert_close(g_l1, torch.sign(warped - tgt) / tgt.shape[1])


def test_opcheck():
    for seed, dtype in [(16, torch.float64), (17, torch.float32)]:
        tgt, warped, weight = images(B=2, C=3, H=6, W=7, seed=seed, dtype=dtype)
        for w in (weight, None):
            for t in (tgt, warped) + ((w,) if w is not None else ()):
                t.requires_grad_()
            torch.library.opcheck(
                torch.ops.scdepth.photometric_error.default, (tgt, warped, w, 0.85, 5)
            )
            gp, gl = output_grads(tgt)
            torch.library.opcheck(
                torch.ops.scdepth.photometric_error_backward.default,
                (
                    gp,
                    gl,
                    tgt.detach(),
                    warped.detach(),
                    w.detach() if w is not None else None,
                    0.85,
                    3,
                ),
            )


def test_torch_compile_fullgraph_matches_eager():
    def f(tgt, warped, weight):
        photo, l1 = ops.photometric_error(tgt, warped, weight, alpha=0.85, window=7)
        return torch.minimum(photo, l1).mean()

    compiled = torch.compile(f, fullgraph=True)
    results = []
    for fn in (compiled, f):
        args = [t.requires_grad_() for t in images(seed=18, dtype=torch.float32)]
        loss = fn(*args)
        results.append((loss, *torch.autograd.grad(loss, args)))
    assert_all_close(*results)


def test_backends_expose_the_op():
    assert ops.get_backend("ext").photometric_error is ops.photometric_error
    assert ops.get_backend("reference").photometric_error is reference.photometric_error


@pytest.mark.parametrize(
    "op", [ops.photometric_error, reference.photometric_error], ids=["ext", "ref"]
)
@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda a, k: ((a[0][0],) + a[1:], k), ValueError, ["tgt", "[B, C, H, W]"]),
        (lambda a, k: ((a[0], a[1][:, :2]) + a[2:], k), ValueError, ["warped", "shaped like"]),
        (lambda a, k: ((a[0], a[1][..., :-1]) + a[2:], k), ValueError, ["warped"]),
        (
            lambda a, k: (a[:2] + (a[2].expand(-1, 3, -1, -1),), k),
            ValueError,
            ["weight", "[B, 1, H, W]"],
        ),
        (lambda a, k: (a[:2] + (a[2][:1],), k), ValueError, ["weight"]),
        (lambda a, k: ((a[0], a[1].float(), a[2]), k), TypeError, ["warped", "dtype"]),
        (lambda a, k: (a[:2] + (a[2].float(),), k), TypeError, ["weight", "dtype"]),
        (lambda a, k: ((a[0].long(), a[1].long(), None), k), TypeError, ["tgt", "float"]),
        (lambda a, k: ((a[0], a[1].to("meta"), None), k), ValueError, ["warped", "device"]),
        (lambda a, k: (a, dict(k, window=4)), ValueError, ["window", "odd"]),
        (lambda a, k: (a, dict(k, window=1)), ValueError, ["window"]),
        (lambda a, k: (a, dict(k, window=13)), ValueError, ["window"]),
        (lambda a, k: (a, dict(k, window=3.0)), TypeError, ["window", "int"]),
        (lambda a, k: (a, dict(k, alpha=1.5)), ValueError, ["alpha", "[0, 1]"]),
        (lambda a, k: (a, dict(k, alpha=math.nan)), ValueError, ["alpha"]),
        (
            lambda a, k: ((a[0][:, :, :3], a[1][:, :, :3], a[2][:, :, :3]), dict(k, window=7)),
            ValueError,
            ["height and width", "reflection"],
        ),
        (
            lambda a, k: ((a[0][..., :2], a[1][..., :2], a[2][..., :2]), k),
            ValueError,
            ["height and width", "reflection"],
        ),
    ],
)
def test_bad_arguments_raise_clear_errors(op, change, error, words):
    args, kwargs = change(images(B=2, C=3, H=6, W=7, seed=19), {"alpha": 0.85, "window": 5})
    with pytest.raises(error) as info:
        op(*args, **kwargs)
    for w in words:
        assert w in str(info.value)


def test_raw_ops_check_arguments_too():
    tgt, warped, weight = images(B=2, C=3, H=6, W=7, seed=20)
    with pytest.raises(ValueError, match="window must be odd"):
        torch.ops.scdepth.photometric_error(tgt, warped, weight, 0.85, 6)
    with pytest.raises(ValueError, match="alpha must be in"):
        torch.ops.scdepth.photometric_error(tgt, warped, weight, -0.1, 3)
    with pytest.raises(ValueError, match="grad_photo must be"):
        torch.ops.scdepth.photometric_error_backward(tgt, weight, tgt, warped, weight, 0.85, 3)
    with pytest.raises(ValueError, match="grad_l1 must be"):
        torch.ops.scdepth.photometric_error_backward(
            weight, weight[:1], tgt, warped, weight, 0.85, 3
        )


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("window", [3, 7, 11])
def test_device_matches_cpu_and_reference(device, dtype, window):
    """Three tiles across, a partial tile down (H = 33, W = 70): the device's kernels against
    the CPU kernels and the reference (float64 for float32 and float64; the 16-bit reference,
    which computes in float32 from the same rounded inputs, for the 16-bit types)."""
    args = images(B=2, C=3, H=33, W=70, seed=21, dtype=dtype)
    g = output_grads(args[0])
    oracle_args = tuple(t.double() if t is not None else None for t in args + g)
    if dtype in (torch.float16, torch.bfloat16):
        oracle_args = args + g
    tol = {torch.float64: 1e-10, torch.float32: 1e-5}.get(dtype, 1e-2)

    def on(ts):
        return tuple(t.to(device) if t is not None else None for t in ts)

    for weighted in (True, False):
        a = (args[0], args[1], args[2] if weighted else None) + g
        o = oracle_args[:2] + (oracle_args[2] if weighted else None,) + oracle_args[3:]
        ours = run(ops.photometric_error, *on(a), window=window)
        assert all(t.device.type == device and t.dtype == dtype for t in ours)
        assert_all_close_scaled(ours, run(reference.photometric_error, *o, window=window), tol)
        assert_all_close_scaled(ours, run(ops.photometric_error, *a, window=window), 3 * tol)


# ---- The CUDA kernels' tile code, run on the host (csrc/photometric/photometric_tile.h).

GUARD = 4096  # elements of NaN around every buffer: out-of-bounds reads poison, writes show


@pytest.fixture(scope="module")
def tile_lib(tmp_path_factory):
    lib = tmp_path_factory.mktemp("tile") / "libphotometric_tile_host.so"
    done = build_host("photometric_tile_host.cpp", lib, "-O1", "-shared", "-fPIC")
    assert done.returncode == 0, done.stderr
    return ctypes.CDLL(str(lib))


def guarded(t):
    buf = torch.full((t.numel() + 2 * GUARD,), math.nan, dtype=t.dtype)
    buf[GUARD : GUARD + t.numel()] = t.reshape(-1)
    return buf


def inner(buf, shape):
    assert buf[:GUARD].isnan().all() and buf[-GUARD:].isnan().all(), "write out of bounds"
    return buf[GUARD:-GUARD].reshape(shape)


def tile_emulation(lib, tgt, warped, weight, gphoto, gl1, alpha, window):
    B, C, H, W = tgt.shape
    suffix = {torch.float32: "f32", torch.float64: "f64"}[tgt.dtype]
    maps = (B, 1, H, W)
    x, y, gp, gl = (guarded(t) for t in (tgt, warped, gphoto, gl1))
    w = guarded(weight) if weight is not None else None
    out = [guarded(torch.empty(n, dtype=tgt.dtype)) for n in (B * H * W,) * 2 + (tgt.numel(),) * 2]
    gw = guarded(torch.empty(B * H * W, dtype=tgt.dtype)) if weight is not None else None

    def ptr(buf):
        return None if buf is None else ctypes.c_void_p(buf[GUARD:].data_ptr())

    sizes = [ctypes.c_int64(n) for n in (B, C, H, W)] + [ctypes.c_int(window)]
    rc = getattr(lib, f"tile_forward_{suffix}")(
        ptr(x), ptr(y), ptr(w), ptr(out[0]), ptr(out[1]), *sizes, ctypes.c_double(alpha)
    )
    assert rc == 0, "a forward tile wrote outside its shared memory"
    rc = getattr(lib, f"tile_backward_{suffix}")(
        ptr(gp),
        ptr(gl),
        ptr(x),
        ptr(y),
        ptr(w),
        ptr(out[2]),
        ptr(out[3]),
        ptr(gw),
        *sizes,
        ctypes.c_double(alpha),
    )
    assert rc == 0, "a backward tile wrote outside its shared memory"
    result = [
        inner(out[0], maps),
        inner(out[1], maps),
        inner(out[2], tgt.shape),
        inner(out[3], tgt.shape),
    ]
    return result + ([inner(gw, maps)] if weight is not None else [])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "shape, window",
    [
        ((2, 3, 33, 70, 3), 3),  # partial tiles on both axes
        ((1, 3, 16, 32, 3), 3),  # exactly one 16 x 32 tile
        ((2, 2, 17, 33, 7), 7),
        ((1, 1, 6, 6, 11), 11),  # H = W = p + 1
        ((2, 2, 3, 40, 5), 5),
        ((1, 3, 25, 9, 9), 9),
    ],
)
def test_cuda_tile_code_on_the_host_matches_cpu_kernels(tile_lib, dtype, shape, window):
    B, C, H, W, _ = shape
    tgt, warped, weight = images(B=B, C=C, H=H, W=W, seed=H * W, dtype=dtype)
    gphoto, gl1 = output_grads(tgt)
    tol = {torch.float64: 1e-12, torch.float32: 3e-5}[dtype]
    for w in (weight, None):
        emulated = tile_emulation(tile_lib, tgt, warped, w, gphoto, gl1, 0.85, window)
        photo, l1 = ops.photometric_error(tgt, warped, w, alpha=0.85, window=window)
        grads = torch.ops.scdepth.photometric_error_backward(
            gphoto, gl1, tgt, warped, w, 0.85, window
        )
        expected = [photo, l1, grads[0], grads[1]] + ([grads[2]] if w is not None else [])
        assert_all_close_scaled(emulated, expected, tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@WILD
def test_cuda_tile_code_on_the_host_keeps_a_wild_value_in_its_windows(tile_lib, dtype, value):
    args, ref, clean = wild_case(value, 7)
    ours = tile_emulation(tile_lib, *(t.to(dtype) for t in args), 0.85, 7)
    assert_unreached(ours, ref, clean, {torch.float64: 1e-10, torch.float32: 1e-4}[dtype])
