"""The loss stack of the public SC-Depth code, re-implemented to reproduce its cost.

This is the baseline of the loss-stack benchmark (benchmarks/bench_losses.py): what a user
of the public code (sc_depth_pl: losses/loss_functions.py, losses/inverse_warp.py,
losses/mask_ranking_loss.py, losses/normal_ranking_loss.py, SC_Depth.py, SC_DepthV3.py, and
kornia.geometry.depth.depth_to_normals, which SC_DepthV3.py calls) runs per training step.
It is written from a reading of that code, not copied, and keeps its computation pattern on
purpose, because the pattern is what costs time:

- each warp direction builds its own pixel grid, back-projects, projects, normalises the
  grid for align_corners=True, moves out-of-image coordinates in place, and samples the
  image and the depth with two separate grid_sample calls (align_corners=False);
- SSIM with k = 7: ReflectionPad2d(3) then five AvgPool2d(7, 1), elementwise in between;
- auto-mask, L1, SSIM mix and the self-discovered mask as separate elementwise passes;
  the per-pixel minimum over the 2N candidates; mean_on_mask with a host-side `if`;
- V3: the dynamic mask by in-place masking of the D_diff maps; the mask ranking loss with its
  Python loop over the batch (a full torch.sort per image, boolean selections, torch.cat
  growth) and its global random pairs (torch.randperm); log(1 + exp(x));
- the edge-guided normal ranking loss: Sobel edges of the image (first channel), of the
  pseudo-normals and of the pseudo-depth, dilation by a 3x3 convolution, then a Python loop
  over the batch in float64 with two edge-guided samplings per image;
- kornia-style depth_to_normals: points back-projected per pixel in [B, H, W, 3] layout,
  normalised Sobel spatial gradient (replicate padding, one conv2d over B*C planes), cross
  product, L2 normalisation.

Semantic differences from scdepth (e.g. the half-pixel shift of the public warp) are kept:
this module measures what users would otherwise run; it is not an oracle.
"""

import torch
import torch.nn.functional as F

from scdepth.geometry import pose_vec2mat

SSIM_WINDOW = 7  # the public code's SSIM box size
SSIM_C1, SSIM_C2 = 0.01**2, 0.03**2
MIN_Z = 1e-3  # depth clamp of the public cam2pixel
UNRELIABLE_PERCENT = 0.2  # share of pixels the mask ranking loss treats as dynamic
GLOBAL_SAMPLE_RATIO = 0.1  # share of pixels in the global random pairs
RANK_THETA = 0.15  # ordinal margin
FILTER_DEPTH = 1e-8
NORMAL_MASK_VALUE = -1e-8


class Options:
    """The hparams the public loss functions read (all terms on, as in its defaults)."""

    def __init__(self, **kw):
        self.no_ssim = kw.get("no_ssim", False)
        self.no_auto_mask = kw.get("no_auto_mask", False)
        self.no_dynamic_mask = kw.get("no_dynamic_mask", False)
        self.no_min_optimize = kw.get("no_min_optimize", False)
        self.model_version = kw.get("model_version", "v1")


# ---------------------------------------------------------------------------------------------
# inverse warp: pixel grid -> camera -> other camera -> normalised grid -> two grid_samples

_grid_cache = {}


def _pixel_grid(h, w, like):
    """[1, 3, H, W] homogeneous pixel coordinates, kept between calls like the public code's
    module-level pixel_coords."""
    key = (h, w, like.dtype, like.device)
    if key not in _grid_cache:
        rows = torch.arange(h, dtype=like.dtype, device=like.device).view(1, h, 1).expand(1, h, w)
        cols = torch.arange(w, dtype=like.dtype, device=like.device).view(1, 1, w).expand(1, h, w)
        _grid_cache[key] = torch.stack([cols, rows, torch.ones_like(rows)], 1)
    return _grid_cache[key]


