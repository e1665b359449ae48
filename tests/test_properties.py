"""Property-based robustness tests (hypothesis) of every op and its backward.

Random shapes (batch 0..3, H and W 1..24, 0..24 for the pairs, including sizes that the
photometric window rejects), all four floating dtypes (and mismatched or integer ones),
non-contiguous layouts (transposed, channels-last, strided and offset views whose gaps hold
NaN, zero batch stride), and values with NaN, ±inf, ±0, denormals, 1e-30 and huge
magnitudes; intrinsics that are singular or not finite, huge translations, bad scalar
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
import torch.nn.functional as F
from helpers import python_label
from hypothesis import event, given, settings
from hypothesis import strategies as st

import scdepth.ops as ops
from scdepth.geometry import pixel_rays, pose_vec2mat, sobel
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


def clamp_kinks(tgt, warped, window, dtype):
    """[B, C, H, W]: where the gradient of the compute type may fall on the other side of a
    clamp's bound than the float64 reference's, and so differ by a whole term: within
    window // 2 of a window whose (1 - SSIM) / 2 is within the compute type's error of 0
    or 1 (σ² = E[x²] - μ² against C2: ~1e-3 in float32), and, below float64, where
    |tgt - warped| is within rounding of 0 or 1."""
    x, y = tgt.double(), warped.double()
    p = window // 2
    xp, yp = (F.pad(t, (p, p, p, p), mode="reflect") for t in (x, y))

    def pool(t):
        return F.avg_pool2d(t, window, stride=1)

    mx, my = pool(xp), pool(yp)
    sx, sy, sxy = pool(xp * xp) - mx**2, pool(yp * yp) - my**2, pool(xp * yp) - mx * my
    c1, c2 = reference.SSIM_C1, reference.SSIM_C2
    ssim = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (sx + sy + c2))
    tau = 1e-10 if dtype == F64 else 2e-3
    e = (1 - ssim) / 2
    near = ((e <= tau) | (e >= 1 - tau)).double()
    near = F.max_pool2d(near, window, stride=1, padding=p) > 0  # the pixels those windows read
    if dtype != F64:
        d, delta = (x - y).abs(), 4 * eps_of(dtype) * (x.abs() + y.abs())
        near |= (d <= delta) | ((d - 1).abs() <= delta)
    return near


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
    # windows, see docs/kernels.md).
    as64 = [t.double() if isinstance(t, torch.Tensor) else t for t in args]
    exact = photometric_run(reference.photometric_error, *as64)
    ours = (photo, l1, *grads)
    tol = {F64: 1e-9, torch.float32: 1e-3}.get(dtype, 4 * torch.finfo(dtype).eps)
    kinks = clamp_kinks(tgt, warped, window, dtype)
    names = ["photo", "l1", "grad_tgt", "grad_warped", "grad_weight"]
    for name, o, r in zip(names, ours, exact, strict=False):
        assert torch.isfinite(o[representable(r, dtype)]).all(), f"{name} not finite"
        # photo's terms are in [0, 1], rounded in the compute type: absolute errors there.
        floor = 1.0 if name == "photo" else 1e-3
        where = ~kinks if name in ("grad_tgt", "grad_warped") else None
        assert_close_scaled(o, r, tol, where, name, floor)


# ---- inverse_warp

K_KINDS = ["good"] * 6 + ["singular", "nonfinite"]
POSE_KINDS = ["random", "random", "small", "identity"]


def intrinsics(B, H, W, dtype, seed, kind):
    """K [B, 3, 3] and which images have a K that must be rejected: 'singular' zeroes a row
    or a column of one image's K (determinant exactly 0), 'nonfinite' puts NaN or ±inf in one
    entry."""
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(B, 6, generator=g, dtype=F64)
    f = max(H, W)
    K = torch.zeros(B, 3, 3, dtype=F64)
    K[:, 0, 0] = 0.5 + 2 * f * r[:, 0]
    K[:, 1, 1] = 0.5 + 2 * f * r[:, 1]
    K[:, 0, 1] = torch.where(r[:, 2] < 0.5, 0.0, r[:, 2] - 0.75)  # skew, often 0
    K[:, 0, 2] = -2 + (W + 3) * r[:, 3]
    K[:, 1, 2] = -2 + (H + 3) * r[:, 4]
    K[:, 2, 2] = 1.0
    spoiled = torch.zeros(B, dtype=torch.bool)
    if kind != "good" and B > 0:
        n = int(torch.randint(B, (), generator=g))
        pick = int(torch.randint(6, (), generator=g))
        if kind == "singular" and pick < 3:
            K[n, pick] = 0.0
        elif kind == "singular":
            K[n, :, pick - 3] = 0.0
        else:
            K[n].view(-1)[pick] = [NAN, INF, -INF][pick % 3]
        spoiled[n] = True
    return K.to(dtype), spoiled


def pose_matrices(B, dtype, seed, kind, t_specials, density):
    """[R | t]: R from Euler angles (any: 'random'; < 0.1 rad: 'small'; identity), t from
    [-1, 1] with special values (huge translations, NaN, ...) sprinkled in."""
    g = torch.Generator().manual_seed(seed)
    scale = {"random": math.pi, "small": 0.1, "identity": 0.0}[kind]
    angles = scale * (2 * torch.rand(B, 3, generator=g, dtype=F64) - 1)
    t = values((B, 3), F64, seed + 1, -1.0, 1.0)
    if kind == "identity":
        t.zero_()
    pose = pose_vec2mat(torch.cat([t, angles], 1))
    if t_specials:
        pose[:, :, 3] = values((B, 3), dtype, seed + 2, -1.0, 1.0, t_specials, density).double()
    return pose.to(dtype)


def pixel_grid(H, W):
    v, u = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    return torch.stack([u, v, torch.ones_like(u)]).view(1, 3, H * W)


def projection_margins(depth, pose, K, dtype):
    """Per target pixel [B, H*W], in float64: masks of the pixels whose projection is within
    the compute type's rounding of a discontinuity of the contract: z' = 1e-3 (the sample
    switches on, `near_z`), or u' or v' at an integer (bilinear cell edges and the image
    border: `valid` and the depth and pose gradients jump there, `near_cell`); and bounds on
    the rounding errors of z' (`tol_z`) and of u', v' in pixels (`tol_uv`)."""
    d, P, Kd = depth.double(), pose.double(), K.double()
    B, _, H, W = d.shape
    pix = pixel_grid(H, W)
    Kinv = torch.linalg.inv(Kd)
    X = d.reshape(B, 1, -1) * (Kinv @ pix)
    Xs = P[:, :, :3] @ X + P[:, :, 3:]
    z = Xs[:, 2]
    num = Kd[:, :2] @ Xs
    uv = num / z.unsqueeze(1)
    # Magnitudes of the terms summed on the way: the rounding errors scale with them.
    Xm = d.abs().reshape(B, 1, -1) * (Kinv.abs() @ pix)
    Xsm = P[:, :, :3].abs() @ Xm + P[:, :, 3:].abs()
    zm = Xsm[:, 2]
    num_m = Kd[:, :2].abs() @ Xsm
    eps = 2048 * eps_of(dtype)  # a generous multiple: K^-1 by adjugate vs LU, op order
    tol_z = eps * zm
    tol_uv = eps * (num_m + uv.abs() * zm.unsqueeze(1)) / z.abs().unsqueeze(1)
    ok = torch.isfinite(d.reshape(B, -1)) & (d.reshape(B, -1) > 0)
    near_z = ok & ((z - 1e-3).abs() <= tol_z)
    front = ok & (z > 1e-3 - tol_z)
    cell = ((uv - uv.round()).abs() <= tol_uv).any(1)
    near_cell = front & (cell | ~torch.isfinite(tol_uv).all(1))
    # Only the pixels in front are sampled; a huge bound where the projection is degenerate.
    tol_uv = torch.where(front, tol_uv.amax(1).nan_to_num(nan=1e300, posinf=1e300), 0.0)
    return near_z, near_cell, tol_z, tol_uv


