"""Argument checks in Python, for the fake (meta) kernels and the reference ops.

They mirror csrc/*/..._args.h, which guard the compiled kernels: same rules, same error
types (TypeError for dtypes, ValueError for shapes, devices and values).
"""

import math
import operator
import weakref

import torch

FLOATING = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def compute_dtype(dtype):
    """What the kernels compute a dtype in (at::opmath_type): float32 for the 16-bit types."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def check_floating(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(t).__name__}")
    if t.dtype not in FLOATING:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {t.dtype}")


def check_dim(t, ndim, name, layout):
    if t.dim() != ndim:
        raise ValueError(f"{name} must be {layout}, got {list(t.shape)}")


def check_like(t, name, ref, ref_name):
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} must have the dtype of {ref_name} ({ref.dtype}), got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(
            f"{name} must be on the device of {ref_name} ({ref.device}), got {t.device}"
        )


def stacked_sources(src):
    """inverse_warp's src as one tensor, and the first of its channels that needs a gradient:
    src itself and 0, or, for a sequence of [B, C_i, H, W] tensors, their concatenation along
    channels and the channel where the first that requires a gradient starts (C when none
    does). Stacking an image that needs no gradient before a depth map that does saves the
    backward the image channels' scatter."""
    if isinstance(src, torch.Tensor):
        return src, 0
    parts = list(src)
    if not parts:
        raise ValueError("src must be a tensor or a non-empty sequence of tensors, got none")
    first = 0
    for i, t in enumerate(parts):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"src[{i}] must be a tensor, got {type(t).__name__}")
        check_dim(t, 4, f"src[{i}]", "[B, C, H, W]")
        check_like(t, f"src[{i}]", parts[0], "src[0]")
        if t.shape[0] != parts[0].shape[0] or t.shape[2:] != parts[0].shape[2:]:
            raise ValueError(
                f"src[{i}] must be [B, C, H, W] with B, H, W of src[0] "
                f"{list(parts[0].shape)}, got {list(t.shape)}"
            )
    for t in parts:
        if t.requires_grad:
            break
        first += t.shape[1]
    return torch.cat(parts, 1), first


def check_src_grad_from(src_grad_from):
    if src_grad_from < 0:
        raise ValueError(f"src_grad_from must be >= 0, got {src_grad_from}")


def check_inverse_warp(src, depth, pose, K):
    check_floating(src, "src")
    check_dim(src, 4, "src", "[B, C, H, W]")
    B, C, H, W = src.shape
    if C < 1:
        raise ValueError(f"src must have at least one channel, got {list(src.shape)}")
    check_floating(depth, "depth")
    check_like(depth, "depth", src, "src")
    if tuple(depth.shape) != (B, 1, H, W):
        raise ValueError(
            f"depth must be [B, 1, H, W] like src {list(src.shape)}, got {list(depth.shape)}"
        )
    check_floating(pose, "pose")
    check_like(pose, "pose", src, "src")
    if tuple(pose.shape) != (B, 3, 4):
        raise ValueError(f"pose must be [B, 3, 4] with B = {B}, got {list(pose.shape)}")
    check_floating(K, "K")
    check_like(K, "K", src, "src")
    if tuple(K.shape) != (B, 3, 3):
        raise ValueError(f"K must be [B, 3, 3] with B = {B}, got {list(K.shape)}")


def check_depth_normals(depth, K):
    check_floating(depth, "depth")
    check_dim(depth, 4, "depth", "[B, 1, H, W]")
    if depth.shape[1] != 1:
        raise ValueError(f"depth must be [B, 1, H, W], got {list(depth.shape)}")
    check_floating(K, "K")
    check_like(K, "K", depth, "depth")
    if tuple(K.shape) != (depth.shape[0], 3, 3):
        raise ValueError(f"K must be [B, 3, 3] with B = {depth.shape[0]}, got {list(K.shape)}")


# id(K) -> (weak reference to K, K._version) of the tensors known to hold good intrinsics
_checked: dict[int, tuple[weakref.ref, int]] = {}


def mark_checked(K):
    """Records that K holds good intrinsics (e.g. the device copy of a host tensor that
    check_intrinsics passed), so that checking this tensor again, unchanged, reads nothing
    back: the trainer checks each batch's K on the host and its warps then never wait on the
    device. An in-place change of K (its version) voids the mark."""
    if K.is_inference():  # no version counter to tell a change
        return
    key = id(K)
    _checked[key] = (weakref.ref(K, lambda _: _checked.pop(key, None)), K._version)


