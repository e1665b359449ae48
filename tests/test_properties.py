"""Property-based robustness tests (hypothesis) of every op and its backward.

Random shapes (batch 0..3, H and W 1..24, including sizes that the photometric window
rejects), all four floating dtypes (and mismatched or integer ones), non-contiguous layouts
(transposed, channels-last, strided and offset views whose gaps hold NaN, zero batch
stride), and values with NaN, ±inf, ±0, denormals, 1e-30 and huge magnitudes; bad scalar
arguments, and 1 or 2 CPU threads (the kernels split work by thread count).

Each example either raises a ValueError/TypeError that names a bad argument (the reference
must reject it too), or returns outputs of the documented shapes and dtypes whose invariants
hold for any values. Where the inputs are finite and well-conditioned, outputs and
gradients must also be finite and match the float64 reference, within margins derived from
the compute type's rounding around the contract's discontinuities.
"""

import math
from contextlib import contextmanager

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

import scdepth.ops as ops
from scdepth.ops import reference

FLOAT_TYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
LAYOUTS = ["contiguous", "transposed", "channels_last", "strided", "offset", "broadcast"]
NAN, INF = math.nan, math.inf
F64 = torch.float64


def special_values(dtype):
    """Named special values, each representable in `dtype` (huge: 1e30, or half the largest
    float16)."""
    fi = torch.finfo(dtype)
    huge = min(1e30, fi.max / 2)
    return {
        "nan": NAN,
        "inf": INF,
        "-inf": -INF,
        "0": 0.0,
        "-0": -0.0,
        "1": 1.0,
        "-1": -1.0,
        "huge": huge,
        "-huge": -huge,
        "max": fi.max,
        "1e-30": 1e-30,
        "denormal": fi.smallest_normal / 4,
        "-denormal": -fi.smallest_normal / 4,
    }


ALL_SPECIALS = list(special_values(F64))
# Finite and small: inputs made of these and of the moderate range stay well-conditioned.
SMALL_SPECIALS = ["0", "-0", "1", "-1", "1e-30", "denormal", "-denormal"]
EXTREME_SPECIALS = ["nan", "inf", "-inf", "huge", "-huge", "max"]
BATCHES = st.sampled_from([1, 2, 3, 1, 2, 3, 0])
GRAD_SPECIALS = st.sampled_from([False, False, False, True])


@st.composite
def special_mix(draw, small=SMALL_SPECIALS, extreme=EXTREME_SPECIALS):
    """Names of the special values to sprinkle into a tensor: none, small finite ones only
    (the inputs stay well-conditioned), or those and some that are not."""
    regime = draw(st.sampled_from(["moderate", "small", "extreme"]))
    if regime == "moderate":
        return []
    names = draw(st.lists(st.sampled_from(small), max_size=3, unique=True))
    if regime == "extreme":
        names += draw(st.lists(st.sampled_from(extreme), min_size=1, max_size=3, unique=True))
    return names


def mostly(valid, bad, odds=5):
    """Draws from `valid`, or about once in odds + 1 from the bad values."""
    return st.sampled_from([False] * odds + [True]).flatmap(
        lambda spoil: st.sampled_from(bad) if spoil else valid
    )


def values(shape, dtype, seed, lo, hi, specials=(), density=0.0):
    """Uniform values in [lo, hi), a fraction `density` of them replaced by random picks from
    the named special values."""
    g = torch.Generator().manual_seed(seed)
    t = lo + (hi - lo) * torch.rand(shape, generator=g, dtype=F64)
    if specials and density > 0:
        table = special_values(dtype)
        table = torch.tensor([table[s] for s in specials], dtype=F64)
        pick = torch.randint(len(specials), shape, generator=g)
        hit = torch.rand(shape, generator=g, dtype=F64) < density
        t = torch.where(hit, table[pick], t)
    return t.to(dtype)


def lay_out(t, layout):
    """`t` in another memory layout. Strided and offset views sit in buffers whose other
    elements are NaN, so that a kernel that ignores strides reads NaN. 'broadcast' repeats
    image 0 over the batch (batch stride 0): it changes the values, use what it returns."""
    if layout == "contiguous" or t.numel() == 0:
        return t.contiguous()
    if layout == "transposed" or (layout == "channels_last" and t.dim() != 4):
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        buf = torch.full(t.shape + (2,), NAN, dtype=t.dtype)
        buf[..., 0] = t
        return buf[..., 0]
    if layout == "offset":
        h, w = t.shape[-2:]
        buf = torch.full(t.shape[:-2] + (h + 2, w + 3), NAN, dtype=t.dtype)
        view = buf[..., 1 : 1 + h, 2 : 2 + w]
        view.copy_(t)
        return view
    assert layout == "broadcast"
    return t[:1].expand(t.shape)