def warp_run(op, src, depth, pose, K, gw, gz):
    """Outputs and the gradients of sum(warped * gw + computed_depth * gz) to src, depth, pose
    and K (K's must be None)."""
    inputs = [with_grad(t) for t in (src, depth, pose, K)]
    warped, z, valid = op(*inputs)
    assert not valid.requires_grad
    return (warped, z, valid, *grads_of((warped, z), inputs, (gw, gz)))


@settings(max_examples=250, deadline=None)
@given(
    B=BATCHES,
    C=st.integers(1, 4),
    H=st.integers(1, 24),
    W=st.integers(1, 24),
    dtype=st.sampled_from(FLOAT_TYPES),
    k_kind=st.sampled_from(K_KINDS),
    pose_kind=st.sampled_from(POSE_KINDS),
    retype=mostly(st.none(), ["src", "depth", "pose", "K"], odds=10),
    layouts=st.lists(st.sampled_from(LAYOUTS), min_size=6, max_size=6),
    src_specials=special_mix(),
    # Depths that are not finite or <= 0 only make pixels invalid: still well-conditioned.
    depth_specials=special_mix(SMALL_SPECIALS + ["nan", "inf", "-inf"], ["huge", "max"]),
    t_specials=special_mix(["0"], ["huge", "-huge", "nan", "inf"]),  # huge translations
    density=st.sampled_from([0.05, 0.3, 1.0]),
    grad_specials=GRAD_SPECIALS,
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31),
)
def test_property_inverse_warp(
    B, C, H, W, dtype, k_kind, pose_kind, retype, layouts, src_specials, depth_specials,
    t_specials, density, grad_specials, threads, seed,
):  # fmt: skip
    src = lay_out(values((B, C, H, W), dtype, seed, -1.0, 2.0, src_specials, density), layouts[0])
    depth = values((B, 1, H, W), dtype, seed + 1, 0.5, 10.0, depth_specials, density)
    depth = lay_out(depth, layouts[1])
    pose = lay_out(pose_matrices(B, dtype, seed + 2, pose_kind, t_specials, density), layouts[2])
    K, spoiled = intrinsics(B, H, W, dtype, seed + 3, k_kind)
    K = lay_out(K, layouts[3])
    if layouts[3] == "broadcast" and B > 0:
        spoiled = spoiled[:1].expand(B)
    gspecials = ["nan", "inf", "huge"] if grad_specials else []
    gw = lay_out(values((B, C, H, W), dtype, seed + 4, -1.0, 1.0, gspecials, 0.1), layouts[4])
    gz = lay_out(values((B, 1, H, W), dtype, seed + 5, -1.0, 1.0, gspecials, 0.1), layouts[5])
    # A tensor of another dtype: src an integer one, depth, pose or K another floating type.
    args = [src, depth, pose, K]
    if retype:
        i = ["src", "depth", "pose", "K"].index(retype)
        args[i] = args[i].to(other_dtype(dtype, "int" if retype == "src" else "float"))
    src, depth, pose, K = args
    args = (src, depth, pose, K, gw, gz)

    bad = {retype: TypeError} if retype else {}
    if spoiled.any():
        bad[f"K[{int(spoiled.nonzero()[0, 0])}]"] = ValueError  # the first bad image
    if bad:
        event(f"inverse_warp: rejected ({', '.join(bad)}, {k_kind} K)")
        for op in (ops.inverse_warp, reference.inverse_warp):
            assert_rejected(lambda op=op: warp_run(op, *args), bad)
        return

    with num_threads(threads):
        warped, z, valid, g_src, g_depth, g_pose, g_K = warp_run(ops.inverse_warp, *args)
    assert warped.shape == (B, C, H, W) and z.shape == valid.shape == (B, 1, H, W)
    assert warped.dtype == z.dtype == valid.dtype == dtype
    for g, t in zip((g_src, g_depth, g_pose), (src, depth, pose), strict=True):
        assert g is not None and g.shape == t.shape and g.dtype == dtype
    assert g_K is None, "K gets no gradient"
    if B == 0:
        event("inverse_warp: empty batch")
        return

    # Any values: valid is 0 or 1; where the depth is not finite and > 0, or z' <= 1e-3 (or
    # NaN), the pixel is invalid and warped is 0; valid pixels have z' > 1e-3.
    w64, z64, v64 = warped.detach().double(), z.detach().double(), valid.double()
    assert ((v64 == 0) | (v64 == 1)).all()
    d64 = depth.double()
    z_cut = 1e-3 if dtype in (F64, torch.float32) else 1e-3 * (1 - 1e-2)  # z' rounded to 16 bits
    off = ~(torch.isfinite(d64) & (d64 > 0)) | ~(z64 > z_cut)
    assert (v64[off] == 0).all(), "valid where the depth or z' rules the pixel out"
    assert (torch.where(off, w64, 0.0) == 0).all(), "warped not 0 where the pixel is ruled out"
    if dtype in (F64, torch.float32):
        assert (z64[v64 == 1] > 1e-3).all()
    # Bilinear weights are in [0, 1] and sum to at most 1: |warped| <= max |src| per image,
    # wherever the image's src is finite, and not so large that the weighted sum may round
    # past the largest float (so warped is finite there too).
    s64 = src.double()
    for b in range(B):
        smax = s64[b].abs().max()
        if torch.isfinite(smax) and smax <= torch.finfo(dtype).max / 4:
            assert (w64[b].abs() <= smax * (1 + 1e-5)).all(), "warped beyond the source's range"

    well_conditioned = (
        bool(torch.isfinite(s64).all() and (s64.abs() <= 2).all())
        and bool(torch.isfinite(pose).all() and (pose.double().abs() <= 10).all())
        and bool((~torch.isfinite(d64) | (d64.abs() <= 1e3)).all())
        and not grad_specials
    )
    event(f"inverse_warp: {'well-conditioned' if well_conditioned else 'extreme values'}")
    if not well_conditioned:
        return

    # Against the float64 reference on the same values, away from the discontinuities.
    as64 = [t.double() for t in args]
    e_warped, e_z, e_valid, e_src, e_depth, e_pose, _ = warp_run(reference.inverse_warp, *as64)
    near_z, near_cell, tol_z, tol_uv = projection_margins(depth, pose, K, dtype)
    shape = (B, 1, H, W)
    near_z, near_cell, tol_z = near_z.view(shape), near_cell.view(shape), tol_z.view(shape)
    out_eps = torch.finfo(dtype).eps
    finite_d = torch.isfinite(d64)
    assert torch.equal(valid[~(near_z | near_cell)].double(), e_valid[~(near_z | near_cell)])
    ez_ok = finite_d & representable(e_z, dtype)
    assert torch.isfinite(z64[ez_ok]).all(), "computed_depth not finite"
    z_err = (z64 - e_z).abs()[ez_ok]
    # Compute, then output rounding.
    z_tol = (tol_z + 2 * out_eps * e_z.abs() + subnormal_step(dtype))[ez_ok]
    assert (z_err <= z_tol).all(), "computed_depth differs from the reference"
    for b in range(B):
        smax = s64[b].abs().max().item()
        # Projection rounding times the bilinear slope, output rounding, and the reference's
        # own round trip through grid_sample's normalised coordinates (float64).
        tol = 4 * smax * (tol_uv[b].view(1, H, W) + 1e-13 * (H + W))
        tol = tol + 2 * out_eps * smax + subnormal_step(dtype)
        err = torch.where(near_z[b], 0.0, (w64[b] - e_warped[b]).abs())
        assert (err <= tol).all(), f"warped differs from the reference in image {b}"

    # Gradients: finite where the exact ones are representable, and in float64 equal to the
    # reference's away from the kinks. The rotation part of the pose gradient takes
    # gradient x depth at every pixel, so it is NaN wherever a depth is not finite (0 x inf):
    # it is checked on images with finite depths only.
    for b in range(B):
        if near_z[b].any():
            continue  # a jump of the sample next to the cut z' = 1e-3
        assert torch.isfinite(g_src[b][representable(e_src[b], dtype)]).all(), "grad_src"
        keep = ~near_cell[b] & representable(e_depth[b], dtype)
        assert torch.isfinite(g_depth[b][keep]).all(), "grad_depth not finite"
        rows = slice(None) if finite_d[b].all() else (slice(None), 3)
        keep_pose = ~near_cell[b].any() & representable(e_pose[b][rows], dtype)
        assert torch.isfinite(g_pose[b][rows][keep_pose]).all(), "grad_pose not finite"
        if dtype == F64:
            assert_close_scaled(g_src[b], e_src[b], 1e-9, what="grad_src")
            assert_close_scaled(g_depth[b], e_depth[b], 1e-8, ~near_cell[b], "grad_depth")
            if not near_cell[b].any():
                assert_close_scaled(g_pose[b][rows], e_pose[b][rows], 1e-8, what="grad_pose")