def _is_marked(K):
    entry = _checked.get(id(K))
    return entry is not None and entry[0]() is K and entry[1] == K._version


def check_intrinsics(K):
    """Every K[b] must be finite and invertible, in float64 and in the precision the kernels
    invert it in (float32 unless K is float64): a float32 K such as diag(1e-20, 1e-20, 1) is
    invertible in float64, but its float32 inverse overflows and every pixel would come out
    invalid. Reads the values (one small device sync) unless K passed before (mark_checked),
    and is skipped while torch.compile traces."""
    if torch.compiler.is_compiling() or K.numel() == 0 or K.device.type == "meta":
        return
    if _is_marked(K):
        return
    if K.dim() != 3 or tuple(K.shape[1:]) != (3, 3):
        return  # a shape error, reported by the op's own checks
    k = K.detach().reshape(-1, 9)
    det, cof = _det_and_cofactors(k.double())
    bad = ~torch.isfinite(k).all(1) | (det == 0)
    if K.dtype != torch.float64:
        det, cof = _det_and_cofactors(k.float())
    bad |= ~torch.isfinite(cof * (1 / det).unsqueeze(1)).all(1)  # as the kernels do
    if bool(bad.any()):
        n = int(bad.nonzero()[0, 0])
        raise ValueError(f"K[{n}] must be finite and invertible, got {K[n].tolist()}")
    mark_checked(K)


def _det_and_cofactors(k):
    """det and the 9 entries of det K^-1 of row-major 3x3 matrices k [N, 9], in k's dtype
    and in the order of csrc/common/camera.h invert_intrinsics."""
    a, b, c, d, e, f, g, h, i = k.unbind(1)
    A, B, C = e * i - f * h, f * g - d * i, d * h - e * g
    cof = [A, c * h - b * i, b * f - c * e, B, a * i - c * g, c * d - a * f, C, b * g - a * h]
    cof.append(a * e - b * d)
    return a * A + b * B + c * C, torch.stack(cof, 1)


MAX_PIXELS = 2**31 - 1  # csrc/ranking/pairs_args.h kMaxPixels


def num_selected(N, ratio):
    """k = floor(ratio * N) in float64, at most N - 1 (csrc/ranking/pairs_args.h). Works on
    SymInts too, so that fake kernels know k from the shapes."""
    if N == 0:
        return 0
    return torch.sym_min(math.floor(ratio * N), N - 1)


def check_sample_dynamic_pairs(score, pseudo_depth, ratio, tau):
    check_floating(score, "score")
    check_dim(score, 4, "score", "[B, 1, H, W]")
    if score.shape[1] != 1:
        raise ValueError(f"score must be [B, 1, H, W], got {list(score.shape)}")
    if score.shape[2] * score.shape[3] > MAX_PIXELS:
        raise ValueError(f"score must have H * W < 2^31 pixels, got {list(score.shape)}")
    check_floating(pseudo_depth, "pseudo_depth")
    if pseudo_depth.device != score.device:
        raise ValueError(
            f"pseudo_depth must be on the device of score ({score.device}), "
            f"got {pseudo_depth.device}"
        )
    if pseudo_depth.shape != score.shape:
        raise ValueError(
            f"pseudo_depth must be [B, 1, H, W] like score {list(score.shape)}, "
            f"got {list(pseudo_depth.shape)}"
        )
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be in (0, 1), got {ratio}")
    if not (math.isfinite(tau) and tau >= 0.0):
        raise ValueError(f"tau must be finite and >= 0, got {tau}")


def seed_to_int64(seed):
    """The op's seed as an int64 with the same low 64 bits: any int in [-2^63, 2^64) (e.g.
    torch.initial_seed()), so seeds s and s - 2^64 give the same stream. Not checked while
    torch.compile traces: reading the value would specialise the graph to it (a new compile
    per seed); there the seed must already fit an int64."""
    if torch.compiler.is_compiling() or isinstance(seed, torch.SymInt):
        return seed
    if isinstance(seed, bool):
        raise TypeError("seed must be an int, got bool")
    try:
        seed = operator.index(seed)
    except TypeError:
        raise TypeError(f"seed must be an int, got {type(seed).__name__}") from None
    if not -(2**63) <= seed < 2**64:
        raise ValueError(f"seed must be in [-2^63, 2^64), got {seed}")
    return seed - 2**64 if seed >= 2**63 else seed


