"""SC-Depth (V1), SC-DepthV2 and SC-DepthV3 losses, one small function per term of the papers.

Functions that run a fused op take `ops`, from scdepth.ops.get_backend('ext' | 'reference'),
so that the same code runs on the kernels or on their PyTorch references. Nothing here
modifies its inputs in place.

Depth ranking (SC-DepthV3, dynamic region refinement): ordinal labels from a pseudo depth map
supervise the order of predicted depths on pairs of pixels, the pairs coming from the
dynamic regions (scdepth.ops.sample_dynamic_pairs) and from the whole image
(global_random_pairs). Pair sets are [B, n] flat pixel indices with int8 labels; several sets
are combined by concatenating them along dim 1 before depth_ranking_loss, which then averages
over all their pairs, as the public code does.
"""

import math

import torch
import torch.nn.functional as F

from .geometry import sobel

MIN_VALID_PIXELS = 100  # a masked mean over fewer pixels is 0 (SC-Depth's mean_on_mask)


def mean_on_mask(x, mask):
    """Mean of x [B, 1, H, W] over mask (0/1, same shape); 0 when mask has <= 100 pixels.
    Decided on the device, without a host sync."""
    n = mask.sum()
    mean = (x * mask).sum() / n.clamp_min(1)
    return torch.where(n > MIN_VALID_PIXELS, mean, torch.zeros_like(mean))


def identity_error(tgt_img, ref_img):
    """Auto-mask's error of no motion: mean over channels of |tgt - ref| [B, 1, H, W], the
    same (to the bit) for both warp directions of a pair."""
    return (tgt_img - ref_img).abs().mean(1, keepdim=True)


def pairwise_terms(
    ops,
    tgt_img,
    ref_img,
    tgt_depth,
    ref_depth,
    pose,
    K,
    cfg,
    *,
    tgt_valid=None,
    ref_valid=None,
    identity=None,
):
    """One warp direction (ref -> tgt view): per-pixel photometric error weighted by the
    self-discovered mask, its L1 part, D_diff (0 out of view) and the valid mask. identity:
    identity_error of the pair when already computed (auto-mask).

    pose maps tgt-camera points into the ref camera. All maps are [B, 1, H, W].
    tgt_valid, ref_valid (0/1 maps, or None for all ones) mark the pixels of each view that hold
    image content: SC-DepthV2's rectified references are blank where the rotation brought in
    what the camera did not see. A target pixel counts only where it holds content and all
    four bilinear taps of its sample in the ref do."""
    # One warp for the image and its depth; only the depth needs a source gradient.
    src = [ref_img, ref_depth] if ref_valid is None else [ref_img, ref_depth, ref_valid]
    warped, computed_depth, in_view = ops.inverse_warp(src, tgt_depth, pose, K)
    # split, not slicing: its backward stacks the parts' gradients in one copy.
    ref_warped, projected_depth, *warped_valid = warped.split([t.shape[1] for t in src], 1)
    # D_diff = |z' - D_ref(u', v')| / (z' + D_ref(u', v')), defined where the warp is valid.
    ok = in_view > 0
    denom = torch.where(ok, computed_depth + projected_depth, 1.0)
    d_diff = torch.where(ok, (computed_depth - projected_depth).abs() / denom, 0.0)
    # Self-discovered mask: down-weight pixels whose depths disagree (moving, occluded).
    weight = (1 - d_diff).detach() if cfg.self_discovered_mask() else None
    alpha = 0.0 if cfg.no_ssim else cfg.ssim_alpha
    photo, l1 = ops.photometric_error(
        tgt_img, ref_warped, weight, alpha=alpha, window=cfg.ssim_window
    )
    valid = in_view
    if ref_valid is not None:  # an interpolated 0/1 map is 1 only where every tap is 1
        valid = valid * (warped_valid[0].detach() > 1 - 1e-3).to(valid.dtype)
    if tgt_valid is not None:
        valid = valid * tgt_valid
    if not cfg.no_auto_mask:
        # Auto-mask (Monodepth2): keep pixels the warp explains better than no motion does.
        if identity is None:
            identity = identity_error(tgt_img, ref_img)
        valid = valid * (l1.detach() < identity).to(valid.dtype)
    return photo, l1, d_diff, valid