# ---- sample_dynamic_pairs

SCORE_TIES = ["nan", "-inf", "-1", "-0", "0", "1", "inf", "huge", "-huge", "denormal"]
RATIO_BAD = [0.0, 1.0, -0.5, 1.5, NAN, INF, -INF]
TAU_BAD = [-1e-300, -1.0, NAN, INF, -INF]
SEED_BAD = [2**64, 2**70, -(2**63) - 1]


def order_oracle(score, k):
    """A_b by the contract, in plain Python: the first k of a stable descending sort, NaN
    lowest, -0 == +0."""
    rows = score.double().reshape(score.shape[0], -1).tolist()
    out = []
    for row in rows:
        rank = sorted(
            range(len(row)),
            key=lambda i, row=row: (0, 0.0, i) if math.isnan(row[i]) else (-1, -row[i], i),
        )
        out.append(sorted(rank[:k]))
    return out


@settings(max_examples=400, deadline=None)
@given(
    B=BATCHES,
    H=st.integers(0, 24),
    W=st.integers(0, 24),
    score_dtype=st.sampled_from(FLOAT_TYPES),
    pd_dtype=st.sampled_from(FLOAT_TYPES),
    retype=mostly(st.none(), ["score", "pseudo_depth"], odds=10),
    layouts=st.lists(st.sampled_from(LAYOUTS), min_size=2, max_size=2),
    ties=st.booleans(),
    score_specials=special_mix(),
    pd_specials=special_mix(),
    density=st.sampled_from([0.05, 0.3, 1.0]),
    ratio=mostly(
        st.one_of(st.floats(0.01, 0.99), st.sampled_from([5e-324, 0.2, 1 - 2**-53])), RATIO_BAD
    ),
    tau=mostly(st.one_of(st.floats(0.0, 3.0), st.sampled_from([0.0, 0.15, 1e300])), TAU_BAD),
    seed=mostly(st.integers(-(2**63), 2**64 - 1), SEED_BAD),
    threads=st.sampled_from([1, 2]),
    values_seed=st.integers(0, 2**31),
)
def test_property_sample_dynamic_pairs_robust(
    B, H, W, score_dtype, pd_dtype, retype, layouts, ties, score_specials, pd_specials, density,
    ratio, tau, seed, threads, values_seed,
):  # fmt: skip
    shape = (B, 1, H, W)
    if ties:  # few distinct scores: the threshold is tied, NaN, ±inf and ±0 included
        score = values(shape, score_dtype, values_seed, 0.0, 1.0, SCORE_TIES, 1.0)
    else:
        score = values(shape, score_dtype, values_seed, -3.0, 3.0, score_specials, density)
    pd = values(shape, pd_dtype, values_seed + 1, 0.5, 4.5, pd_specials, density)
    score, pd = lay_out(score, layouts[0]), lay_out(pd, layouts[1])
    if retype == "score":
        score = score.to(torch.int32)
    elif retype == "pseudo_depth":
        pd = pd.to(torch.int32)
    kwargs = dict(ratio=ratio, tau=tau, seed=seed)

    bad = {retype: TypeError} if retype else {}
    if not 0.0 < ratio < 1.0:
        bad["ratio"] = ValueError
    if not (math.isfinite(tau) and tau >= 0.0):
        bad["tau"] = ValueError
    if not -(2**63) <= seed < 2**64:
        bad["seed"] = ValueError
    if bad:
        event(f"pairs: rejected ({', '.join(bad)})")
        for op in (ops.sample_dynamic_pairs, reference.sample_dynamic_pairs):
            assert_rejected(lambda op=op: op(score, pd, **kwargs), bad)
        return

    with num_threads(threads):
        idx_a, idx_b, label = ops.sample_dynamic_pairs(score, pd, **kwargs)
    N = H * W
    k = min(math.floor(ratio * N), N - 1) if N else 0
    event(f"pairs: k {'> 0' if k else '= 0'}")
    assert idx_a.shape == idx_b.shape == label.shape == (B, k)
    assert idx_a.dtype == idx_b.dtype == torch.int64 and label.dtype == torch.int8
    if B * k == 0:
        return
    # A_b: strictly increasing indices, exactly the top k in the contract's order.
    assert (idx_a[:, 1:] > idx_a[:, :-1]).all()
    assert idx_a.tolist() == order_oracle(score, k)
    # Partners: in the image, never selected.
    assert ((idx_b >= 0) & (idx_b < N)).all()
    selected = torch.zeros(B, N, dtype=torch.bool).scatter_(1, idx_a, True)
    assert not selected.gather(1, idx_b).any()
    # Labels by the float64 rule, whatever the pseudo depths (NaN, inf, <= 0, huge).
    flat = pd.double().reshape(B, N)
    expected = [
        [
            python_label(flat[b, i].item(), flat[b, j].item(), tau)
            for i, j in zip(ra, rb, strict=True)
        ]
        for b, (ra, rb) in enumerate(zip(idx_a.tolist(), idx_b.tolist(), strict=True))
    ]
    assert label.tolist() == expected
    # The reference (same Philox stream) and contiguous copies give identical outputs.
    for other in (
        reference.sample_dynamic_pairs(score, pd, **kwargs),
        ops.sample_dynamic_pairs(score.contiguous(), pd.contiguous(), **kwargs),
    ):
        for o, r in zip((idx_a, idx_b, label), other, strict=True):
            assert torch.equal(o, r)


