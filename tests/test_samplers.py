"""The static-shape edge-guided sampler of the normal ranking loss keeps the statistics of the
data-dependent one it replaced (kept here, as old_*, for reference: the library has only the
new one)."""

import math

import torch
import torch.nn.functional as F
from helpers import edge_guided_pairs

from scdepth import losses, ops
from scdepth.geometry import sobel
from scdepth.losses import ordinal_labels
from scdepth.ops import reference

B, H, W = 2, 48, 64
SEEDS = 30


# --- the sampler before static shapes (every anchor, found with nonzero), as reference


def old_edge_guided_pairs(magnitude, theta, generator):
    Bn, H, W = magnitude.shape
    peak = magnitude.flatten(1).amax(1).view(Bn, 1, 1)
    b, r, c = ((magnitude >= losses.EDGE_THRESHOLD * peak) & (peak > 0)).nonzero(as_tuple=True)
    n = b.numel()
    dist = torch.randint(*losses.EDGE_DISTANCES, (4, n), generator=generator)
    sign = torch.tensor([-1, -1, 1, 1]).view(4, 1)
    t = theta[b, r, c]
    cols = (c + torch.round(dist * sign * torch.cos(t)).long()).clamp(0, W - 1)
    rows = (r + torch.round(dist * sign * torch.sin(t)).long()).clamp(0, H - 1)
    flat = b * H * W + rows * W + cols
    return flat[:3].reshape(-1), flat[1:].reshape(-1)


def edge_maps(img, pseudo_depth, pseudo_normal):
    """The two (magnitude, theta) maps normal_ranking_loss samples, as it computes them."""
    gx, gy = sobel(img.mean(1, keepdim=True))
    img_mag, img_theta = losses._edges(gx[:, 0], gy[:, 0])
    ngx, ngy = sobel(pseudo_normal)
    n_mag, n_theta = losses._edges(ngx.abs().mean(1), ngy.abs().mean(1))
    border = torch.ones_like(n_mag, dtype=torch.bool)
    k = losses.NORMAL_BORDER
    border[:, k:-k, k:-k] = False
    dgx, dgy = sobel(pseudo_depth)
    d_mag, _ = losses._edges(dgx[:, 0], dgy[:, 0])
    peak = d_mag.flatten(1).amax(1).view(-1, 1, 1)
    depth_edges = losses._dilate(d_mag >= losses.EDGE_THRESHOLD * peak)
    return [
        (img_mag.masked_fill(depth_edges, 0), img_theta),
        (n_mag.masked_fill(depth_edges | border, 0), n_theta),
    ]


def old_pairs(img, pseudo_depth, pseudo_normal, generator):
    """Kept pairs (A, B) of the old normal ranking loss."""
    pairs = [
        old_edge_guided_pairs(m, t, generator)
        for m, t in edge_maps(img, pseudo_depth, pseudo_normal)
    ]
    A = torch.cat([p[0] for p in pairs])
    Bp = torch.cat([p[1] for p in pairs])
    valid = ((pseudo_depth > 0) & torch.isfinite(pseudo_depth)).flatten()
    keep = valid[A] & valid[Bp]
    return A[keep], Bp[keep], (len(pairs[0][0]), len(pairs[1][0]))


def old_normal_ranking_loss(img, pseudo_depth, normal, pseudo_normal, generator):
    A, Bp, _ = old_pairs(img, pseudo_depth, pseudo_normal, generator)
    n = normal.permute(0, 2, 3, 1).reshape(-1, 3)
    ns = pseudo_normal.permute(0, 2, 3, 1).reshape(-1, 3)
    cos = (n[A] * n[Bp]).sum(1).abs()
    cos_star = (ns[A] * ns[Bp]).sum(1).abs()
    return (cos - cos_star).abs().mean()


def new_pairs(img, pseudo_depth, pseudo_normal, draws):
    """(A, B, weight) of the new sampler, weight 0 where a point has no valid pseudo-depth."""
    u, dist = draws
    maps = edge_maps(img, pseudo_depth, pseudo_normal)
    pairs = [edge_guided_pairs(m, t, u[i], dist[i]) for i, (m, t) in enumerate(maps)]
    A, Bp, w = (torch.cat(p) for p in zip(*pairs, strict=True))
    valid = ((pseudo_depth > 0) & torch.isfinite(pseudo_depth)).flatten()
    return A, Bp, w * (valid[A] & valid[Bp]), [p[2].sum() for p in pairs]


# --- fixed inputs: an image with edges, a smooth pseudo-depth with a hole, another depth