@contextmanager
def num_threads(n):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def assert_rejected(call, bad):
    """call() raises a ValueError or TypeError whose message names one of the arguments in
    `bad` (name -> the error type its check raises)."""
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    message = str(info.value)
    named = [n for n in bad if n in message]
    assert named, f"{message!r} names none of {sorted(bad)}"
    assert any(isinstance(info.value, bad[n]) for n in named), (type(info.value), message)


def other_dtype(dtype, kind):
    """A dtype the op must reject next to `dtype`: another floating type, or an integer one."""
    if kind == "int":
        return torch.int32
    return FLOAT_TYPES[(FLOAT_TYPES.index(dtype) + 1) % len(FLOAT_TYPES)]


def with_grad(t):
    """A leaf copy of t (a view of the same values) that requires grad when it can."""
    return t.detach().requires_grad_(t.is_floating_point())


def grads_of(outputs, inputs, grad_outputs):
    """Gradients of sum(output * grad_output) to each input (None where an input is unused)."""
    return torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True)


def eps_of(dtype):
    """Rounding unit of the compute type (float32 for the 16-bit types)."""
    return torch.finfo(F64 if dtype == F64 else torch.float32).eps


def subnormal_step(dtype):
    """The spacing of `dtype`'s subnormals: the absolute rounding error floor of its values."""
    return torch.finfo(dtype).tiny * torch.finfo(dtype).eps


def representable(ref, dtype, margin=16.0):
    """Where the float64 value `ref` is finite and comfortably within `dtype`'s range."""
    return torch.isfinite(ref) & (ref.abs() <= torch.finfo(dtype).max / margin)


def assert_close_scaled(ours, ref, tol, where=None, what="", floor=1e-6):
    """|ours - ref| <= tol * max(max|ref|, floor) (over `where`), in float64, plus the
    rounding of ours to its dtype's subnormals."""
    o, r = ours.detach().double(), ref.detach().double()
    if where is not None:
        o, r = o[where], r[where]
    if r.numel() == 0:
        return
    scale = max(r.abs().max().item(), floor)
    err = (o - r).abs().max().item()
    bound = tol * scale + subnormal_step(ours.dtype)
    assert err <= bound, f"{what}: max error {err:.3g} > {tol:.1g} * {scale:.3g}"


# ---- photometric_error

WINDOW_BAD = [1, 2, 4, 13, -3]
ALPHA_BAD = [-1e-9, 1.0000001, NAN, INF, -INF]
PHOTO_LO, PHOTO_HI = -1.0, 2.0  # the moderate range of image values


