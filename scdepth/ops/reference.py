"""Pure-PyTorch references of the fused ops: same signatures and semantics, built from
standard ops. They are the oracle of the tests and the baseline of the benchmarks.

16-bit inputs are computed in float32 and the results cast back, as the kernels do.
"""

import math

import torch
import torch.nn.functional as F

from ..geometry import backproject, sobel
from ..losses import ordinal_labels  # the labels the ranking loss defines
from . import _checks

MIN_Z = 1e-3  # a point is sampled only in front of the source camera (csrc/warp/warp.h kMinZ)
NORMAL_EPS = 1e-8  # |n|^2 is clamped at eps^2 (csrc/normals/depth_normals.h kEps)


def inverse_warp(src, depth, pose, K):
    """Reference of scdepth.ops.inverse_warp (see there for the contract)."""
    src, _ = _checks.stacked_sources(src)
    _checks.check_inverse_warp(src, depth, pose, K)
    _checks.check_intrinsics(K)
    out_dtype = src.dtype
    ct = _checks.compute_dtype(out_dtype)
    src, depth, pose, K = (t.to(ct) for t in (src, depth, pose, K))
    B, C, H, W = src.shape
    v, u = torch.meshgrid(
        torch.arange(H, dtype=ct, device=src.device),
        torch.arange(W, dtype=ct, device=src.device),
        indexing="ij",
    )
    pix = torch.stack([u, v, torch.ones_like(u)]).view(1, 3, H * W)
    d = depth.reshape(B, 1, H * W)
    X = d * (torch.linalg.inv(K) @ pix)
    Xs = pose[:, :, :3] @ X + pose[:, :, 3:]
    z = Xs[:, 2:3]
    front = torch.isfinite(d) & (d > 0) & (z > MIN_Z)
    uv = (K[:, :2] @ Xs) / torch.where(front, z, torch.ones_like(z))
    uv = torch.where(front, uv, torch.full_like(uv, -2.0))  # -2: no corner inside the image
    # align_corners=False with x = (2u + 1) / W - 1 samples pixel coordinate u exactly as
    # align_corners=True with x = 2u / (W - 1) - 1 does, and stays defined for W = 1.
    size = torch.tensor([W, H], dtype=ct, device=src.device).view(1, 2, 1)
    grid = ((2 * uv + 1) / size - 1).transpose(1, 2).reshape(B, H, W, 2)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    inside = (uv[:, 0:1] >= 0) & (uv[:, 0:1] <= W - 1) & (uv[:, 1:2] >= 0) & (uv[:, 1:2] <= H - 1)
    valid = (front & inside).to(ct)
    shape = (B, 1, H, W)
    return (
        warped.to(out_dtype),
        z.reshape(shape).to(out_dtype),
        valid.reshape(shape).to(out_dtype),
    )


def _descending_order(s):
    """Per row of s [B, N], the stable descending order with NaN lowest and -0 == +0."""
    nan = torch.isnan(s)
    s = torch.where(nan, -math.inf, s) + 0.0  # -0.0 + 0.0 = +0.0
    order = torch.sort(s, dim=1, descending=True, stable=True).indices
    if bool(nan.any()):
        # NaNs tie with -inf so far: a second stable sort moves them last, keeping the order
        # of the rest.
        last = torch.sort(nan.gather(1, order).to(torch.uint8), dim=1, stable=True).indices
        order = order.gather(1, last)
    return order


# Philox4x32-10 (Salmon et al., SC'11), the counter-based generator of at::Philox4_32, in
# int64 tensor arithmetic: 32-bit words, products split so that nothing overflows.
_MASK32 = 0xFFFFFFFF
_PHILOX_M = (0xD2511F53, 0xCD9E8D57)
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def _mul_hi_lo(a, m):
    """(high, low) 32-bit halves of a * m for 32-bit a (tensor) and m (int)."""
    t = (a & 0xFFFF) * m  # < 2^48
    u = (a >> 16) * m  # < 2^48
    s = ((u & 0xFFFF) << 16) + t  # < 2^49
    return (u >> 16) + (s >> 32), s & _MASK32


def philox4x32_10(counter, key):
    """Four 32-bit words per element from counters (c0, c1, c2, c3) and a key (k0, k1),
    all int64 tensors (or ints) holding 32-bit values."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + _PHILOX_W[0]) & _MASK32, (k1 + _PHILOX_W[1]) & _MASK32
        hi0, lo0 = _mul_hi_lo(c0, _PHILOX_M[0])
        hi1, lo1 = _mul_hi_lo(c2, _PHILOX_M[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def philox_uniform_index(seed, subsequence, n):
    """Per element of `subsequence` (int64 tensor), an index uniform in [0, n): the first
    32-bit word w of Philox(key=seed, counter=(block, 0, subsequence)) with
    w < 2^32 - 2^32 mod n, taken mod n (words of blocks 0, 1, ... in order). The op's
    partner stream (csrc/ranking/pairs.h)."""
    limit = 2**32 - 2**32 % n
    seed %= 2**64
    key = (seed & _MASK32, seed >> 32)
    sub = (subsequence & _MASK32, subsequence >> 32)
    out = torch.full_like(subsequence, -1)
    todo = torch.arange(subsequence.numel(), device=subsequence.device)
    block = 0
    while todo.numel():
        zero = torch.zeros_like(todo)
        words = philox4x32_10((zero + block, zero, sub[0][todo], sub[1][todo]), key)
        for w in words:  # the first acceptable word of the block, in order
            take = (out[todo] < 0) & (w < limit)
            out[todo[take]] = w[take] % n
        todo = todo[out[todo] < 0]
        block += 1
    return out


def sample_dynamic_pairs(score, pseudo_depth, *, ratio=0.2, tau=0.15, seed):
    """Reference of scdepth.ops.sample_dynamic_pairs (see there for the contract): a full
    stable sort per image, and partners from the same Philox stream as the op, so all three
    outputs are identical to the op's."""
    _checks.check_sample_dynamic_pairs(score, pseudo_depth, ratio, tau)
    seed = _checks.seed_to_int64(seed)
    B, N = score.shape[0], score.shape[2] * score.shape[3]
    k = _checks.num_selected(N, ratio)
    order = _descending_order(score.detach().reshape(B, N))
    idx_a = order[:, :k].sort(dim=1).values
    if k > 0:
        static = order[:, k:].sort(dim=1).values  # S_b in index order
        sub = torch.arange(B * k, dtype=torch.int64, device=score.device)
        j = philox_uniform_index(seed, sub, N - k).view(B, k)
        idx_b = static.gather(1, j)
    else:
        idx_b = idx_a.clone()
    pd = pseudo_depth.detach().reshape(B, N)
    label = ordinal_labels(pd.gather(1, idx_a), pd.gather(1, idx_b), tau)
    return idx_a, idx_b, label