# ---- depth_normals


def normal_margins(depth, K, dtype):
    """Per pixel [B, 1, H, W], in float64: |n| = |du x dv| of the exact points, and a bound
    on the rounding error of n in the compute type, from the magnitudes summed on the way
    (|du|, |dv| <= the largest |P| of the 3 x 3 neighbourhood: Sobel's weights sum to 1)."""
    d, Kd = depth.double(), K.double()
    B, _, H, W = d.shape
    du, dv = sobel(d * pixel_rays(Kd, H, W))
    n = torch.linalg.cross(du, dv, dim=1).norm(dim=1, keepdim=True)
    rays = (torch.linalg.inv(Kd).abs() @ pixel_grid(H, W)).view(B, 3, H, W)
    p_max = F.max_pool2d((d.abs() * rays).amax(1, keepdim=True), 3, stride=1, padding=1)
    tol_n = 2048 * eps_of(dtype) * p_max**2  # generous: K^-1 by adjugate vs LU, op order
    return n, tol_n


def normals_run(op, depth, K, g):
    """The normals and the gradients of sum(normal * g) to depth and K (K's must be None)."""
    inputs = [with_grad(depth), with_grad(K)]
    normal = op(*inputs)
    return (normal, *grads_of(normal, inputs, g))


@settings(max_examples=200, deadline=None)
@given(
    B=BATCHES,
    H=st.integers(1, 24),
    W=st.integers(1, 24),
    dtype=st.sampled_from(FLOAT_TYPES),
    k_kind=st.sampled_from(K_KINDS),
    retype=mostly(st.none(), ["depth", "K"], odds=10),
    layouts=st.lists(st.sampled_from(LAYOUTS), min_size=3, max_size=3),
    depth_specials=special_mix(SMALL_SPECIALS, ["nan", "inf", "-inf", "huge", "max"]),
    density=st.sampled_from([0.05, 0.3, 1.0]),
    grad_specials=GRAD_SPECIALS,
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31),
)
def test_property_depth_normals(
    B, H, W, dtype, k_kind, retype, layouts, depth_specials, density, grad_specials, threads,
    seed,
):  # fmt: skip
    depth = values((B, 1, H, W), dtype, seed, 0.5, 10.0, depth_specials, density)
    depth = lay_out(depth, layouts[0])
    K, spoiled = intrinsics(B, H, W, dtype, seed + 1, k_kind)
    K = lay_out(K, layouts[1])
    if layouts[1] == "broadcast" and B > 0:
        spoiled = spoiled[:1].expand(B)
    gspecials = ["nan", "inf", "huge"] if grad_specials else []
    g = lay_out(values((B, 3, H, W), dtype, seed + 2, -1.0, 1.0, gspecials, 0.1), layouts[2])
    if retype == "depth":
        depth = depth.to(torch.int32)
    elif retype == "K":
        K = K.to(other_dtype(dtype, "float"))

    bad = {retype: TypeError} if retype else {}
    if spoiled.any():
        bad[f"K[{int(spoiled.nonzero()[0, 0])}]"] = ValueError  # the first bad image
    if bad:
        event(f"depth_normals: rejected ({', '.join(bad)}, {k_kind} K)")
        for op in (ops.depth_normals, reference.depth_normals):
            assert_rejected(lambda op=op: normals_run(op, depth, K, g), bad)
        return

    with num_threads(threads):
        normal, g_depth, g_K = normals_run(ops.depth_normals, depth, K, g)
    assert normal.shape == (B, 3, H, W) and normal.dtype == dtype
    assert g_depth is not None and g_depth.shape == depth.shape and g_depth.dtype == dtype
    assert g_K is None, "K gets no gradient"
    if B == 0:
        event("depth_normals: empty batch")
        return

    # Any values: the normals are at most unit length (|n| clamped at eps from below), and
    # finite wherever the 3 x 3 neighbourhood's depths are finite and not so large that the
    # cross product (depth squared) may overflow.
    n64 = normal.detach().double()
    length = n64.norm(dim=1, keepdim=True)
    out_eps = torch.finfo(dtype).eps
    assert (length[torch.isfinite(length)] <= 1 + 4 * out_eps).all(), "normal longer than 1"
    d64 = depth.double()
    moderate = (torch.isfinite(d64) & (d64.abs() <= 1e3)).double()
    calm = -F.max_pool2d(-moderate, 3, stride=1, padding=1) > 0  # the whole neighbourhood
    assert torch.isfinite(n64.masked_fill(~calm, 0)).all(), "normal not finite"
    if not calm.all() or grad_specials:
        event("depth_normals: extreme values")
        return
    event("depth_normals: moderate values")

    # Against the float64 reference: the unit vector's error is the rounding of n over its
    # length (or eps where the norm is clamped), and nothing is claimed where |n| is within
    # that rounding of the clamp's switch.
    e_normal, e_depth, _ = normals_run(reference.depth_normals, d64, K.double(), g.double())
    n_len, tol_n = normal_margins(depth, K, dtype)
    scale = n_len.clamp_min(reference.NORMAL_EPS)
    tol = 2 * tol_n / scale + 2 * out_eps + subnormal_step(dtype)
    switch = (n_len - reference.NORMAL_EPS).abs() <= tol_n
    err = torch.where(switch, 0.0, (n64 - e_normal).abs().amax(1, keepdim=True))
    assert (err <= tol).all(), "normals differ from the reference"
    # Gradients, in float64, on images far from the switch and well conditioned everywhere
    # (the relative rounding of n, which d(n / |n|)/dn carries, far below the tolerance).
    if dtype != F64:
        return
    for b in range(B):
        if switch[b].any() or (tol_n[b] / scale[b] > 1e-10).any():
            continue
        assert_close_scaled(g_depth[b], e_depth[b], 1e-8, what="grad_depth")