def photometric_bad_args(H, W, window, alpha, retyped):
    """The arguments the op must reject, and the error type of each."""
    bad = {retyped: TypeError} if retyped else {}
    window_ok = window % 2 == 1 and 3 <= window <= 11
    if not window_ok:
        bad["window"] = ValueError
    if not 0.0 <= alpha <= 1.0:
        bad["alpha"] = ValueError
    elif window_ok and (H <= window // 2 or W <= window // 2):
        bad["tgt height and width must be > window // 2"] = ValueError
    return bad


def photometric_run(op, tgt, warped, weight, gp, gl, alpha, window):
    """photo, l1 and the gradients of sum(photo * gp + l1 * gl) to tgt, warped (and weight)."""
    inputs = [with_grad(t) for t in (tgt, warped)]
    if weight is not None:
        inputs.append(with_grad(weight))
    w = inputs[2] if weight is not None else None
    photo, l1 = op(inputs[0], inputs[1], w, alpha=alpha, window=window)
    return (photo, l1, *grads_of((photo, l1), inputs, (gp, gl)))


@settings(max_examples=150, deadline=None)
@given(
    B=BATCHES,
    C=st.integers(1, 4),
    H=st.integers(1, 24),
    W=st.integers(1, 24),
    dtype=st.sampled_from(FLOAT_TYPES),
    window=mostly(st.sampled_from([3, 5, 7, 9, 11]), WINDOW_BAD, odds=8),
    alpha=mostly(st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.85, 1.0])), ALPHA_BAD, 8),
    weighted=st.booleans(),
    retype=mostly(st.none(), ["warped", "weight", "tgt"], odds=10),
    layouts=st.lists(st.sampled_from(LAYOUTS), min_size=5, max_size=5),
    specials=special_mix(),
    density=st.sampled_from([0.05, 0.3, 1.0]),
    grad_specials=GRAD_SPECIALS,
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31),
)
def test_property_photometric_error(
    B, C, H, W, dtype, window, alpha, weighted, retype, layouts, specials, density,
    grad_specials, threads, seed,
):  # fmt: skip
    img = (B, C, H, W)
    tgt = lay_out(values(img, dtype, seed, PHOTO_LO, PHOTO_HI, specials, density), layouts[0])
    warped = lay_out(
        values(img, dtype, seed + 1, PHOTO_LO, PHOTO_HI, specials, density), layouts[1]
    )
    weight = None
    if weighted:
        weight = values((B, 1, H, W), dtype, seed + 2, 0.0, 2.0, specials, density)
        weight = lay_out(weight, layouts[2])
    gspecials = ["nan", "inf", "huge"] if grad_specials else []
    gp = lay_out(values((B, 1, H, W), dtype, seed + 3, -1.0, 1.0, gspecials, 0.1), layouts[3])
    gl = lay_out(values((B, 1, H, W), dtype, seed + 4, -1.0, 1.0, gspecials, 0.1), layouts[4])
    # A tensor of another dtype: tgt and warped both integers, or warped or weight of
    # another floating type.
    retyped = None
    if retype == "tgt":
        tgt, warped, retyped = tgt.to(torch.int32), warped.to(torch.int32), "tgt"
    elif retype == "warped" or (retype == "weight" and weighted):
        retyped = retype
        if retype == "warped":
            warped = warped.to(other_dtype(dtype, "float"))
        else:
            weight = weight.to(other_dtype(dtype, "float"))
    args = (tgt, warped, weight, gp, gl, alpha, window)

    bad = photometric_bad_args(H, W, window, alpha, retyped)
    if bad:
        event(f"photometric: rejected ({', '.join(bad)})")
        for op in (ops.photometric_error, reference.photometric_error):
            assert_rejected(lambda op=op: photometric_run(op, *args), bad)
        return

    with num_threads(threads):
        photo, l1, *grads = photometric_run(ops.photometric_error, *args)
    inputs = (tgt, warped) + ((weight,) if weighted else ())
    assert photo.shape == l1.shape == (B, 1, H, W)
    assert photo.dtype == l1.dtype == dtype
    assert len(grads) == len(inputs)
    for g, t in zip(grads, inputs, strict=True):
        assert g is not None and g.shape == t.shape and g.dtype == dtype
    if B == 0:
        event("photometric: empty batch")
        return

    # Any values. l1 = mean_c |tgt - warped| is NaN exactly where the reference's is, and
    # close to it where finite.
    r_photo, r_l1, *_ = photometric_run(reference.photometric_error, *args)
    assert torch.equal(l1.isnan(), r_l1.isnan())
    finite_l1 = representable(r_l1.double(), dtype)
    assert_close_scaled(l1, r_l1, 8 * torch.finfo(dtype).eps, finite_l1, "l1")
    assert (l1[~l1.isnan()] >= 0).all()
    # photo = w * mean_c(terms in [0, 1]): between 0 and w wherever it is a number.
    w = weight.double() if weighted else torch.ones(B, 1, H, W, dtype=F64)
    p = photo.detach().double()
    check = torch.isfinite(w) & ~p.isnan()
    assert (p[check] * w[check].sign() >= 0).all(), "photo has the sign of the weight"
    assert (p[check].abs() <= w[check].abs() * (1 + 1e-5)).all(), "photo beyond the weight"

    well_conditioned = (
        all(bool((torch.isfinite(t) & (t.double().abs() <= 2.0)).all()) for t in inputs)
        and not grad_specials
    )
    event(f"photometric: {'well-conditioned' if well_conditioned else 'extreme values'}")
    if not well_conditioned:
        return
    # Finite, and the float64 reference on the same values (16-bit types: within their
    # rounding; float32: within the cancellation of σ² = E[x²] - μ² against C2 in flat
    # windows, see the README).
    as64 = [t.double() if isinstance(t, torch.Tensor) else t for t in args]
    exact = photometric_run(reference.photometric_error, *as64)
    ours = (photo, l1, *grads)
    tol = {F64: 1e-9, torch.float32: 1e-3}.get(dtype, 4 * torch.finfo(dtype).eps)
    names = ["photo", "l1", "grad_tgt", "grad_warped", "grad_weight"]
    for name, o, r in zip(names, ours, exact, strict=False):
        assert torch.isfinite(o[representable(r, dtype)]).all(), f"{name} not finite"
        # photo's terms are in [0, 1], rounded in the compute type: absolute errors there.
        floor = 1.0 if name == "photo" else 1e-3
        assert_close_scaled(o, r, tol, what=name, floor=floor)