SSIM_C1 = 0.01**2  # csrc/photometric/photometric.h kC1: (K1 L)^2, K1 = 0.01, L = 1
SSIM_C2 = 0.03**2  # kC2: (K2 L)^2, K2 = 0.03


def _clamp01(v):
    """v.clamp(0, 1) with a gradient of 1 strictly inside (0, 1) and 0 at and beyond the
    bounds (and for NaN), the kernels' convention, on every torch: torch 2.14's clamp passes 0
    at the bounds, torch 2.11's 1."""
    return torch.where((v > 0) & (v < 1), v, v.detach().clamp(0, 1))


def photometric_error(tgt, warped, weight=None, *, alpha=0.85, window=3):
    """Reference of scdepth.ops.photometric_error (see there for the contract)."""
    _checks.check_photometric(tgt, warped, weight, alpha, window)
    out_dtype = tgt.dtype
    ct = _checks.compute_dtype(out_dtype)
    x, y = tgt.to(ct), warped.to(ct)
    p = window // 2
    xp = F.pad(x, (p, p, p, p), mode="reflect")
    yp = F.pad(y, (p, p, p, p), mode="reflect")

    def pool(t):
        return F.avg_pool2d(t, window, stride=1)

    mu_x, mu_y = pool(xp), pool(yp)
    sigma_x = pool(xp * xp) - mu_x**2
    sigma_y = pool(yp * yp) - mu_y**2
    sigma_xy = pool(xp * yp) - mu_x * mu_y
    ssim_n = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    ssim_d = (mu_x**2 + mu_y**2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    ssim = ssim_n / ssim_d
    diff = (x - y).abs()
    photo = (1 - alpha) * _clamp01(diff) + alpha * _clamp01((1 - ssim) / 2)
    photo = photo.mean(1, keepdim=True)
    if weight is not None:
        photo = photo * weight.to(ct)
    return photo.to(out_dtype), diff.mean(1, keepdim=True).to(out_dtype)


def normal_rank_error(normal, pseudo_normal, valid, points, weight):
    """Reference of scdepth.ops.normal_rank_error (see there for the contract)."""
    _checks.check_normal_rank(normal, pseudo_normal, valid, points, weight)
    out_dtype = normal.dtype
    ct = _checks.compute_dtype(out_dtype)
    B, _, H, W = normal.shape
    if points.numel() and bool(((points < 0) | (points >= H * W)).any()):
        raise IndexError(f"points must be pixel indices in [0, H * W) = [0, {H * W})")
    flat = (points + torch.arange(B, device=points.device).view(1, 1, B, 1) * (H * W)).flatten()
    v = valid.flatten()
    at = v.index_select(0, flat).view(points.shape)
    counts = at[:, :3] & at[:, 1:]  # [S, 3, B, M]

    def cosines(n):  # |n_i . n_j| of the pairs, [S, 3, B, M]; invalid pixels read zeros
        n = torch.where(v, n.to(ct).transpose(0, 1).reshape(3, -1), 0.0)
        g = n.index_select(1, flat).view(3, *points.shape)
        return (g[:, :, :3] * g[:, :, 1:]).sum(0).abs()

    err = torch.where(counts, (cosines(normal) - cosines(pseudo_normal.detach())).abs(), 0.0)
    w = weight.detach().to(ct).unsqueeze(1)
    error = (w * err).sum(1)
    pair_weight = (w * counts).sum(1)
    return error.to(out_dtype), pair_weight.to(out_dtype)


def depth_normals(depth, K):
    """Reference of scdepth.ops.depth_normals (see there for the contract): the Sobel
    derivatives of the back-projected points (scdepth.geometry), their cross product and its
    norm written out (torch.cross and .norm are several times slower on the CPU for 3-vectors
    along dim 1: their general kernels). K receives no gradient, as from the op."""
    _checks.check_depth_normals(depth, K)
    _checks.check_intrinsics(K)
    out_dtype = depth.dtype
    ct = _checks.compute_dtype(out_dtype)
    points = backproject(depth.to(ct), K.detach().to(ct))
    (ax, ay, az), (bx, by, bz) = (t.unbind(1) for t in sobel(points))
    n = torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], 1)
    norm = (n * n).sum(1, keepdim=True).clamp_min(NORMAL_EPS * NORMAL_EPS).rsqrt()
    return (n * norm).to(out_dtype)