def _back_project(depth, K_inv):
    """depth [B, H, W] -> camera points [B, 3, H, W]."""
    b, h, w = depth.shape
    pix = _pixel_grid(h, w, depth).expand(b, 3, h, w).reshape(b, 3, -1)
    return (K_inv @ pix).reshape(b, 3, h, w) * depth.unsqueeze(1)


def _project(points, rot, tr):
    """Camera points [B, 3, H, W] -> grid for grid_sample [B, H, W, 2] and depth z'."""
    b, _, h, w = points.shape
    p = rot @ points.reshape(b, 3, -1) + tr
    z = p[:, 2].clamp(min=MIN_Z)
    gx = 2 * (p[:, 0] / z) / (w - 1) - 1
    gy = 2 * (p[:, 1] / z) / (h - 1) - 1
    # out-of-image coordinates moved far outside, in place (as the public code does)
    gx[((gx > 1) + (gx < -1)).detach()] = 2
    gy[((gy > 1) + (gy < -1)).detach()] = 2
    return torch.stack([gx, gy], 2).reshape(b, h, w, 2), z.reshape(b, 1, h, w)


def inverse_warp(img, depth, ref_depth, pose_vec, K):
    """(warped image, depth of ref sampled at the projection, computed depth z')."""
    points = _back_project(depth.squeeze(1), K.inverse())
    proj = K @ pose_vec2mat(pose_vec)
    grid, computed_depth = _project(points, proj[:, :, :3], proj[:, :, -1:])
    warped = F.grid_sample(img, grid, padding_mode="zeros", align_corners=False)
    projected_depth = F.grid_sample(ref_depth, grid, padding_mode="zeros", align_corners=False)
    return warped, projected_depth, computed_depth


# ---------------------------------------------------------------------------------------------
# photometric and geometry consistency


