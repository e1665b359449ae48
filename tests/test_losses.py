"""Loss terms on hand-made inputs."""

import math

import pytest
import torch
from helpers import edge_guided_pairs

from scdepth import losses
from scdepth.ops import get_backend

EXT = get_backend("ext")


def intrinsics(B, f=50.0, cx=15.5, cy=11.5):
    K = torch.tensor([[f, 0, cx], [0, f, cy], [0, 0, 1.0]], dtype=torch.float64)
    return K.expand(B, 3, 3).clone()


def plane_depth(normal, offset, K, H, W):
    """Depth of the plane n . X = offset seen through K: d = offset / (n . K^-1 [u, v, 1])."""
    v, u = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    rays = torch.linalg.inv(K[0]) @ torch.stack([u, v, torch.ones_like(u)]).view(3, -1)
    return (offset / (torch.tensor(normal, dtype=torch.float64) @ rays)).view(1, 1, H, W)


def test_mean_on_mask_needs_more_than_100_pixels():
    x = torch.arange(400.0).view(1, 1, 20, 20)
    mask = torch.zeros_like(x)
    mask.view(-1)[:100] = 1
    assert losses.mean_on_mask(x, mask) == 0
    mask.view(-1)[:101] = 1
    assert losses.mean_on_mask(x, mask) == pytest.approx(50.0)


@pytest.mark.parametrize("backend", ["ext", "reference"])
def test_normals_of_planes(backend):
    K = intrinsics(1)
    for n in ([0.0, 0.0, 1.0], [0.3, -0.2, 0.93]):
        n_unit = torch.tensor(n, dtype=torch.float64) / torch.tensor(n).norm()
        depth = plane_depth(n_unit.tolist(), 5.0, K, 24, 32)
        normals = get_backend(backend).depth_normals(depth, K)
        # interior pixels (the replicate border has one-sided differences)
        inner = normals[0, :, 2:-2, 2:-2].reshape(3, -1).T
        torch.testing.assert_close(inner, n_unit.expand_as(inner), atol=1e-6, rtol=0)


def test_edge_aware_smoothness():
    img = torch.zeros(1, 3, 4, 4)
    flat = torch.full((1, 1, 4, 4), 2.0)
    assert losses.edge_aware_smoothness(flat, img) == 0
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4) + 1  # mean 2.5
    # normalised ramp steps by 1/2.5 in x; nothing in y; no image edges (weight 1)
    assert losses.edge_aware_smoothness(ramp, img).item() == pytest.approx(1 / 2.5)
    edge_img = img.clone()
    edge_img[..., 2:] = 1.0  # an image edge between columns 1 and 2 lowers that step's weight
    expected = (2 * 1 + math.exp(-1)) / 3 / 2.5
    assert losses.edge_aware_smoothness(ramp, edge_img).item() == pytest.approx(expected, rel=1e-6)


def test_edge_guided_pairs_follow_the_edge_normal():
    mag = torch.zeros(2, 40, 40)
    mag[0, 20, 20] = 1.0  # one anchor per image
    mag[1, 10, 30] = 2.0
    theta = torch.zeros(2, 40, 40)
    theta[1] = math.pi / 2  # image 1: gradient along +v
    u, dist = losses.edge_pair_draws(2, 40, 40, torch.Generator().manual_seed(0), maps=1)
    M = losses.edge_anchor_count(40, 40)
    A, B, weight = edge_guided_pairs(mag, theta, u[0], dist[0])
    assert A.shape == B.shape == weight.shape == (3 * 2 * M,)  # (a, b), (b, c), (c, d)
    torch.testing.assert_close(weight, torch.full_like(weight, 1 / M))  # n = 1 anchor
    b, rest = A // 1600, A % 1600
    rows, cols = rest // 40, rest % 40
    assert (rows[b == 0] == 20).all()  # theta 0: the points move along u only
    assert (cols[b == 1] == 30).all()  # theta pi/2: along v only
    d = (cols[b == 0] - 20).abs()
    assert ((d >= 3) & (d < 20)).all()