def per_pixel_minimum(l1s, photos, d_diffs, valids, *, rule="valid_first"):
    """Per pixel, (photo, d_diff, valid) of the candidate with the lowest L1 error among the
    valid ones (rule "valid_first"), or among all of them, the pixel dropping out when that one
    is invalid (rule "public": the public SC-Depth code). The first candidate wins ties and,
    valid_first, where none is valid; a NaN error wins, so that bad input shows in the loss.
    The same choice as argmin + gather over the stacked candidates, in pairwise selections
    that cost a third of the time on the CPU."""
    if rule not in ("valid_first", "public"):
        raise ValueError(f"rule must be valid_first or public, got {rule!r}")
    inf = torch.tensor(float("inf"), device=l1s[0].device, dtype=l1s[0].dtype)

    def error(l1, v):
        return torch.where(v > 0, l1.detach(), inf) if rule == "valid_first" else l1.detach()

    best_l1 = error(l1s[0], valids[0])
    photo, d_diff, valid = photos[0], d_diffs[0], valids[0]
    for l1, p, d, v in zip(l1s[1:], photos[1:], d_diffs[1:], valids[1:], strict=True):
        c = error(l1, v)
        take = (c < best_l1) | (c.isnan() & ~best_l1.isnan())
        best_l1 = torch.where(take, c, best_l1)
        photo, d_diff, valid = (
            torch.where(take, a, b) for a, b in ((p, photo), (d, d_diff), (v, valid))
        )
    return photo, d_diff, valid


def photo_and_geometry_loss(
    ops, tgt_img, ref_imgs, tgt_depth, ref_depths, poses, poses_inv, K, cfg, ref_valids=None
):
    """Photometric and geometry consistency losses over both warp directions of every
    reference frame, and the dynamic score of the target (mean over references of the
    target's D_diff, 0 out of view) for Dynamic Region Refinement.

    With the per-pixel minimum, each pixel keeps the candidate (of 2N; cfg.min_rule says
    whether invalid ones compete) whose L1 error is lowest. ref_valids: one 0/1 map
    [B, 1, H, W] per reference of its pixels that hold content (SC-DepthV2's rectified
    references), or None."""
    photos, l1s, d_diffs, valids = [], [], [], []
    if ref_valids is None:
        ref_valids = [None] * len(ref_imgs)
    for ref_img, ref_depth, pose, pose_inv, ref_valid in zip(
        ref_imgs, ref_depths, poses, poses_inv, ref_valids, strict=True
    ):
        identity = None if cfg.no_auto_mask else identity_error(tgt_img, ref_img)
        for direction, masks in (
            ((tgt_img, ref_img, tgt_depth, ref_depth, pose), dict(ref_valid=ref_valid)),
            ((ref_img, tgt_img, ref_depth, tgt_depth, pose_inv), dict(tgt_valid=ref_valid)),
        ):
            photo, l1, d_diff, valid = pairwise_terms(
                ops, *direction, K, cfg, identity=identity, **masks
            )
            photos.append(photo)
            l1s.append(l1)
            d_diffs.append(d_diff)
            valids.append(valid)
    if cfg.no_min_optimize:
        photo, d_diff, valid = (torch.cat(t, 1) for t in (photos, d_diffs, valids))
    else:
        photo, d_diff, valid = per_pixel_minimum(l1s, photos, d_diffs, valids, rule=cfg.min_rule)
    photo_loss = mean_on_mask(photo, valid)
    geometry_loss = mean_on_mask(d_diff, valid)
    # d_diff is already 0 out of view; the target -> ref directions are every other map.
    dynamic_score = (sum(d_diffs[0::2]) / len(ref_imgs)).detach()
    return photo_loss, geometry_loss, dynamic_score


# SC-DepthV2 (Auto-Rectify Network): rotations are Euler angles [B, 3] in radians.
ROTATION_TRIPLET_MARGIN = 0.05