class SSIMLoss(torch.nn.Module):
    """clamp((1 - SSIM) / 2, 0, 1) per pixel and channel: reflection pad, five box means."""

    def __init__(self, k=SSIM_WINDOW):
        super().__init__()
        self.pad = torch.nn.ReflectionPad2d(k // 2)
        self.pools = torch.nn.ModuleList(torch.nn.AvgPool2d(k, 1) for _ in range(5))

    def forward(self, x, y):
        x, y = self.pad(x), self.pad(y)
        mx, my = self.pools[0](x), self.pools[1](y)
        sx = self.pools[2](x**2) - mx**2
        sy = self.pools[3](y**2) - my**2
        sxy = self.pools[4](x * y) - mx * my
        num = (2 * mx * my + SSIM_C1) * (2 * sxy + SSIM_C2)
        den = (mx**2 + my**2 + SSIM_C1) * (sx + sy + SSIM_C2)
        return torch.clamp((1 - num / den) / 2, 0, 1)


ssim_loss = SSIMLoss()


def pairwise_loss(tgt_img, ref_img, tgt_depth, ref_depth, pose_vec, K, opt):
    """One warp direction: (photometric map, colour L1 map, D_diff, valid mask)."""
    warped, projected_depth, computed_depth = inverse_warp(
        ref_img, tgt_depth, ref_depth, pose_vec, K
    )
    diff_depth = (computed_depth - projected_depth).abs() / (computed_depth + projected_depth)
    valid_ref = (warped.abs().mean(1, keepdim=True) > 1e-3).float()
    valid_tgt = (tgt_img.abs().mean(1, keepdim=True) > 1e-3).float()
    valid = valid_tgt * valid_ref
    diff_color = (tgt_img - warped).abs().mean(1, keepdim=True)
    if not opt.no_auto_mask:
        identity = (tgt_img - ref_img).abs().mean(1, keepdim=True)
        valid = (diff_color < identity).float() * valid
    diff_img = (tgt_img - warped).abs().clamp(0, 1)
    if not opt.no_ssim:
        diff_img = 0.15 * diff_img + 0.85 * ssim_loss(tgt_img, warped)
    diff_img = diff_img.mean(1, keepdim=True)
    if not opt.no_dynamic_mask:
        diff_img = diff_img * (1 - diff_depth).detach()
    return diff_img, diff_color, diff_depth, valid


def mean_on_mask(x, valid):
    mask = valid.expand_as(x)
    if mask.sum() > 100:  # a host sync, as in the public code
        return (x * mask).sum() / mask.sum()
    return torch.tensor(0.0, device=x.device)


def photo_and_geometry_loss(tgt_img, ref_imgs, tgt_depth, ref_depths, K, poses, poses_inv, opt):
    """Both directions per reference frame, minimum over 2N, masked means. V3 also returns
    the dynamic mask (1 - D_diff of the target, 0 D_diff out of view, mean over references)."""
    imgs, colors, depths, valids = [], [], [], []
    for ref_img, ref_depth, pose, pose_inv in zip(
        ref_imgs, ref_depths, poses, poses_inv, strict=True
    ):
        for args in (
            (tgt_img, ref_img, tgt_depth, ref_depth, pose),
            (ref_img, tgt_img, ref_depth, tgt_depth, pose_inv),
        ):
            d_img, d_color, d_depth, valid = pairwise_loss(*args, K, opt)
            imgs.append(d_img)
            colors.append(d_color)
            depths.append(d_depth)
            valids.append(valid)
    diff_img, diff_color = torch.cat(imgs, 1), torch.cat(colors, 1)
    diff_depth, valid = torch.cat(depths, 1), torch.cat(valids, 1)
    if not opt.no_min_optimize:
        idx = diff_color.argmin(1, keepdim=True)
        diff_img, diff_depth, valid = (t.gather(1, idx) for t in (diff_img, diff_depth, valid))
    photo = mean_on_mask(diff_img, valid)
    geometry = mean_on_mask(diff_depth, valid)
    if opt.model_version != "v3":
        return photo, geometry
    dynamic = []
    for i in range(0, len(depths), 2):
        d = depths[i]
        d[valids[i] < 1] = 0  # in place on the graph's tensor, as the public code does
        dynamic.append(1 - d)
    return photo, geometry, torch.cat(dynamic, 1).mean(1, keepdim=True)


def smooth_loss(depth, img):
    """Edge-aware smoothness of the mean-normalised depth (V1)."""
    d = depth / (depth.mean(2, True).mean(3, True) + 1e-7)
    gdx = (d[:, :, :, :-1] - d[:, :, :, 1:]).abs()
    gdy = (d[:, :, :-1, :] - d[:, :, 1:, :]).abs()
    gix = (img[:, :, :, :-1] - img[:, :, :, 1:]).abs().mean(1, keepdim=True)
    giy = (img[:, :, :-1, :] - img[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (gdx * torch.exp(-gix)).mean() + (gdy * torch.exp(-giy)).mean()


# ---------------------------------------------------------------------------------------------
# kornia-style normals


def _unproject_bhw3(depth, K):
    """Camera points [B, 3, H, W] computed per pixel in [B, H, W, 3] layout (kornia's
    depth_to_3d: meshgrid of pixel coordinates, (u - cx) / fx, (v - cy) / fy, times depth)."""
    _, _, h, w = depth.shape
    ys, xs = torch.meshgrid(
        torch.linspace(0, h - 1, h, device=depth.device, dtype=depth.dtype),
        torch.linspace(0, w - 1, w, device=depth.device, dtype=depth.dtype),
        indexing="ij",
    )
    uv = torch.stack([xs, ys], -1)[None]  # [1, H, W, 2]
    Kb = K[:, None, None]  # [B, 1, 1, 3, 3]
    x = (uv[..., 0] - Kb[..., 0, 2]) / Kb[..., 0, 0]
    y = (uv[..., 1] - Kb[..., 1, 2]) / Kb[..., 1, 1]
    rays = torch.stack([x, y, torch.ones_like(x)], -1)
    return (rays * depth.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def spatial_gradient(x):
    """Normalised Sobel (d/du, d/dv) of every plane, replicate padding: [B, C, 2, H, W]."""
    b, c, h, w = x.shape
    k = _SOBEL.to(x) / _SOBEL.abs().sum()
    kernel = torch.stack([k, k.t()])[:, None]  # [2, 1, 3, 3]: d/du, d/dv (cross-correlation)
    planes = F.pad(x.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(planes, kernel).view(b, c, 2, h, w)


def depth_to_normals(depth, K):
    points = _unproject_bhw3(depth, K)
    g = spatial_gradient(points)
    n = torch.cross(g[:, :, 0], g[:, :, 1], dim=1)
    return F.normalize(n, dim=1, p=2)


# ---------------------------------------------------------------------------------------------
# V3 mask ranking loss (dynamic region refinement)


def _unreliable_mask(weight):
    """Per image, the UNRELIABLE_PERCENT pixels of lowest weight (a full sort each)."""
    B, _, H, W = weight.shape
    invalid = torch.ones_like(weight)
    for b in range(B):
        w_b, m_b = weight[b].view(-1), invalid[b].view(-1)
        _, order = torch.sort(w_b)
        order[: int(UNRELIABLE_PERCENT * H * W)] = order[H * W - 1]
        m_b[order] = 0
    return invalid > 0


def _dynamic_pairs(depth, pred, invalid):
    """Per image, every unreliable pixel paired with a random reliable one."""
    B = depth.shape[0]
    valid = ~invalid
    gt_a = gt_b = pr_a = pr_b = None
    for b in range(B):
        ga, pa = depth[b][invalid[b]], pred[b][invalid[b]]
        gv, pv = depth[b][valid[b]], pred[b][valid[b]]
        pick = torch.randint(0, len(gv), ga.size())
        gv, pv = gv[pick], pv[pick]
        if b == 0:
            gt_a, gt_b, pr_a, pr_b = ga, gv, pa, pv
            continue
        gt_a, gt_b = torch.cat((gt_a, ga), 0), torch.cat((gt_b, gv), 0)
        pr_a, pr_b = torch.cat((pr_a, pa), 0), torch.cat((pr_b, pv), 0)
    target = torch.zeros(gt_a.size(), device=depth.device)
    target[gt_a / gt_b >= 1 + RANK_THETA] = 1
    target[gt_b / gt_a > 1 + RANK_THETA] = -1
    return pr_a, pr_b, target


def _global_pairs(depth, pred):
    """GLOBAL_SAMPLE_RATIO of the pixels, paired with a random permutation of themselves."""
    B, C, H, W = depth.shape
    mask_a = torch.rand(C, H, W, device=depth.device)
    mask_a[mask_a >= (1 - GLOBAL_SAMPLE_RATIO)] = 1
    mask_a[mask_a < (1 - GLOBAL_SAMPLE_RATIO)] = 0
    perm = torch.randperm(mask_a.nelement())
    mask_b = mask_a.view(-1)[perm].view(mask_a.size())
    mask_a = mask_a.repeat(B, 1, 1).view(depth.shape) == 1
    mask_b = mask_b.repeat(B, 1, 1).view(depth.shape) == 1
    za, zb = depth[mask_a], depth[mask_b]
    keep = (za > FILTER_DEPTH) | (zb > FILTER_DEPTH)
    za, zb = za[keep], zb[keep]
    target = torch.zeros(za.size(), device=depth.device)
    target[za / zb > 1 + RANK_THETA] = 1
    target[zb / za > 1 + RANK_THETA] = -1
    return pred[mask_a][keep], pred[mask_b][keep], target


def _ranking(za, zb, target):
    nz = target != 0
    loss = torch.sum(torch.log(1 + torch.exp(-target[nz] * (za - zb)[nz])))
    return loss, len(target[nz])


def mask_ranking_loss(pred_depth, pseudo_depth, dynamic_mask):
    l1, n1 = _ranking(*_dynamic_pairs(pseudo_depth, pred_depth, _unreliable_mask(dynamic_mask)))
    l2, n2 = _ranking(*_global_pairs(pseudo_depth, pred_depth))
    return (l1 + l2) / (n1 + n2)


# ---------------------------------------------------------------------------------------------
# V3 edge-guided normal ranking loss (local structure refinement)

_SOBEL_GX = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_GY = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])


def _edges(gx, gy):
    mag = F.pad(torch.sqrt(gx**2 + gy**2), (1, 1, 1, 1), "constant", 0)
    theta = F.pad(torch.atan2(gy, gx), (1, 1, 1, 1), "constant", 0)
    return mag, theta


def _image_edges(images):
    """Unpadded Sobel of the first channel (of an RGB image) or of the single channel."""
    kx = _SOBEL_GX.to(images).view(1, 1, 3, 3)
    ky = _SOBEL_GY.to(images).view(1, 1, 3, 3)
    x = images[:, :1] if images.shape[1] == 3 else images
    return _edges(F.conv2d(x, kx), F.conv2d(x, ky))


def _normal_edges(normals):
    c = normals.shape[1]
    kx = _SOBEL_GX.to(normals).view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    ky = _SOBEL_GY.to(normals).view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    gx = F.conv2d(normals, kx, groups=c).abs().mean(1, keepdim=True)
    gy = F.conv2d(normals, ky, groups=c).abs().mean(1, keepdim=True)
    return _edges(gx, gy)


def _edge_guided_sampling(inputs, targets, edges, thetas, masks, h, w):
    """One image: anchors drawn among the edge pixels, four points along |cos|, |sin| of the
    edge direction at 3..19 px, pairs (a, b), (b, c), (c, d)."""
    edge_mask = edges.ge(edges.max() * 0.1)
    loc = edge_mask.nonzero(as_tuple=False)
    theta_edge = torch.masked_select(thetas, edge_mask)
    n = theta_edge.size()[0]
    anchors = torch.randint(0, n, (n,), dtype=torch.long, device=edges.device)
    theta = torch.gather(theta_edge, 0, anchors)
    flat = loc[anchors].squeeze(1)
    row0 = torch.div(flat, w, rounding_mode="floor")
    col0 = flat - row0 * w
    dist = torch.randint(3, 20, (4, n), device=edges.device).float()
    sign = torch.ones(4, n, device=edges.device)
    sign[:2] = -sign[:2]
    dist = dist * sign
    col = (
        col0.unsqueeze(0).expand(4, n).long()
        + torch.round(dist.double() * theta.cos().abs().unsqueeze(0)).long()
    )
    row = (
        row0.unsqueeze(0).expand(4, n).long()
        + torch.round(dist.double() * theta.sin().abs().unsqueeze(0)).long()
    )
    col[col < 0] = 0
    col[col > w - 1] = w - 1
    row[row < 0] = 0
    row[row > h - 1] = h - 1
    idx = row * w + col
    A = torch.cat((idx[0], idx[1], idx[2]), 0)
    B = torch.cat((idx[1], idx[2], idx[3]), 0)
    return (
        inputs[:, A],
        inputs[:, B],
        targets[:, A],
        targets[:, B],
        torch.gather(masks, 0, A),
        torch.gather(masks, 0, B),
    )


_DILATE = torch.ones(1, 1, 3, 3)


def normal_ranking_loss(pseudo_depth, images, normals, pseudo_normals):
    masks = pseudo_depth > NORMAL_MASK_VALUE
    edges_img, thetas_img = _image_edges(images)
    edges_n, thetas_n = _normal_edges(pseudo_normals)
    border = torch.ones_like(edges_n)
    border[:, :, 5:-5, 5:-5] = 0
    edges_n[border.bool()] = 0
    edges_d, _ = _image_edges(pseudo_depth)
    depth_edges = edges_d.ge(edges_d.max() * 0.1)
    dilated = torch.clamp(
        F.conv2d(depth_edges.float(), _DILATE.to(images), padding=(1, 1)), 0, 1
    ).bool()
    edges_n[dilated] = 0
    edges_img[dilated] = 0
    n, c, h, w = pseudo_normals.shape
    inputs = normals.contiguous().view(n, c, -1).double()
    targets = pseudo_normals.contiguous().view(n, c, -1).double()
    masks = masks.contiguous().view(n, -1)
    edges_img = edges_img.contiguous().view(n, -1).double()
    thetas_img = thetas_img.contiguous().view(n, -1).double()
    edges_n = edges_n.view(n, -1).double()
    thetas_n = thetas_n.view(n, -1).double()
    losses = []
    for i in range(n):
        ia, ib, ta, tb, ma, mb = _edge_guided_sampling(
            inputs[i], targets[i], edges_img[i], thetas_img[i], masks[i], h, w
        )
        nia, nib, nta, ntb, nma, nmb = _edge_guided_sampling(
            inputs[i], targets[i], edges_n[i], thetas_n[i], masks[i], h, w
        )
        ia, ib = torch.cat((ia, nia), 1), torch.cat((ib, nib), 1)
        ta, tb = torch.cat((ta, nta), 1), torch.cat((tb, ntb), 1)
        _consistent = torch.cat((ma, nma), 0) & torch.cat((mb, nmb), 0)  # computed, unused
        target_cos = torch.abs(torch.sum(ta * tb, dim=0))
        input_cos = torch.abs(torch.sum(ia * ib, dim=0))
        losses.append(torch.abs(target_cos - input_cos))
    return torch.cat(losses, 0).mean()


# ---------------------------------------------------------------------------------------------
# the whole loss stack of one training step (networks excluded)


def loss_stack(method, tgt_img, ref_imgs, tgt_depth, ref_depths, poses, poses_inv, K, pseudo_depth):
    """Total loss and its terms for method 'v1' (photo, geometry, smoothness; weights 1, 0.1,
    0.1) or 'v3' (photo, geometry, normal L1, mask ranking, normal ranking; 1, 0.1, 0.1, 0.1,
    0.1). poses, poses_inv: lists of [B, 6] vectors."""
    if method == "v1":
        opt = Options(model_version="v1")
        photo, geometry = photo_and_geometry_loss(
            tgt_img, ref_imgs, tgt_depth, ref_depths, K, poses, poses_inv, opt
        )
        smooth = smooth_loss(tgt_depth, tgt_img)
        terms = {"photo": photo, "geometry": geometry, "smooth": smooth}
        return photo + 0.1 * geometry + 0.1 * smooth, terms
    if method != "v3":
        raise ValueError(f"method must be 'v1' or 'v3', got {method!r}")
    opt = Options(model_version="v3")
    normal = depth_to_normals(tgt_depth, K)
    pseudo_normal = depth_to_normals(pseudo_depth, K)
    photo, geometry, dynamic = photo_and_geometry_loss(
        tgt_img, ref_imgs, tgt_depth, ref_depths, K, poses, poses_inv, opt
    )
    normal_l1 = (normal - pseudo_normal).abs().mean()
    mask_rank = mask_ranking_loss(tgt_depth, pseudo_depth, dynamic)
    normal_rank = normal_ranking_loss(pseudo_depth, tgt_img, normal, pseudo_normal)
    terms = {
        "photo": photo,
        "geometry": geometry,
        "normal_matching": normal_l1,
        "mask_rank": mask_rank,
        "normal_rank": normal_rank,
    }
    total = photo + 0.1 * geometry + 0.1 * normal_l1 + 0.1 * mask_rank + 0.1 * normal_rank
    return total, terms