# ---- normal_rank_error


def rank_run(op, normal, pseudo, valid, points, weight, g):
    """error, pair_weight and the gradient of sum(error * g) to normal."""
    n = with_grad(normal)
    error, pair_weight = op(n, pseudo, valid, points, weight)
    assert not pair_weight.requires_grad
    return (error, pair_weight, *grads_of(error, [n], g))


def rank_pairs(normal, pseudo, valid, points):
    """Per pair [S, 3, B, M], in float64: whether it counts, its cosines |n_i . n_j| and
    |p_i . p_j|, and the magnitudes |n_i| |n_j| and |p_i| |p_j| that bound their rounding."""
    B, _, H, W = normal.shape
    at = points + torch.arange(B).view(1, 1, B, 1) * (H * W)  # into the flat batch

    def gather(t):  # [3, S, 4, B, M]
        return t.double().transpose(0, 1).reshape(t.shape[1], -1)[:, at]

    ok = gather(valid)[0].bool()
    n, p = gather(normal), gather(pseudo)
    counts = ok[:, :3] & ok[:, 1:]

    def cos_and_size(v):
        cos = (v[:, :, :3] * v[:, :, 1:]).sum(0)
        size = v[:, :, :3].norm(dim=0) * v[:, :, 1:].norm(dim=0)
        return torch.where(counts, cos, 0.0), torch.where(counts, size, 0.0)

    return counts, *cos_and_size(n), *cos_and_size(p)