def test_edge_guided_pairs_draw_every_anchor_equally_often():
    """Stratified draws: each of n anchors is drawn M / n times in expectation (within one of
    it in every draw), so weights n / M make an unbiased sum over the anchors; an image
    without anchors weighs 0."""
    H, W = 4, 16
    mag = torch.zeros(2, H, W)
    anchors = [3, 7, 12, 21, 36, 42, 57]  # columns 3..12: no clamping 3 px left or right
    mag[0].view(-1)[anchors] = torch.linspace(0.5, 1.0, len(anchors))
    theta = torch.zeros(2, H, W)
    M, n, seeds = losses.edge_anchor_count(H, W), len(anchors), 400
    total = torch.zeros(H * W, dtype=torch.float64)
    for seed in range(seeds):
        u, dist = losses.edge_pair_draws(2, H, W, torch.Generator().manual_seed(seed), maps=1)
        A, _, weight = edge_guided_pairs(mag, theta, u[0], torch.full_like(dist[0], 3))
        w = weight.view(3, 2, M)
        assert (w[:, 0] == n / M).all() and (w[:, 1] == 0).all()
        drawn = A.view(3, 2, M)[0, 0] + 3  # point a lies 3 px left of its anchor
        count = torch.bincount(drawn, minlength=H * W).double()
        assert count.sum() == M and count[anchors].sum() == M  # only anchors are drawn
        assert (count[anchors] >= M // n - 1).all() and (count[anchors] <= -(-M // n) + 1).all()
        total += count
    # each count is in [1, 4] here (M / n = 16 / 7): std < 1.5, so the mean over 400 seeds has
    # a standard error < 0.075; 0.3 is 4 of them
    torch.testing.assert_close(
        total[anchors] / seeds, torch.full((n,), M / n, dtype=torch.float64), atol=0.3, rtol=0
    )


def test_normal_ranking_loss_is_zero_for_matching_normals_and_grows_otherwise():
    K = intrinsics(2).float()
    depth = torch.cat(
        [
            plane_depth([0.0, 0.0, 1.0], 4.0, intrinsics(1), 24, 32),
            plane_depth([0.4, 0.0, 0.92], 4.0, intrinsics(1), 24, 32),
        ]
    ).float()
    # a two-plane scene: the right half is tilted (a normal edge), the image has a stripe
    pseudo = depth.clone()
    pseudo[:, :, :, 16:] = depth[1:, :, :, 16:]
    img = torch.zeros(2, 3, 24, 32)
    img[:, :, :, 8:12] = 1.0
    n_star = EXT.depth_normals(pseudo, K)
    gen = torch.Generator().manual_seed(0)
    assert losses.normal_ranking_loss(EXT, img, pseudo, n_star, n_star, gen) == 0
    draws = losses.edge_pair_draws(2, 24, 32, torch.Generator().manual_seed(0))
    assert losses.normal_ranking_loss(EXT, img, pseudo, n_star, n_star, draws=draws) == 0
    n = EXT.depth_normals(depth[:1].expand(2, 1, 24, 32), K).requires_grad_()
    loss = losses.normal_ranking_loss(EXT, img, pseudo, n, n_star, torch.Generator().manual_seed(0))
    assert loss > 0.01
    loss.backward()
    assert n.grad.abs().sum() > 0


def test_normal_matching_loss():
    n = torch.zeros(1, 3, 2, 2)
    n[:, 2] = 1
    m = n.clone()
    m[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])
    assert losses.normal_matching_loss(n, n) == 0
    assert losses.normal_matching_loss(n, m).item() == pytest.approx(2 / 12)


