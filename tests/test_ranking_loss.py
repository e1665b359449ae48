"""Depth ranking loss and SC-DepthV3 global random pairs."""

import math

import pytest
import torch
from helpers import chi2_sf, python_label

import scdepth.ops as ops
from scdepth.losses import depth_ranking_loss, global_random_pairs


def pairs(a, b, label, B=1):
    t = lambda v, dt: torch.tensor(v, dtype=dt).view(B, -1)  # noqa: E731
    return t(a, torch.int64), t(b, torch.int64), t(label, torch.int8)


def softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


# --- depth_ranking_loss


def test_ranking_loss_by_hand():
    depth = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).view(1, 1, 2, 2)
    # (0, 1) labelled -1 (a nearer): z_a - z_b = -1, term softplus(-1); (3, 0) labelled +1:
    # z_a - z_b = 3, term softplus(-3); (1, 2) unlabelled: no term.
    loss = depth_ranking_loss(depth, *pairs([0, 3, 1], [1, 0, 2], [-1, 1, 0]))
    expected = (softplus(-1.0) + softplus(-3.0)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-15)
    # A wrongly ordered pair costs more than a rightly ordered one.
    wrong = depth_ranking_loss(depth, *pairs([0], [1], [1]))
    assert wrong.item() == pytest.approx(softplus(1.0), rel=1e-15)


def test_ranking_loss_over_a_batch_averages_all_labelled_pairs():
    depth = torch.arange(8, dtype=torch.float64).view(2, 1, 2, 2)
    idx_a, idx_b, label = pairs([0, 1, 2, 3], [3, 2, 1, 0], [1, 0, -1, 0], B=2)
    loss = depth_ranking_loss(depth, idx_a, idx_b, label)
    # image 0: (0, 3) +1: z_a - z_b = -3, softplus(3); image 1: (2, 1) -1: z_a - z_b = 1,
    # softplus(1). Both wrongly ordered.
    assert loss.item() == pytest.approx((softplus(3.0) + softplus(1.0)) / 2, rel=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ranking_loss_is_stable_for_huge_differences(dtype):
    big = 1e30 if dtype == torch.float32 else 1e300
    depth = torch.tensor([big, -big, 1e4, 0.0], dtype=dtype).view(1, 1, 1, 4).requires_grad_()
    # (1, 0) labelled +1: softplus(-(z1 - z0)) = softplus(2 big): log(1 + exp(.)) would be inf.
    loss = depth_ranking_loss(depth, *pairs([1], [0], [1]))
    naive = torch.log(1 + torch.exp(2 * torch.tensor(big, dtype=dtype)))
    assert not torch.isfinite(naive)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(2 * big, rel=1e-6)
    (g,) = torch.autograd.grad(loss, depth)
    assert torch.isfinite(g).all()
    assert g.view(-1)[:2].tolist() == [1.0, -1.0]  # d softplus(z0 - z1)
    # (2, 3) labelled +1 with z_a - z_b = 1e4: loss underflows to 0, gradient to 0.
    loss = depth_ranking_loss(depth, *pairs([2], [3], [1]))
    assert loss.item() == 0.0
    (g,) = torch.autograd.grad(loss, depth)
    assert (g == 0).all()


def test_ranking_loss_without_labelled_pairs_is_a_connected_zero():
    depth = torch.rand(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    for idx_a, idx_b, label in (
        pairs([0, 1], [2, 3], [0, 0], B=2),
        (torch.zeros(2, 0, dtype=torch.int64),) * 2 + (torch.zeros(2, 0, dtype=torch.int8),),
    ):
        loss = depth_ranking_loss(depth, idx_a, idx_b, label)
        assert loss.item() == 0.0 and loss.requires_grad
        (g,) = torch.autograd.grad(loss, depth)
        assert (g == 0).all()


def test_ranking_loss_ignores_non_finite_depths_of_unlabelled_pairs():
    depth = torch.tensor([1.0, math.nan, math.inf, 2.0], dtype=torch.float64)
    depth = depth.view(1, 1, 2, 2).requires_grad_()
    loss = depth_ranking_loss(depth, *pairs([0, 1, 2], [3, 0, 3], [-1, 0, 0]))
    assert loss.item() == pytest.approx(softplus(-1.0), rel=1e-15)
    (g,) = torch.autograd.grad(loss, depth)
    assert torch.isfinite(g).all() and g.view(-1)[1:3].tolist() == [0.0, 0.0]


def test_ranking_loss_gradcheck():
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 1, 4, 5, generator=g, dtype=torch.float64).requires_grad_()
    idx_a = torch.randint(20, (2, 15), generator=g)
    idx_b = torch.randint(20, (2, 15), generator=g)
    label = torch.randint(-1, 2, (2, 15), generator=g).to(torch.int8)
    assert torch.autograd.gradcheck(lambda d: depth_ranking_loss(d, idx_a, idx_b, label), depth)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ranking_loss_16_bit_depth_computes_in_float32(dtype):
    depth = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    args = pairs([0, 3], [1, 0], [-1, 1])
    loss = depth_ranking_loss(depth.to(dtype), *args)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, depth_ranking_loss(depth, *args))