MIN_WINDOW, MAX_WINDOW = 3, 11  # csrc/photometric/photometric.h kMinWindow, kMaxWindow


def check_window_alpha(alpha, window):
    if isinstance(window, bool) or not isinstance(window, int):
        raise TypeError(f"window must be an int, got {type(window).__name__}")
    if window % 2 != 1 or not MIN_WINDOW <= window <= MAX_WINDOW:
        raise ValueError(f"window must be odd and in [{MIN_WINDOW}, {MAX_WINDOW}], got {window}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
        raise TypeError(f"alpha must be a float, got {type(alpha).__name__}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")


def _check_map(t, name, tgt):
    check_floating(t, name)
    check_like(t, name, tgt, "tgt")
    B, _, H, W = tgt.shape
    if tuple(t.shape) != (B, 1, H, W):
        raise ValueError(
            f"{name} must be [B, 1, H, W] like tgt {list(tgt.shape)}, got {list(t.shape)}"
        )


def check_photometric(tgt, warped, weight, alpha, window):
    check_floating(tgt, "tgt")
    check_dim(tgt, 4, "tgt", "[B, C, H, W]")
    if tgt.shape[1] < 1:
        raise ValueError(f"tgt must have at least one channel, got {list(tgt.shape)}")
    check_floating(warped, "warped")
    check_like(warped, "warped", tgt, "tgt")
    if warped.shape != tgt.shape:
        raise ValueError(
            f"warped must be shaped like tgt {list(tgt.shape)}, got {list(warped.shape)}"
        )
    if weight is not None:
        _check_map(weight, "weight", tgt)
    check_window_alpha(alpha, window)
    p = window // 2
    if tgt.shape[2] <= p or tgt.shape[3] <= p:
        raise ValueError(
            f"tgt height and width must be > window // 2 = {p} for the reflection padding, "
            f"got {list(tgt.shape)}"
        )


def check_photometric_backward(grad_photo, grad_l1, tgt, warped, weight, alpha, window):
    check_photometric(tgt, warped, weight, alpha, window)
    _check_map(grad_photo, "grad_photo", tgt)
    _check_map(grad_l1, "grad_l1", tgt)


def check_normal_rank(normal, pseudo_normal, valid, points, weight):
    check_floating(normal, "normal")
    check_dim(normal, 4, "normal", "[B, 3, H, W]")
    B, C, H, W = normal.shape
    if C != 3:
        raise ValueError(f"normal must be [B, 3, H, W], got {list(normal.shape)}")
    check_floating(pseudo_normal, "pseudo_normal")
    check_like(pseudo_normal, "pseudo_normal", normal, "normal")
    if pseudo_normal.shape != normal.shape:
        raise ValueError(
            f"pseudo_normal must be shaped like normal {list(normal.shape)}, "
            f"got {list(pseudo_normal.shape)}"
        )
    if valid.dtype != torch.bool:
        raise TypeError(f"valid must be bool, got {valid.dtype}")
    if tuple(valid.shape) != (B, 1, H, W):
        raise ValueError(
            f"valid must be [B, 1, H, W] like normal {list(normal.shape)}, got {list(valid.shape)}"
        )
    if points.dtype != torch.int64:
        raise TypeError(f"points must be int64, got {points.dtype}")
    if points.dim() != 4 or points.shape[1] != 4 or points.shape[2] != B:
        raise ValueError(f"points must be [S, 4, B, M] with B = {B}, got {list(points.shape)}")
    check_floating(weight, "weight")
    check_like(weight, "weight", normal, "normal")
    S, _, _, M = points.shape
    if tuple(weight.shape) != (S, B, M):
        raise ValueError(
            f"weight must be [S, B, M] like points {list(points.shape)}, got {list(weight.shape)}"
        )
    for name, t in (("valid", valid), ("points", points)):
        if t.device != normal.device:
            raise ValueError(
                f"{name} must be on the device of normal ({normal.device}), got {t.device}"
            )