def rotation_triplet_loss(r1, r2, margin=ROTATION_TRIPLET_MARGIN):
    """SC-DepthV2's rotation triplet loss mean(max(0, |r2| - |r1| + margin)) over every angle:
    the rotation RectifyNet still finds after rectification (r2) must be smaller by a margin
    than the one it removed (r1)."""
    return (r2.abs() - r1.abs() + margin).clamp_min(0).mean()


def rotation_consistency_loss(r3, r3_gt):
    """SC-DepthV2's rotation consistency loss mean |r3 - r3_gt|: RectifyNet recovers a rotation
    r3_gt that was applied to an image (scdepth.rectify.consistency_target)."""
    return (r3 - r3_gt).abs().mean()


def edge_aware_smoothness(depth, img):
    """Edge-aware smoothness of mean-normalised depth (SC-Depth V1, Monodepth2)."""
    d = depth / (depth.mean((2, 3), keepdim=True) + 1e-7)
    grad_d_x = (d[..., :, :-1] - d[..., :, 1:]).abs()
    grad_d_y = (d[..., :-1, :] - d[..., 1:, :]).abs()
    grad_i_x = (img[..., :, :-1] - img[..., :, 1:]).abs().mean(1, keepdim=True)
    grad_i_y = (img[..., :-1, :] - img[..., 1:, :]).abs().mean(1, keepdim=True)
    return (grad_d_x * torch.exp(-grad_i_x)).mean() + (grad_d_y * torch.exp(-grad_i_y)).mean()


def normal_matching_loss(normal, pseudo_normal):
    """Local Structure Refinement: mean |n - n*| (SC-DepthV3)."""
    return (normal - pseudo_normal).abs().mean()


# Edge-guided sampling of SC-DepthV3's normal ranking loss (after Xian et al., CVPR 2020).
EDGE_THRESHOLD = 0.1  # an edge pixel has a gradient >= 10% of the image's largest
EDGE_DISTANCES = (3, 20)  # points are 3..19 px from the anchor along the edge normal
# Anchors drawn per image and edge map, as a share of H * W: about the typical number of edge
# pixels (a quarter of the image edges' and of the pseudo-normal edges' pixels on synthetic
# indoor frames at 96x128, up to 61% for outdoor normal edges).
EDGE_ANCHOR_RATIO = 0.25
NORMAL_BORDER = 5  # pseudo-normal edges this close to the border are ignored


def _edges(gx, gy):
    """Gradient magnitude and direction [B, H, W] from channel-averaged gradients."""
    return torch.sqrt(gx**2 + gy**2), torch.atan2(gy, gx)


def _dilate(mask):
    return F.max_pool2d(mask.float().unsqueeze(1), 3, stride=1, padding=1).squeeze(1) > 0


def edge_anchor_count(H, W):
    """M: anchors drawn per image and edge map (EDGE_ANCHOR_RATIO of the pixels, at least 1)."""
    return max(1, math.ceil(EDGE_ANCHOR_RATIO * H * W))


def edge_pair_draws(B, H, W, generator=None, *, maps=2, device=None):
    """The random numbers of `maps` edge-guided samplers over [B, H, W] images, drawn from
    `generator` on its device (default: the global generator of `device`): (u [maps, B, M]
    float64 uniform in [0, 1), dist [maps, 4, B, M] int64 in EDGE_DISTANCES), M =
    edge_anchor_count(H, W). Drawn apart from the loss so that the loss compiles whole."""
    device = generator.device if generator is not None else device
    M = edge_anchor_count(H, W)
    u = torch.rand(maps, B, M, generator=generator, device=device, dtype=torch.float64)
    dist = torch.randint(*EDGE_DISTANCES, (maps, 4, B, M), generator=generator, device=device)
    return u, dist