@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda d, a, b, l: (d[0], a, b, l), ValueError, ["depth", "[B, 1, H, W]"]),
        (lambda d, a, b, l: (d, a[:, :1], b, l), ValueError, ["idx_b", "[B, n]"]),
        (lambda d, a, b, l: (d, a, b, l[:1]), ValueError, ["label", "[B, n]"]),
        (lambda d, a, b, l: (d, a.int(), b, l), TypeError, ["idx_a", "int64"]),
        (lambda d, a, b, l: (d, a, b, l.float()), TypeError, ["label", "integer"]),
        (lambda d, a, b, l: (d, a, b.to("meta"), l), ValueError, ["idx_b", "device"]),
    ],
)
def test_ranking_loss_bad_arguments(change, error, words):
    depth = torch.rand(2, 1, 3, 3)
    idx_a, idx_b, label = pairs([0, 1, 2, 3], [4, 5, 6, 7], [1, -1, 0, 1], B=2)
    with pytest.raises(error) as info:
        depth_ranking_loss(*change(depth, idx_a, idx_b, label))
    for w in words:
        assert w in str(info.value)


# --- global random pairs


def test_global_random_pairs_shapes_labels_and_distinct_pixels():
    g = torch.Generator().manual_seed(1)
    pd = torch.rand(3, 1, 20, 30, generator=g, dtype=torch.float64) + 0.5
    pd.view(-1)[::13] = 0.0
    pd.view(-1)[::17] = math.nan
    idx_a, idx_b, label = global_random_pairs(pd, generator=torch.Generator().manual_seed(2))
    assert idx_a.shape == idx_b.shape == label.shape == (3, 60)  # round(0.1 * 600)
    assert idx_a.dtype == idx_b.dtype == torch.int64 and label.dtype == torch.int8
    assert ((idx_a >= 0) & (idx_a < 600) & (idx_b >= 0) & (idx_b < 600)).all()
    assert (idx_a != idx_b).all()
    flat = pd.view(3, -1)
    expected = [
        [
            python_label(flat[b, i].item(), flat[b, j].item(), 0.15)
            for i, j in zip(ra, rb, strict=True)
        ]
        for b, (ra, rb) in enumerate(zip(idx_a.tolist(), idx_b.tolist(), strict=True))
    ]
    assert label.tolist() == expected


def test_global_random_pairs_are_seeded():
    pd = torch.rand(2, 1, 10, 10) + 0.5
    a = global_random_pairs(pd, generator=torch.Generator().manual_seed(3))
    b = global_random_pairs(pd, generator=torch.Generator().manual_seed(3))
    c = global_random_pairs(pd, generator=torch.Generator().manual_seed(4))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])
    assert global_random_pairs(pd, ratio=0.25)[0].shape == (2, 25)