@pytest.mark.parametrize("rule", ["valid_first", "public"])
def test_per_pixel_minimum_is_argmin(rule):
    """valid_first: argmin over the valid candidates; public: argmin over all of them."""
    g = torch.Generator().manual_seed(0)
    n, shape = 4, (2, 1, 6, 7)
    l1s = [torch.randint(0, 3, shape, generator=g).double() for _ in range(n)]  # many ties
    valids = [(torch.rand(shape, generator=g) > 0.3).double() for _ in range(n)]
    for v in valids:
        v[0, 0, 0] = 0  # a row of pixels with no valid candidate
    l1s[2][1, 0, 2, 3] = float("nan")  # a NaN error is chosen, as argmin does
    valids[2][1, 0, 2, 3] = 1
    photos = [
        torch.rand(shape, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(n)
    ]
    d_diffs = [torch.rand(shape, generator=g, dtype=torch.float64) for _ in range(n)]
    got = losses.per_pixel_minimum(l1s, photos, d_diffs, valids, rule=rule)

    l1, valid = torch.cat(l1s, 1), torch.cat(valids, 1)
    if rule == "valid_first":
        l1 = torch.where(valid > 0, l1, torch.full_like(l1, float("inf")))
    idx = l1.argmin(1, keepdim=True)
    want = [torch.cat(t, 1).gather(1, idx) for t in (photos, d_diffs, valids)]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    grads = torch.autograd.grad(got[0].sum(), photos)
    want_grads = torch.autograd.grad(want[0].sum(), photos)
    for a, b in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_public_minimum_drops_pixels_whose_best_warp_is_invalid():
    l1s = [torch.tensor([[[[0.1, 0.5]]]]), torch.tensor([[[[0.3, 0.2]]]])]
    valids = [torch.tensor([[[[0.0, 1.0]]]]), torch.ones(1, 1, 1, 2)]
    photos = [x.clone() for x in l1s]
    d_diffs = [torch.zeros(1, 1, 1, 2)] * 2
    _, _, public = losses.per_pixel_minimum(l1s, photos, d_diffs, valids, rule="public")
    photo, _, valid_first = losses.per_pixel_minimum(l1s, photos, d_diffs, valids)
    assert public.flatten().tolist() == [0.0, 1.0]  # pixel 0's best (0.1) is invalid: dropped
    assert valid_first.flatten().tolist() == [1.0, 1.0]  # pixel 0 falls back to 0.3
    assert photo.flatten().tolist() == pytest.approx([0.3, 0.2])


def backward_nodes(t):
    """Names of the autograd nodes that t's backward runs."""
    seen, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo += [n for n, _ in node.next_functions]
    return {type(n).__name__ for n in seen}


def test_normal_ranking_gradient_does_not_depend_on_thread_timing():
    """Its pairs gather normals with index_select: the backward of advanced indexing
    (IndexBackward0 -> index_put_ with accumulate) adds with CPU atomics, so repeated backward
    passes of one step differed in the last bits (1e-8 at 4x96x128 on an idle 2-core CPU;
    how often depends on the load, hence the check of the graph too)."""
    g = torch.Generator().manual_seed(0)
    B, H, W = 4, 96, 128
    img = torch.rand(B, 3, H, W, generator=g)  # edges everywhere: > 1e5 pairs, many shared
    smooth = torch.rand(B, 1, H // 16, W // 16, generator=g)  # bends for the normal pairs
    pseudo = 1 + torch.nn.functional.interpolate(smooth, size=(H, W), mode="bicubic")
    K = intrinsics(B, f=100.0, cx=63.5, cy=47.5).float()
    pseudo_normal = EXT.depth_normals(pseudo, K)
    depth = (1 + torch.rand(B, 1, H, W, generator=g)).requires_grad_()

    def loss():
        gen = torch.Generator().manual_seed(1)
        return losses.normal_ranking_loss(
            EXT, img, pseudo, EXT.depth_normals(depth, K), pseudo_normal, gen
        )

    assert "IndexBackward0" not in backward_nodes(loss())
    first = torch.autograd.grad(loss(), depth)[0]
    assert first.abs().sum() > 0
    for _ in range(6):
        assert torch.equal(torch.autograd.grad(loss(), depth)[0], first)
