"""SC-Depth (V1) and SC-DepthV3 losses, one small function per term of the papers.

Functions that run a fused op take `ops`, from scdepth.ops.get_backend('ext' | 'reference'),
so that the same code runs on the kernels or on their PyTorch references. Nothing here
modifies its inputs in place.
"""

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


def pairwise_terms(ops, tgt_img, ref_img, tgt_depth, ref_depth, pose, K, cfg):
    """One warp direction (ref -> tgt view): per-pixel photometric error weighted by the
    self-discovered mask, its L1 part, D_diff (0 out of view) and the valid mask.

    pose maps tgt-camera points into the ref camera. All maps are [B, 1, H, W]."""
    warped, computed_depth, in_view = ops.inverse_warp(
        torch.cat([ref_img, ref_depth], 1), tgt_depth, pose, K
    )
    ref_warped, projected_depth = warped[:, :-1], warped[:, -1:]
    # D_diff = |z' - D_ref(u', v')| / (z' + D_ref(u', v')), defined where the warp is valid.
    ok = in_view > 0
    denom = torch.where(ok, computed_depth + projected_depth, torch.ones_like(computed_depth))
    d_diff = torch.where(
        ok, (computed_depth - projected_depth).abs() / denom, torch.zeros_like(denom)
    )
    # Self-discovered mask: down-weight pixels whose depths disagree (moving, occluded).
    weight = None if cfg.no_dynamic_mask else (1 - d_diff).detach()
    alpha = 0.0 if cfg.no_ssim else cfg.ssim_alpha
    photo, l1 = ops.photometric_error(
        tgt_img, ref_warped, weight, alpha=alpha, window=cfg.ssim_window
    )
    valid = in_view
    if not cfg.no_auto_mask:
        # Auto-mask (Monodepth2): keep pixels the warp explains better than no motion does.
        identity = (tgt_img - ref_img).abs().mean(1, keepdim=True)
        valid = valid * (l1.detach() < identity).to(valid.dtype)
    return photo, l1, d_diff, valid


def photo_and_geometry_loss(
    ops, tgt_img, ref_imgs, tgt_depth, ref_depths, poses, poses_inv, K, cfg
):
    """Photometric and geometry consistency losses over both warp directions of every
    reference frame, and the dynamic score of the target (mean over references of the
    target's D_diff, 0 out of view) for Dynamic Region Refinement.

    With the per-pixel minimum, each pixel keeps the candidate (of 2N, valid ones first)
    whose L1 error is lowest."""
    photos, l1s, d_diffs, valids = [], [], [], []
    for ref_img, ref_depth, pose, pose_inv in zip(
        ref_imgs, ref_depths, poses, poses_inv, strict=True
    ):
        for direction in (
            (tgt_img, ref_img, tgt_depth, ref_depth, pose),
            (ref_img, tgt_img, ref_depth, tgt_depth, pose_inv),
        ):
            photo, l1, d_diff, valid = pairwise_terms(ops, *direction, K, cfg)
            photos.append(photo)
            l1s.append(l1)
            d_diffs.append(d_diff)
            valids.append(valid)
    photo, l1 = torch.cat(photos, 1), torch.cat(l1s, 1)
    d_diff, valid = torch.cat(d_diffs, 1), torch.cat(valids, 1)
    if not cfg.no_min_optimize:
        choice = torch.where(valid > 0, l1.detach(), torch.full_like(l1, float("inf")))
        idx = choice.argmin(1, keepdim=True)
        photo, d_diff, valid = (t.gather(1, idx) for t in (photo, d_diff, valid))
    photo_loss = mean_on_mask(photo, valid.expand_as(photo))
    geometry_loss = mean_on_mask(d_diff, valid.expand_as(d_diff))
    # d_diff is already 0 out of view; the target -> ref directions are every other map.
    dynamic_score = torch.cat(d_diffs[0::2], 1).mean(1, keepdim=True).detach()
    return photo_loss, geometry_loss, dynamic_score


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
NORMAL_BORDER = 5  # pseudo-normal edges this close to the border are ignored


def _edges(gx, gy):
    """Gradient magnitude and direction [B, H, W] from channel-averaged gradients."""
    return torch.sqrt(gx**2 + gy**2), torch.atan2(gy, gx)


def _dilate(mask):
    return F.max_pool2d(mask.float().unsqueeze(1), 3, stride=1, padding=1).squeeze(1) > 0


def edge_guided_pairs(magnitude, theta, generator=None):
    """Point pairs along edge normals, for every image of the batch at once.

    Every pixel whose gradient magnitude is >= 10% of its image's maximum is an anchor; four
    points a, b, c, d lie along the direction theta at signed distances (-d1, -d2, +d3, +d4),
    d_i in [3, 20) px, clamped to the image; pairs are (a, b), (b, c), (c, d).
    Returns flat indices (A, B) into [B * H * W]."""
    Bn, H, W = magnitude.shape
    peak = magnitude.flatten(1).amax(1).view(Bn, 1, 1)
    b, r, c = ((magnitude >= EDGE_THRESHOLD * peak) & (peak > 0)).nonzero(as_tuple=True)
    n = b.numel()
    dist = torch.randint(*EDGE_DISTANCES, (4, n), generator=generator).to(magnitude.device)
    sign = torch.tensor([-1, -1, 1, 1], device=magnitude.device).view(4, 1)
    t = theta[b, r, c]
    cols = (c + torch.round(dist * sign * torch.cos(t)).long()).clamp(0, W - 1)
    rows = (r + torch.round(dist * sign * torch.sin(t)).long()).clamp(0, H - 1)
    flat = b * H * W + rows * W + cols  # [4, n]
    return flat[:3].reshape(-1), flat[1:].reshape(-1)


def normal_ranking_loss(img, pseudo_depth, normal, pseudo_normal, generator=None):
    """Edge-guided normal ranking loss (SC-DepthV3 Local Structure Refinement): for point pairs
    across image edges and pseudo-normal edges, the predicted |n_A . n_B| should match the
    pseudo-normals'. Depth discontinuities of the pseudo-depth are excluded (normals are not
    defined there). img [B, 3, H, W], pseudo_depth [B, 1, H, W], normals [B, 3, H, W]."""
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
    pairs = [
        edge_guided_pairs(m, t, generator) for m, t in ((img_mag, img_theta), (n_mag, n_theta))
    ]
    A = torch.cat([p[0] for p in pairs])
    B = torch.cat([p[1] for p in pairs])
    valid = (pseudo_depth > 0) & torch.isfinite(pseudo_depth)
    keep = valid.flatten()[A] & valid.flatten()[B]
    A, B = A[keep], B[keep]
    if A.numel() == 0:
        return normal.sum() * 0
    n = normal.permute(0, 2, 3, 1).reshape(-1, 3)
    ns = pseudo_normal.permute(0, 2, 3, 1).reshape(-1, 3)
    cos = (n[A] * n[B]).sum(1).abs()
    cos_star = (ns[A] * ns[B]).sum(1).abs()
    return (cos - cos_star).abs().mean()