def test_global_random_pairs_are_uniform_over_ordered_pairs_of_distinct_pixels():
    # 4 pixels: 12 ordered pairs (a, b), a != b, each expected 1/12 of 24000 draws; Pearson's
    # statistic is chi-square with 11 degrees of freedom; fixed seed, fails below p = 1e-3.
    pd = torch.ones(1, 1, 2, 2)
    idx_a, idx_b, _ = global_random_pairs(
        pd.expand(6000, 1, 2, 2), ratio=1.0, generator=torch.Generator().manual_seed(5)
    )
    assert (idx_a != idx_b).all()
    counts = torch.bincount((idx_a * 4 + idx_b).flatten(), minlength=16).double()
    cells = counts[torch.tensor([a * 4 + b for a in range(4) for b in range(4) if a != b])]
    assert cells.sum() == 24000
    stat = float(((cells - 2000) ** 2 / 2000).sum())
    assert chi2_sf(stat, 11) > 1e-3, stat


def test_global_random_pairs_small_images_and_errors():
    for shape in ((2, 1, 1, 1), (2, 1, 0, 4), (0, 1, 4, 4)):
        idx_a, idx_b, label = global_random_pairs(torch.ones(shape))
        assert idx_a.shape[1] == 0 or shape[0] == 0
    with pytest.raises(ValueError, match="pseudo_depth must be"):
        global_random_pairs(torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="ratio"):
        global_random_pairs(torch.ones(1, 1, 4, 4), ratio=0.0)
    with pytest.raises(ValueError, match="tau"):
        global_random_pairs(torch.ones(1, 1, 4, 4), tau=-1.0)


def test_dynamic_and_global_pairs_feed_one_ranking_loss():
    g = torch.Generator().manual_seed(6)
    score = torch.rand(2, 1, 16, 20, generator=g)
    pd = torch.rand(2, 1, 16, 20, generator=g) + 0.5
    depth = (1.0 / pd).requires_grad_()  # inverse order: every labelled pair is wrong
    dyn = ops.sample_dynamic_pairs(score, pd, seed=7)
    glob = global_random_pairs(pd, generator=torch.Generator().manual_seed(8))
    both = [torch.cat([x, y], 1) for x, y in zip(dyn, glob, strict=True)]
    loss = depth_ranking_loss(depth, *both)
    labelled = (both[2] != 0).sum()
    parts = [depth_ranking_loss(depth, *p) * (p[2] != 0).sum() for p in (dyn, glob)]
    torch.testing.assert_close(loss, sum(parts) / labelled)
    assert loss.item() > math.log(2)  # wrong orders cost more than softplus(0)
    loss.backward()
    assert torch.isfinite(depth.grad).all() and depth.grad.abs().sum() > 0


def test_mean_scaled_ranking_ignores_each_images_scale():
    g = torch.Generator().manual_seed(0)
    depth = torch.rand(2, 1, 5, 6, generator=g) + 0.5
    idx_a, idx_b = (torch.randint(0, 30, (2, 8), generator=g) for _ in range(2))
    label = torch.randint(-1, 2, (2, 8), generator=g)
    scaled = depth * torch.tensor([3.0, 0.2]).view(2, 1, 1, 1)
    mean = [depth_ranking_loss(d, idx_a, idx_b, label, scale="mean") for d in (depth, scaled)]
    raw = [depth_ranking_loss(d, idx_a, idx_b, label) for d in (depth, scaled)]
    torch.testing.assert_close(mean[0], mean[1])
    assert not torch.isclose(raw[0], raw[1])
    z = depth.flatten(1) / depth.flatten(1).mean(1, keepdim=True)  # by hand
    diff = z.gather(1, idx_a) - z.gather(1, idx_b)
    want = torch.nn.functional.softplus(-label * diff)[label != 0].mean()
    torch.testing.assert_close(mean[0], want)