@settings(max_examples=200, deadline=None)
@given(
    B=BATCHES,
    H=st.integers(1, 12),
    W=st.integers(1, 12),
    S=st.sampled_from([1, 2, 1, 0]),
    M=st.integers(0, 9),
    dtype=st.sampled_from(FLOAT_TYPES),
    retype=mostly(st.none(), ["normal", "pseudo_normal", "valid", "points", "weight"], odds=10),
    outside=mostly(st.none(), [-1, 0], odds=10),  # a point index below 0 or at H * W
    layouts=st.lists(st.sampled_from(LAYOUTS), min_size=4, max_size=4),
    valid_density=st.sampled_from([0.0, 0.5, 0.9, 1.0]),
    normal_specials=special_mix(),
    weight_specials=special_mix(),
    density=st.sampled_from([0.05, 0.3, 1.0]),
    grad_specials=GRAD_SPECIALS,
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**31),
)
def test_property_normal_rank_error(
    B, H, W, S, M, dtype, retype, outside, layouts, valid_density, normal_specials,
    weight_specials, density, grad_specials, threads, seed,
):  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    valid = lay_out(torch.rand(B, 1, H, W, generator=g) < valid_density, layouts[2])
    # NaN on the invalid pixels: the op must never read them.
    normal = values((B, 3, H, W), dtype, seed, -1.0, 1.0, normal_specials, density)
    normal = lay_out(normal.masked_fill(~valid, NAN), layouts[0])
    pseudo = values((B, 3, H, W), dtype, seed + 1, -1.0, 1.0, normal_specials, density)
    pseudo = lay_out(pseudo.masked_fill(~valid, NAN), layouts[1])
    points = torch.randint(0, H * W, (S, 4, B, M), generator=g)
    if outside is not None and points.numel():
        points.view(-1)[int(torch.randint(points.numel(), (), generator=g))] = (
            -1 if outside < 0 else H * W
        )
    weight = lay_out(
        values((S, B, M), dtype, seed + 2, 0.0, 2.0, weight_specials, density), layouts[3]
    )
    gspecials = ["nan", "inf", "huge"] if grad_specials else []
    gerr = values((S, B, M), dtype, seed + 3, -1.0, 1.0, gspecials, 0.1)
    args = {"normal": normal, "pseudo_normal": pseudo, "valid": valid, "points": points,
            "weight": weight}  # fmt: skip
    if retype:  # a bool or integer tensor another type, a floating one another float
        t = args[retype]
        args[retype] = t.to(
            torch.float32 if not t.is_floating_point() else other_dtype(dtype, "float")
        )
    args = (*args.values(), gerr)

    if retype:
        event(f"normal_rank_error: rejected ({retype})")
        for op in (ops.normal_rank_error, reference.normal_rank_error):
            assert_rejected(lambda op=op: rank_run(op, *args), {retype: TypeError})
        return
    if outside is not None and points.numel():
        event("normal_rank_error: a point outside the image")
        for op in (ops.normal_rank_error, reference.normal_rank_error):
            with pytest.raises(IndexError, match="points"):
                rank_run(op, *args)
        return

    with num_threads(threads):
        error, pair_weight, g_normal = rank_run(ops.normal_rank_error, *args)
    assert error.shape == pair_weight.shape == (S, B, M)
    assert error.dtype == pair_weight.dtype == g_normal.dtype == dtype
    assert g_normal.shape == normal.shape
    if error.numel() == 0:
        event("normal_rank_error: no anchor")
        return

    # pair_weight is the weight times the number of pairs with both pixels valid, whatever
    # the normals; NaN on invalid pixels reaches no output and no gradient.
    counts, cos_n, size_n, cos_p, size_p = rank_pairs(normal, pseudo, valid, points)
    w64 = weight.double()
    expected = w64 * counts.sum(1)
    same = (pair_weight.double() == expected) | (pair_weight.double() - expected).abs().le(
        4 * torch.finfo(dtype).eps * expected.abs()
    )
    assert (same | ~representable(expected, dtype)).all(), "pair_weight is not weight x pairs"
    # |error| <= |w| * the sum of the pairs' sizes: finite where that bound is representable,
    # and where the unweighted sum is too (a zero weight times an overflowed sum is NaN).
    sizes = (size_n + size_p).sum(1).nan_to_num(nan=INF)
    bound = (w64.abs() * sizes).nan_to_num(nan=INF)
    calm = representable(bound, dtype) & representable(sizes, dtype)
    assert torch.isfinite(error.double()[calm]).all(), "error not finite"
    assert (g_normal[~valid.expand_as(g_normal)] == 0).all(), "gradient on an invalid pixel"
    if not calm.all() or grad_specials:
        event("normal_rank_error: extreme values")
        return
    event("normal_rank_error: moderate values")

    # Against the float64 reference: each pair's error within the rounding of its two dot
    # products, then weighted and summed; gradients in float64 where no pair sits within
    # rounding of the kinks of | |c_n| - |c_p| | (c_n = 0 or |c_n| = |c_p|).
    as64 = [t.double() if t.is_floating_point() else t for t in args]
    e_error, _, e_grad = rank_run(reference.normal_rank_error, *as64)
    eps = 64 * eps_of(dtype)
    tol_pair = eps * (size_n + size_p)
    tol = (w64.abs().unsqueeze(1) * tol_pair).sum(1)
    tol = tol + 2 * torch.finfo(dtype).eps * e_error.abs() + subnormal_step(dtype)
    assert ((error.double() - e_error).abs() <= tol).all(), "error differs from the reference"
    if dtype != F64:
        return
    kink = counts & ((cos_n.abs() <= tol_pair) | ((cos_n.abs() - cos_p.abs()).abs() <= tol_pair))
    if kink.any():
        event("normal_rank_error: a pair at a kink")
        return
    assert_close_scaled(g_normal, e_grad, 1e-9, what="grad_normal")