def edge_guided_points(magnitude, theta, u, dist):
    """Four points along edge normals, M anchors per image (static shapes, no host sync).

    The anchors of an image are its pixels whose gradient magnitude is >= 10% of its maximum
    (none when the maximum is 0). M of them are drawn by stratified sampling in index order:
    draw m takes the anchor of rank floor((m + u_m) n / M) among the image's n, so every
    anchor is drawn M / n times in expectation, and a pair weighted by n / M estimates the
    sum over all anchors without bias (an image without anchors has weight 0). Four points a,
    b, c, d lie along the direction theta at signed distances (-d1, -d2, +d3, +d4), clamped to
    the image; pairs are (a, b), (b, c), (c, d).

    magnitude, theta [B, H, W]; u [B, M], dist [4, B, M] (edge_pair_draws). Returns the pixel
    indices of a, b, c, d in their image ([0, H * W)) as [4, B, M] and each anchor's weight
    n / M as [B, M]."""
    Bn, H, W = magnitude.shape
    M = u.shape[1]
    u, dist = u.to(magnitude.device), dist.to(magnitude.device)  # drawn by a CPU generator
    mag = magnitude.flatten(1)
    peak = mag.amax(1, keepdim=True)
    cum = ((mag >= EDGE_THRESHOLD * peak) & (peak > 0)).long().cumsum(1)  # [B, H * W]
    n = cum[:, -1:]
    strata = torch.arange(M, device=u.device, dtype=u.dtype)
    rank = ((strata + u) * n.to(u.dtype) / M).floor().long()
    rank = torch.minimum(rank, (n - 1).clamp_min(0))
    # the anchor of rank r is the first pixel where the running count reaches r + 1
    idx = torch.searchsorted(cum, rank + 1).clamp_max(H * W - 1)  # [B, M]
    t = theta.flatten(1).gather(1, idx)
    sign = torch.tensor([-1, -1, 1, 1], device=mag.device).view(4, 1, 1)
    step = dist * sign
    cols = (idx % W + torch.round(step * torch.cos(t)).long()).clamp(0, W - 1)
    rows = (idx // W + torch.round(step * torch.sin(t)).long()).clamp(0, H - 1)
    return rows * W + cols, (n.to(magnitude.dtype) / M).expand(Bn, M)


def normal_ranking_loss(
    ops, img, pseudo_depth, normal, pseudo_normal, generator=None, *, draws=None
):
    """Edge-guided normal ranking loss (SC-DepthV3 Local Structure Refinement): for point pairs
    across image edges and pseudo-normal edges, the predicted |n_A . n_B| should match the
    pseudo-normals'. Depth discontinuities of the pseudo-depth are excluded (normals are not
    defined there). img [B, 3, H, W], pseudo_depth [B, 1, H, W], normals [B, 3, H, W].

    The mean over all pairs of every anchor of both edge maps, estimated from M anchors per
    image and map (edge_guided_points); pairs touching a pixel without a valid pseudo-depth
    weigh 0. ops: the backend (scdepth.ops.get_backend), whose normal_rank_error gathers the
    pairs' normals. draws: edge_pair_draws(B, H, W) (default: drawn from `generator`)."""
    Bn, _, H, W = img.shape
    u, dist = (
        draws if draws is not None else edge_pair_draws(Bn, H, W, generator, device=img.device)
    )
    gx, gy = sobel(img.mean(1, keepdim=True))
    img_mag, img_theta = _edges(gx[:, 0], gy[:, 0])
    ngx, ngy = sobel(pseudo_normal)
    n_mag, n_theta = _edges(ngx.abs().mean(1), ngy.abs().mean(1))
    border = torch.ones_like(n_mag, dtype=torch.bool)
    border[:, NORMAL_BORDER:-NORMAL_BORDER, NORMAL_BORDER:-NORMAL_BORDER] = False
    dgx, dgy = sobel(pseudo_depth)
    d_mag, _ = _edges(dgx[:, 0], dgy[:, 0])
    depth_edges = _dilate(d_mag >= EDGE_THRESHOLD * d_mag.flatten(1).amax(1).view(-1, 1, 1))
    img_mag = img_mag.masked_fill(depth_edges, 0)
    n_mag = n_mag.masked_fill(depth_edges | border, 0)
    points = [
        edge_guided_points(m, t, u[i], dist[i])
        for i, (m, t) in enumerate(((img_mag, img_theta), (n_mag, n_theta)))
    ]
    valid = (pseudo_depth > 0) & torch.isfinite(pseudo_depth)
    error, pair_weight = ops.normal_rank_error(
        normal,
        pseudo_normal.to(normal.dtype),
        valid,
        torch.stack([p for p, _ in points]),
        torch.stack([w for _, w in points]).to(normal.dtype),
    )
    return error.sum() / pair_weight.sum().clamp_min(1e-12)


# SC-DepthV3 public code (losses/mask_ranking_loss.py): theta = 0.15 is the ordinal margin,
# sample_ratio = 0.1 the share of pixels paired at random over the whole image.
RANKING_TAU = 0.15
GLOBAL_PAIR_RATIO = 0.1


def _check_pairs(depth, idx_a, idx_b, label):
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be [B, 1, H, W], got {list(depth.shape)}")
    B = depth.shape[0]
    for name, t in (("idx_a", idx_a), ("idx_b", idx_b), ("label", label)):
        if t.dim() != 2 or t.shape[0] != B or t.shape != idx_a.shape:
            raise ValueError(
                f"{name} must be [B, n] with B = {B} like idx_a {list(idx_a.shape)}, "
                f"got {list(t.shape)}"
            )
        if t.device != depth.device:
            raise ValueError(
                f"{name} must be on the device of depth ({depth.device}), got {t.device}"
            )
    for name, t in (("idx_a", idx_a), ("idx_b", idx_b)):
        if t.dtype != torch.int64:
            raise TypeError(f"{name} must be int64, got {t.dtype}")
    if label.dtype.is_floating_point or label.dtype.is_complex or label.dtype == torch.bool:
        raise TypeError(f"label must be an integer tensor (-1, 0, +1), got {label.dtype}")


def depth_ranking_loss(depth, idx_a, idx_b, label, *, scale="raw"):
    """Depth ranking loss of SC-DepthV3: mean over the pairs with label != 0 of
    softplus(-label * (z_a - z_b)), z = depth at the flat pixel indices idx_a, idx_b [B, n]
    (int64) of each image; label [B, n] in {-1, 0, +1} (+1: a is farther than b).

    softplus(x) = log(1 + exp(x)) computed stably (the public code's log(1 + exp(x)) overflows
    to inf for x > 88 in float32). Pairs with label 0, or no pairs at all, add nothing: with
    no labelled pair the result is a zero that is still connected to `depth` (its gradient
    is zero). Computed in float32 at least; returns a scalar tensor.

    scale="mean" compares depth / its per-image mean (gradient through the mean too), which
    makes the loss blind to each image's global scale (a departure from the public code).
    """
    _check_pairs(depth, idx_a, idx_b, label)
    ct = torch.promote_types(depth.dtype, torch.float32)
    z = depth.reshape(depth.shape[0], -1).to(ct)
    if scale == "mean":
        z = z / z.mean(1, keepdim=True)
    elif scale != "raw":
        raise ValueError(f"scale must be raw or mean, got {scale!r}")
    z_a, z_b = z.gather(1, idx_a), z.gather(1, idx_b)
    labelled = label != 0
    # Unlabelled pairs are zeroed before softplus, so that their depths (even NaN or inf)
    # reach neither the value nor the gradient.
    diff = torch.where(labelled, z_a - z_b, 0.0)
    loss = torch.where(labelled, F.softplus(-label.to(ct) * diff), 0.0)
    return loss.sum() / labelled.sum().clamp_min(1).to(ct)


def global_pair_count(H, W, ratio=GLOBAL_PAIR_RATIO):
    """n = floor(ratio * N + 0.5) global random pairs per image of N = H * W pixels (0 if N < 2)."""
    N = H * W
    return math.floor(ratio * N + 0.5) if N >= 2 else 0


def global_pair_draws(B, H, W, ratio=GLOBAL_PAIR_RATIO, generator=None, *, device=None):
    """The pixels of global_random_pairs: (idx_a, idx_b) [B, n] int64, each ordered pair of
    distinct pixels equally likely, drawn from `generator` on its device (default: the global
    generator of `device`). Drawn apart from the labels so that the loss compiles whole."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    device = generator.device if generator is not None else device
    N, n = H * W, global_pair_count(H, W, ratio)
    idx_a = torch.randint(max(N, 1), (B, n), generator=generator, device=device)
    # b = a + an offset uniform in [1, N): uniform over the N - 1 pixels other than a.
    offset = torch.randint(1, max(N, 2), (B, n), generator=generator, device=device)
    return idx_a, (idx_a + offset) % max(N, 1)


def ordinal_labels(pd_a, pd_b, tau):
    """int8 labels of pairs with pseudo depths pd_a, pd_b (same shape), compared in float64:
    +1 if pd_a >= (1 + tau) pd_b, -1 if pd_b >= (1 + tau) pd_a, else 0; 0 where either depth
    is not finite or <= 0."""
    a, b = pd_a.double(), pd_b.double()
    one_plus_tau = 1.0 + tau
    valid = torch.isfinite(a) & torch.isfinite(b) & (a > 0) & (b > 0)
    one = torch.ones((), dtype=torch.int8, device=a.device)
    label = torch.where(a >= one_plus_tau * b, one, torch.where(b >= one_plus_tau * a, -one, 0))
    return torch.where(valid, label, 0).to(torch.int8)


def global_random_pairs(
    pseudo_depth, *, ratio=GLOBAL_PAIR_RATIO, tau=RANKING_TAU, generator=None, draws=None
):
    """SC-DepthV3's global random pairs: in every image, n = floor(ratio * N + 0.5) ordered
    pairs (a, b) of distinct pixels, each uniform over all such pairs and independent of the
    others, with labels from pseudo_depth [B, 1, H, W] by the rule of
    scdepth.ops.sample_dynamic_pairs (+1 if pd_a >= (1 + tau) pd_b, -1 if pd_b >= (1 + tau)
    pd_a, else 0; 0 where either depth is not finite or <= 0).

    Returns (idx_a, idx_b, label) [B, n] (int64, int64, int8) like sample_dynamic_pairs; n = 0
    when N < 2. The pixels are `draws` (global_pair_draws), else drawn from `generator` (on
    its device, then moved to the pseudo depth's; default: the global generator of the pseudo
    depth's device).

    The public code draws one Bernoulli(ratio) mask for the whole batch and pairs its pixels
    in index order with a permutation of the same mask, so a pixel can be paired with itself
    and the count varies; here every image gets its own independent pairs and a static count.
    """
    if pseudo_depth.dim() != 4 or pseudo_depth.shape[1] != 1:
        raise ValueError(f"pseudo_depth must be [B, 1, H, W], got {list(pseudo_depth.shape)}")
    if not (math.isfinite(tau) and tau >= 0.0):
        raise ValueError(f"tau must be finite and >= 0, got {tau}")
    B, _, H, W = pseudo_depth.shape
    if draws is None:
        draws = global_pair_draws(B, H, W, ratio, generator, device=pseudo_depth.device)
    idx_a, idx_b = (d.to(pseudo_depth.device) for d in draws)
    pd = pseudo_depth.detach().reshape(B, H * W)
    return idx_a, idx_b, ordinal_labels(pd.gather(1, idx_a), pd.gather(1, idx_b), tau)


def dynamic_region_refinement(ops, depth, pseudo_depth, score, cfg, *, seed, global_pairs=None):
    """SC-DepthV3's mask ranking loss: the 20% of pixels most likely dynamic (highest score)
    paired with random static pixels, plus random pairs over the whole image, all ranked by
    the pseudo-depth's ordinal labels. global_pairs: global_pair_draws for the whole-image
    pairs (default: drawn from `seed` on the pseudo depth's device)."""
    idx_a, idx_b, label = ops.sample_dynamic_pairs(
        score, pseudo_depth, ratio=cfg.drr_ratio, tau=cfg.rank_tau, seed=seed
    )
    if cfg.drr_global_ratio > 0:
        if global_pairs is None:
            gen = torch.Generator(device=pseudo_depth.device).manual_seed(seed)
            B, _, H, W = pseudo_depth.shape
            global_pairs = global_pair_draws(B, H, W, cfg.drr_global_ratio, gen)
        pairs = global_random_pairs(pseudo_depth, tau=cfg.rank_tau, draws=global_pairs)
        idx_a, idx_b, label = (
            torch.cat(p, 1) for p in zip((idx_a, idx_b, label), pairs, strict=True)
        )
    return depth_ranking_loss(depth, idx_a, idx_b, label, scale=cfg.rank_scale)