def scene():
    g = torch.Generator().manual_seed(0)
    img = torch.zeros(B, 3, H, W)
    for _ in range(12):  # overlapping rectangles of random grey levels
        r0, c0 = (
            torch.randint(0, H - 8, (2,), generator=g),
            torch.randint(0, W - 8, (2,), generator=g),
        )
        h, w = torch.randint(6, 24, (2,), generator=g)
        img[:, :, r0[0] : r0[0] + h, c0[0] : c0[0] + w] = torch.rand(B, 1, 1, 1, generator=g)
    coarse = torch.rand(B, 1, H // 8, W // 8, generator=g)
    pseudo = 2 + F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False)
    pseudo[:, :, 30:36, 10:20] = 0  # no reading: pairs touching it drop out
    other = 2 + F.interpolate(
        torch.rand(B, 1, H // 8, W // 8, generator=g), size=(H, W), mode="bicubic"
    )
    f = 60.0
    K = torch.tensor([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]]).expand(B, 3, 3)
    return img, pseudo, reference.depth_normals(other, K), reference.depth_normals(pseudo, K)


def draws(seed):
    return losses.edge_pair_draws(B, H, W, torch.Generator().manual_seed(seed))


def distances(A, Bp):
    ra, ca = (A % (H * W)) // W, A % W
    rb, cb = (Bp % (H * W)) // W, Bp % W
    return torch.sqrt(((ra - rb) ** 2 + (ca - cb) ** 2).double())


def test_pair_counts_are_static_and_weigh_as_many_as_the_old_pairs():
    img, pseudo, _, pseudo_normal = scene()
    M = losses.edge_anchor_count(H, W)
    _, _, (n_img, n_normal) = old_pairs(
        img, pseudo, pseudo_normal, torch.Generator().manual_seed(0)
    )
    assert n_img > 0 and n_normal > 0
    kept_old, kept_new = [], []
    for seed in range(SEEDS):
        A, Bp, w, per_map = new_pairs(img, pseudo, pseudo_normal, draws(seed))
        assert A.shape == Bp.shape == w.shape == (2 * 3 * B * M,)  # static: M per image and map
        # before masking, the weights sum to the old count of pairs (3 per anchor; float32 sum)
        torch.testing.assert_close(
            torch.stack(per_map).double(),
            torch.tensor([n_img, n_normal], dtype=torch.float64),
            rtol=1e-6,
            atol=0,
        )
        kept_new.append(float(w.sum()))
        kept_old.append(
            len(old_pairs(img, pseudo, pseudo_normal, torch.Generator().manual_seed(seed))[0])
        )
    # after masking, both estimate the number of kept pairs: the means agree within 2%
    assert math.isclose(sum(kept_new) / SEEDS, sum(kept_old) / SEEDS, rel_tol=0.02)


def test_labels_and_distances_along_the_edge_normal_keep_their_distribution():
    img, pseudo, _, pseudo_normal = scene()
    pd = pseudo.flatten()
    bins = torch.arange(0, 40, 2.0)
    old_hist, new_hist = (
        torch.zeros(len(bins) + 1, dtype=torch.float64),
        torch.zeros(len(bins) + 1, dtype=torch.float64),
    )
    old_labels, new_labels = (
        torch.zeros(3, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
    )
    for seed in range(SEEDS):
        A, Bp, _ = old_pairs(img, pseudo, pseudo_normal, torch.Generator().manual_seed(seed))
        old_hist += torch.bincount(torch.bucketize(distances(A, Bp), bins), minlength=len(bins) + 1)
        old_labels += torch.bincount(ordinal_labels(pd[A], pd[Bp], 0.01).long() + 1, minlength=3)
        A, Bp, w, _ = new_pairs(img, pseudo, pseudo_normal, draws(seed))
        w = w.double()
        new_hist += torch.bincount(
            torch.bucketize(distances(A, Bp), bins), w, minlength=len(bins) + 1
        )
        new_labels += torch.bincount(ordinal_labels(pd[A], pd[Bp], 0.01).long() + 1, w, minlength=3)
    old_hist, new_hist = old_hist / old_hist.sum(), new_hist / new_hist.sum()
    old_labels, new_labels = old_labels / old_labels.sum(), new_labels / new_labels.sum()
    # every bin and label share within 0.01 (sampling noise of ~1e5 pairs is ~0.002)
    torch.testing.assert_close(new_hist, old_hist, atol=0.01, rtol=0)
    torch.testing.assert_close(new_labels, old_labels, atol=0.01, rtol=0)
    assert old_labels.min() > 0.05  # all three labels occur: the comparison means something


def test_loss_mean_over_seeds_matches_the_old_sampler():
    img, pseudo, normal, pseudo_normal = scene()
    old = torch.tensor(
        [
            float(
                old_normal_ranking_loss(
                    img, pseudo, normal, pseudo_normal, torch.Generator().manual_seed(s)
                )
            )
            for s in range(SEEDS)
        ]
    )
    new = torch.tensor(
        [
            float(
                losses.normal_ranking_loss(ops, img, pseudo, normal, pseudo_normal, draws=draws(s))
            )
            for s in range(SEEDS)
        ]
    )
    assert old.mean() > 0.01
    # the difference of the means within 4 standard errors (the old loss varies only with
    # the distances, the new one with the anchors as well)
    se = math.sqrt((old.var() + new.var()) / SEEDS)
    assert abs(float(new.mean() - old.mean())) < 4 * se + 1e-3 * float(old.mean())
