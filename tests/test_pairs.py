import math

import numpy as np
import pytest
import torch
from conftest import devices
from helpers import chi2_sf, python_label
from hypothesis import given, settings
from hypothesis import strategies as st

import scdepth.ops as ops
from scdepth.ops import reference

FLOAT_TYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
SPECIAL = [math.nan, -math.inf, -1.0, -0.0, 0.0, 0.5, 1.0, math.inf]


def random_inputs(B, H, W, *, seed=0, dtype=torch.float32, pd_dtype=None, ties=False):
    """score, pseudo_depth. With `ties`, scores take few distinct values (NaN, ±inf, ±0
    included), so that the threshold is tied."""
    g = torch.Generator().manual_seed(seed)
    if ties:
        pick = torch.randint(len(SPECIAL), (B, 1, H, W), generator=g)
        score = torch.tensor(SPECIAL, dtype=torch.float64)[pick]
    else:
        score = torch.randn(B, 1, H, W, generator=g, dtype=torch.float64)
    pd = 0.5 + 4 * torch.rand(B, 1, H, W, generator=g, dtype=torch.float64)
    return score.to(dtype), pd.to(pd_dtype or dtype)


def k_of(N, ratio):
    return min(math.floor(ratio * N), N - 1) if N else 0


def stable_sort_oracle(score, k):
    """First k of a stable descending sort, NaN lowest, -0 == +0: plain Python, per image."""
    out = []
    for row in score.reshape(score.shape[0], -1).double().tolist():

        def key(i, row=row):
            v = row[i]
            return (0, 0.0, i) if math.isnan(v) else (1, -v, i)

        order = sorted(range(len(row)), key=lambda i: (-key(i)[0], key(i)[1], i))
        out.append(sorted(order[:k]))
    return torch.tensor(out, dtype=torch.int64).reshape(len(out), k)


def selected_mask(idx_a, N):
    mask = torch.zeros(idx_a.shape[0], N, dtype=torch.bool, device=idx_a.device)
    return mask.scatter_(1, idx_a, True)


def check_labels(pd, idx_a, idx_b, label, tau):
    B = pd.shape[0]
    flat = pd.reshape(B, -1).double().cpu()
    expected = [
        [
            python_label(flat[b, a].item(), flat[b, p].item(), tau)
            for a, p in zip(ra, rp, strict=True)
        ]
        for b, (ra, rp) in enumerate(zip(idx_a.tolist(), idx_b.tolist(), strict=True))
    ]
    assert label.cpu().tolist() == expected


# --- Philox4x32-10 in numpy (uint64 holds every 32x32-bit product exactly): an independent
# model of the op's documented random stream.
MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter, key):
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) for c in counter)
    k0, k1 = (np.asarray(k, dtype=np.uint64) for k in key)
    for r in range(10):
        if r:
            k0 = (k0 + np.uint64(0x9E3779B9)) & MASK32
            k1 = (k1 + np.uint64(0xBB67AE85)) & MASK32
        p0, p1 = np.uint64(0xD2511F53) * c0, np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ k0,
            p1 & MASK32,
            (p0 >> np.uint64(32)) ^ c3 ^ k1,
            p0 & MASK32,
        )
    return [c0, c1, c2, c3]


def test_philox_model_known_answers():
    # Random123's known-answer vectors for philox4x32-10.
    out = philox4x32_10([0, 0, 0, 0], [0, 0])
    assert [int(x) for x in out] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    out = philox4x32_10([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2)
    assert [int(x) for x in out] == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]


def expected_partners(idx_a, N, seed):
    """Partners by the contract: S_b in index order, j from the 32-bit words of
    Philox(seed, subsequence b * k + i) with rejection of w >= 2^32 - 2^32 mod (N - k).
    Returns the partners and how many words were rejected."""
    B, k = idx_a.shape
    M = N - k
    limit = 2**32 - 2**32 % M
    seed %= 2**64
    key = [np.uint64(seed & 0xFFFFFFFF), np.uint64(seed >> 32)]
    e = np.arange(B * k, dtype=np.uint64)
    sub = [e & MASK32, e >> np.uint64(32)]
    zero = np.zeros(B * k, dtype=np.uint64)
    words = np.stack(philox4x32_10([zero, zero, sub[0], sub[1]], key), 1)  # [B*k, 4]
    j = (words[:, 0] % np.uint64(M)).astype(np.int64)
    rejected = 0
    for n in np.nonzero(words[:, 0] >= np.uint64(limit))[0].tolist():
        block, w = 0, words[n]
        pos = 0
        while int(w[pos]) >= limit:
            rejected += 1
            pos += 1
            if pos == 4:
                block += 1
                w = [int(x) for x in philox4x32_10([block, 0, n & 0xFFFFFFFF, n >> 32], key)]
                pos = 0
        j[n] = int(w[pos]) % M
    static = ~selected_mask(idx_a.cpu(), N)
    S = torch.nonzero(static)[:, 1].reshape(B, M)
    return S.gather(1, torch.from_numpy(j).reshape(B, k)), rejected


# --- selection


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 17, 23), (2, 64, 80), (1, 3, 3)])
def test_selected_set_is_topk_on_random_scores(dtype, shape):
    B, H, W = shape
    score, pd = random_inputs(B, H, W, seed=1, dtype=dtype)
    assert all(r.unique().numel() == H * W for r in score.reshape(B, -1))  # topk's set is unique
    for ratio in (0.2, 0.05, 0.5, 0.9):
        k = k_of(H * W, ratio)
        idx_a, idx_b, label = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=3)
        top = torch.topk(score.reshape(B, -1), k, dim=1).indices.sort(1).values
        assert idx_a.shape == idx_b.shape == label.shape == (B, k)
        assert idx_a.dtype == idx_b.dtype == torch.int64 and label.dtype == torch.int8
        assert torch.equal(idx_a, top)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_selected_set_is_stable_sort_set_on_random_16_bit_scores(dtype):
    score, pd = random_inputs(2, 64, 80, seed=1, dtype=dtype)  # 16-bit values repeat
    for ratio in (0.2, 0.05, 0.5, 0.9):
        idx_a, _, _ = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=3)
        assert torch.equal(idx_a, stable_sort_oracle(score, k_of(64 * 80, ratio)))


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_selected_set_is_stable_sort_set_with_ties_nan_inf_and_signed_zeros(dtype):
    score, pd = random_inputs(3, 13, 29, seed=4, dtype=dtype, ties=True)
    for ratio in (0.2, 0.37, 0.6, 0.95):
        k = k_of(13 * 29, ratio)
        idx_a, _, _ = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=0)
        assert torch.equal(idx_a, stable_sort_oracle(score, k))
        assert torch.equal(idx_a, reference.sample_dynamic_pairs(score, pd, ratio=ratio, seed=0)[0])


def test_nan_is_lowest_and_ties_go_to_lower_indices():
    score = torch.tensor([math.nan, -math.inf, 2.0, -0.0, 2.0, 0.0, math.nan, 2.0]).view(1, 1, 2, 4)
    pd = torch.ones_like(score)
    assert ops.sample_dynamic_pairs(score, pd, ratio=0.25, seed=0)[0].tolist() == [[2, 4]]
    # k = 5: the three 2.0, then the zeros -0.0 (index 3) and 0.0 (index 5), which tie.
    assert ops.sample_dynamic_pairs(score, pd, ratio=0.65, seed=0)[0].tolist() == [[2, 3, 4, 5, 7]]
    # k = 7: everything but one NaN, the one with the higher index.
    idx = ops.sample_dynamic_pairs(score, pd, ratio=0.99, seed=0)[0]
    assert idx.tolist() == [[0, 1, 2, 3, 4, 5, 7]]
    _, idx_b, _ = ops.sample_dynamic_pairs(score, pd, ratio=0.99, seed=0)
    assert (idx_b == 6).all()  # S_b = {6}


def test_all_equal_scores_select_the_first_k():
    score = torch.full((2, 1, 10, 10), 0.25)
    idx_a, idx_b, _ = ops.sample_dynamic_pairs(score, torch.ones_like(score), seed=0)
    assert torch.equal(idx_a, torch.arange(20).expand(2, 20))
    assert (idx_b >= 20).all()


def test_keys_with_every_byte_tied_but_the_last():
    # Scores whose float32 bits differ only in the lowest byte: every pass but the last one
    # keeps all candidates, the last splits them.
    bits = torch.tensor(0x3F800000, dtype=torch.int32) + torch.randperm(
        256, generator=torch.Generator().manual_seed(5)
    ).to(torch.int32)
    score = bits.view(torch.float32).view(1, 1, 16, 16)
    idx_a, _, _ = ops.sample_dynamic_pairs(score, torch.ones_like(score), ratio=0.3, seed=0)
    top = torch.topk(score.view(1, -1), k_of(256, 0.3), dim=1).indices.sort(1).values
    assert torch.equal(idx_a, top)


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 3),
    H=st.integers(1, 24),
    W=st.integers(1, 24),
    ratio=st.floats(0.001, 0.999),
    dtype=st.sampled_from(FLOAT_TYPES),
    ties=st.booleans(),
    seed=st.integers(-(2**63), 2**64 - 1),
)
def test_property_selection_partners_and_labels(B, H, W, ratio, dtype, ties, seed):
    score, pd = random_inputs(B, H, W, seed=H * 31 + W, dtype=dtype, ties=ties)
    N, k = H * W, k_of(H * W, ratio)
    idx_a, idx_b, label = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=seed)
    assert idx_a.shape == (B, k)
    assert torch.equal(idx_a, stable_sort_oracle(score, k))
    if k:
        assert torch.equal(idx_b, expected_partners(idx_a, N, seed)[0])
        check_labels(pd, idx_a, idx_b, label, 0.15)


# --- partners


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
def test_partners_follow_the_documented_philox_stream(dtype):
    score, pd = random_inputs(3, 19, 31, seed=6, dtype=dtype, ties=True)
    for seed in (0, 1, 2**40 + 7, -5, 2**64 - 1):
        idx_a, idx_b, _ = ops.sample_dynamic_pairs(score, pd, seed=seed)
        expected, _ = expected_partners(idx_a, 19 * 31, seed)
        assert torch.equal(idx_b, expected)


def test_partners_follow_the_stream_through_rejected_words():
    # N - k = 800000: a word is rejected with probability (2^32 mod 800000) / 2^32 = 1.3e-4,
    # so the 400 000 draws reject about 50: the rejection path is exercised.
    score, pd = random_inputs(2, 1000, 1000, seed=7)
    idx_a, idx_b, _ = ops.sample_dynamic_pairs(score, pd, seed=11)
    expected, rejected = expected_partners(idx_a, 1000 * 1000, 11)
    assert rejected > 0
    assert torch.equal(idx_b, expected)


def test_seed_64_bit_aliases():
    score, pd = random_inputs(2, 9, 11, seed=8)
    a = ops.sample_dynamic_pairs(score, pd, seed=-1)
    b = ops.sample_dynamic_pairs(score, pd, seed=2**64 - 1)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize("ties", [False, True])
def test_partners_are_never_selected_and_in_range(ties):
    score, pd = random_inputs(4, 21, 17, seed=9, ties=ties)
    for ratio in (0.05, 0.2, 0.5, 0.99):
        idx_a, idx_b, _ = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=1)
        assert ((idx_b >= 0) & (idx_b < 21 * 17)).all()
        assert not selected_mask(idx_a, 21 * 17).gather(1, idx_b).any()


def test_chi2_sf_against_tabulated_quantiles():
    assert chi2_sf(3.841459, 1) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf(18.307038, 10) == pytest.approx(0.05, abs=1e-6)
    assert chi2_sf(66.618683, 35) == pytest.approx(0.001, rel=1e-4)
    assert chi2_sf(49.801850, 35) == pytest.approx(0.05, abs=1e-6)
    for x in (0.5, 3.0, 10.0):  # df = 2: exp(-x / 2), by the series and the continued fraction
        assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)


def test_partners_are_uniform_over_the_static_set():
    # 5 x 9 images, k = 9, so S_b has 36 pixels, scattered between the selected ones. Over
    # 80 seeds x 50 images x 9 pairs = 36000 draws each static pixel is expected 1000 times.
    # Pearson's statistic over the 36 cells is chi-square with 35 degrees of freedom when the
    # draws are uniform and independent; the test fails when its p-value is below 1e-3 (the
    # 0.999 quantile, 66.6). The seeds are fixed, so the outcome is too: the threshold makes
    # it meaningful, a uniform generator passes such a test 999 times in 1000, while an
    # off-by-one (a pixel never drawn) or a bias of a few % per cell fails it.
    H, W, B = 5, 9, 50
    g = torch.Generator().manual_seed(12)
    score = torch.rand(1, 1, H, W, generator=g).expand(B, 1, H, W)
    pd = torch.ones(B, 1, H, W)
    counts = torch.zeros(H * W, dtype=torch.int64)
    for seed in range(80):
        idx_a, idx_b, _ = ops.sample_dynamic_pairs(score, pd, seed=seed)
        counts += torch.bincount(idx_b.flatten(), minlength=H * W)
    static = ~selected_mask(idx_a[:1], H * W)[0]
    assert (counts[~static] == 0).all()
    observed = counts[static].double()
    assert observed.numel() == 36 and observed.sum() == 36000
    expected = observed.sum() / observed.numel()
    stat = float(((observed - expected) ** 2 / expected).sum())
    assert chi2_sf(stat, observed.numel() - 1) > 1e-3, stat


def test_same_seed_same_output_other_seed_other_partners():
    score, pd = random_inputs(2, 30, 40, seed=13)
    a = ops.sample_dynamic_pairs(score, pd, seed=21)
    b = ops.sample_dynamic_pairs(score, pd, seed=21)
    c = ops.sample_dynamic_pairs(score, pd, seed=22)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert torch.equal(a[0], c[0])
    assert (a[1] != c[1]).float().mean() > 0.9


# --- labels


def test_labels_match_the_formula_on_random_pairs():
    score, pd = random_inputs(3, 20, 30, seed=14, ties=True)
    flat = pd.view(-1)
    for step, value in ((11, math.nan), (13, 0.0), (17, -1.0), (19, math.inf), (23, 2.0)):
        flat[::step] = value  # 2.0: equal depths
    for tau in (0.15, 0.0, 2.0):
        idx_a, idx_b, label = ops.sample_dynamic_pairs(score, pd, tau=tau, seed=4)
        check_labels(pd, idx_a, idx_b, label, tau)
        assert (label == 1).any() and (label == -1).any() and (label == 0).any()


@pytest.mark.parametrize("pd_dtype", FLOAT_TYPES)
def test_labels_with_equal_zero_negative_and_non_finite_depths(pd_dtype):
    # A_b = pixels 0..9 (highest scores); every static pixel has pseudo depth 1, so each
    # label is known whatever the partner.
    N = 50
    score = -torch.arange(N, dtype=torch.float32).view(1, 1, 5, 10)
    special = [1.0, 1.15, 1.3, 1 / 1.15, 0.8, 0.0, -2.0, math.nan, math.inf, -math.inf]
    pd = torch.ones(1, 1, 5, 10, dtype=torch.float64)
    pd.view(-1)[:10] = torch.tensor(special, dtype=torch.float64)
    pd = pd.to(pd_dtype)
    idx_a, idx_b, label = ops.sample_dynamic_pairs(score, pd, ratio=0.2, tau=0.15, seed=0)
    assert idx_a.tolist() == [list(range(10))]
    a = pd.view(-1)[:10].double().tolist()
    expected = [python_label(v, 1.0, 0.15) for v in a]
    assert label.tolist() == [expected]
    if pd_dtype == torch.float64:  # boundaries hit exactly: 1.15 >= 1.15 * 1 and 1 >= 1.15 / 1.15
        assert expected == [0, 1, 1, -1, -1, 0, 0, 0, 0, 0]
    check_labels(pd, idx_a, idx_b, label, 0.15)


def test_reference_labels_table():
    f64 = torch.float64
    a = torch.tensor([2.0, 1.0, 1.0, 1.15, 0.0, -1.0, math.nan, math.inf, 1.0, 1.0], dtype=f64)
    b = torch.tensor([1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, math.inf], dtype=f64)
    assert reference.ordinal_labels(a, b, 0.15).tolist() == [
        1,
        -1,
        0,
        1,
        0,
        0,
        0,
        0,
        0,
        0,
    ]
    # tau = 0: equal depths satisfy the first rule.
    assert reference.ordinal_labels(a[2:3], b[2:3], 0.0).tolist() == [1]


# --- reference, dtypes, layouts


@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize("pd_dtype", [torch.float32, torch.float16])
def test_matches_reference_exactly(dtype, pd_dtype):
    score, pd = random_inputs(3, 24, 36, seed=15, dtype=dtype, pd_dtype=pd_dtype, ties=True)
    for seed in (9, 2**64 - 1, -5):
        out = ops.sample_dynamic_pairs(score, pd, ratio=0.3, tau=0.1, seed=seed)
        ref = reference.sample_dynamic_pairs(score, pd, ratio=0.3, tau=0.1, seed=seed)
        for o, r in zip(out, ref, strict=True):
            assert torch.equal(o, r)
        idx_a, idx_b, label = out
        assert not selected_mask(idx_a, 24 * 36).gather(1, idx_b).any()
        check_labels(pd, idx_a, idx_b, label, 0.1)


def test_reference_philox_known_answers_and_rejection_path():
    # Random123's known-answer vectors, through the reference's int64 Philox
    zero, ones = torch.tensor(0), torch.tensor(0xFFFFFFFF)
    out = reference.philox4x32_10((zero,) * 4, (0, 0))
    assert [int(x) for x in out] == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    out = reference.philox4x32_10((ones,) * 4, (0xFFFFFFFF, 0xFFFFFFFF))
    assert [int(x) for x in out] == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    # n just above 2^31 rejects almost half of the words: later words and blocks are used;
    # checked word by word against the numpy model
    n, seed = 2**31 + 1, 3
    sub = torch.arange(300)
    j = reference.philox_uniform_index(seed, sub, n)
    limit = 2**32 - 2**32 % n
    for e in range(300):
        block, words = 0, []
        while not any(w < limit for w in words):
            words += [int(x) for x in philox4x32_10([block, 0, e, 0], [seed, 0])]
            block += 1
        assert int(j[e]) == next(w for w in words if w < limit) % n


def test_non_contiguous_inputs_give_the_same_result():
    score, pd = random_inputs(3, 16, 24, seed=16, ties=True)
    score_nc = torch.cat([score, score], 3)[..., ::2]
    score_nc[...] = score
    pd_nc = pd.transpose(2, 3).contiguous().transpose(2, 3)
    assert not (score_nc.is_contiguous() or pd_nc.is_contiguous())
    for x, y in zip(
        ops.sample_dynamic_pairs(score_nc, pd_nc, seed=3),
        ops.sample_dynamic_pairs(score, pd, seed=3),
        strict=True,
    ):
        assert torch.equal(x, y)


def test_inputs_requiring_grad_are_fine():
    score, pd = random_inputs(2, 8, 8, seed=17)
    score.requires_grad_()
    idx_a, idx_b, label = ops.sample_dynamic_pairs(score, pd, seed=0)
    assert not (idx_a.requires_grad or idx_b.requires_grad or label.requires_grad)


# --- sizes


@pytest.mark.parametrize("op", [ops.sample_dynamic_pairs, reference.sample_dynamic_pairs])
@pytest.mark.parametrize(
    "shape, ratio, k",
    [
        ((2, 1, 1, 1), 0.5, 0),  # N = 1
        ((2, 1, 5, 5), 0.01, 0),  # floor(0.25) = 0
        ((0, 1, 5, 5), 0.2, 5),  # B = 0
        ((2, 1, 0, 5), 0.2, 0),  # N = 0
        ((2, 1, 1, 2), 0.5, 1),  # N = 2
        ((1, 1, 3, 1), 1 - 2**-53, 2),  # the largest ratio: k = N - 1
    ],
)
def test_small_and_empty_sizes(op, shape, ratio, k):
    score = torch.rand(shape)
    idx_a, idx_b, label = op(score, torch.ones(shape), ratio=ratio, seed=0)
    assert idx_a.shape == idx_b.shape == label.shape == (shape[0], k)
    if k:
        assert not selected_mask(idx_a, shape[2] * shape[3]).gather(1, idx_b).any()


def test_ratio_just_below_one_keeps_one_static_pixel():
    N = 2**20 + 1
    ratio = 1 - 2**-53  # ratio * N stays more than half an ulp below N: k = N - 1
    score = torch.randperm(N, generator=torch.Generator().manual_seed(17)).float().view(1, 1, 1, N)
    idx_a, idx_b, _ = ops.sample_dynamic_pairs(score, torch.ones_like(score), ratio=ratio, seed=0)
    assert idx_a.shape == (1, N - 1)
    assert (idx_b == int(score.view(-1).argmin())).all()


def test_large_4k_frame():
    g = torch.Generator().manual_seed(18)
    score = torch.randn(1, 1, 2160, 3840, generator=g, dtype=torch.float64)
    pd = torch.rand(1, 1, 2160, 3840, generator=g) + 0.5
    idx_a, idx_b, label = ops.sample_dynamic_pairs(score, pd, seed=1)
    N = 2160 * 3840
    k = k_of(N, 0.2)
    assert idx_a.shape == (1, k)
    top = torch.topk(score.view(1, -1), k, dim=1, sorted=False).indices.sort(1).values
    assert torch.equal(idx_a, top)
    assert not selected_mask(idx_a, N).gather(1, idx_b).any()
    sample = torch.arange(0, k, 997)
    check_labels(pd, idx_a[:, sample], idx_b[:, sample], label[:, sample], 0.15)


# --- errors, registration


@pytest.mark.parametrize("op", [ops.sample_dynamic_pairs, reference.sample_dynamic_pairs])
@pytest.mark.parametrize(
    "change, error, words",
    [
        (lambda s, p, kw: (s[0], p, kw), ValueError, ["score", "[B, 1, H, W]"]),
        (lambda s, p, kw: (s.expand(-1, 2, -1, -1), p, kw), ValueError, ["score", "[B, 1, H, W]"]),
        (lambda s, p, kw: (s.int(), p, kw), TypeError, ["score", "float"]),
        (lambda s, p, kw: (s, p.long(), kw), TypeError, ["pseudo_depth", "float"]),
        (lambda s, p, kw: (s, p[:, :, :-1], kw), ValueError, ["pseudo_depth", "like score"]),
        (lambda s, p, kw: (s, p[:1], kw), ValueError, ["pseudo_depth", "like score"]),
        (lambda s, p, kw: (s, p.to("meta"), kw), ValueError, ["pseudo_depth", "device"]),
        (lambda s, p, kw: (s, p, {**kw, "ratio": 0.0}), ValueError, ["ratio", "(0, 1)"]),
        (lambda s, p, kw: (s, p, {**kw, "ratio": 1.0}), ValueError, ["ratio", "(0, 1)"]),
        (lambda s, p, kw: (s, p, {**kw, "ratio": math.nan}), ValueError, ["ratio"]),
        (lambda s, p, kw: (s, p, {**kw, "tau": -0.1}), ValueError, ["tau", ">= 0"]),
        (lambda s, p, kw: (s, p, {**kw, "tau": math.inf}), ValueError, ["tau", "finite"]),
        (lambda s, p, kw: (s, p, {**kw, "seed": 1.5}), TypeError, ["seed", "int"]),
        (lambda s, p, kw: (s, p, {**kw, "seed": 2**64}), ValueError, ["seed"]),
    ],
)
def test_bad_arguments_raise_clear_errors(op, change, error, words):
    score, pd = random_inputs(2, 4, 5, seed=19)
    s, p, kw = change(score, pd, {"seed": 0})
    with pytest.raises(error) as info:
        op(s, p, **kw)
    for w in words:
        assert w in str(info.value)


def test_seed_is_required():
    score, pd = random_inputs(1, 4, 4)
    with pytest.raises(TypeError, match="seed"):
        ops.sample_dynamic_pairs(score, pd)


def test_raw_op_checks_arguments_too():
    score, pd = random_inputs(2, 4, 5, seed=20)
    with pytest.raises(ValueError, match="ratio must be in"):
        torch.ops.scdepth.sample_dynamic_pairs(score, pd, 1.5, 0.15, 0)
    with pytest.raises(ValueError, match="pseudo_depth must be"):
        torch.ops.scdepth.sample_dynamic_pairs(score, pd[:, :, 1:], 0.2, 0.15, 0)


def test_opcheck():
    for dtype, pd_dtype, ties in [
        (torch.float32, torch.float32, False),
        (torch.float16, torch.float64, True),
    ]:
        score, pd = random_inputs(2, 6, 7, seed=21, dtype=dtype, pd_dtype=pd_dtype, ties=ties)
        torch.library.opcheck(
            torch.ops.scdepth.sample_dynamic_pairs.default, (score, pd, 0.2, 0.15, 5)
        )


def test_torch_compile_fullgraph_matches_eager():
    from scdepth.losses import depth_ranking_loss

    score, pd = random_inputs(2, 12, 16, seed=22)
    depth = torch.rand(2, 1, 12, 16, generator=torch.Generator().manual_seed(23)) + 1

    def f(score, pd, depth):
        idx_a, idx_b, label = ops.sample_dynamic_pairs(score, pd, ratio=0.25, seed=7)
        return depth_ranking_loss(depth, idx_a, idx_b, label), idx_a, idx_b, label

    compiled = torch.compile(f, fullgraph=True)
    for x, y in zip(compiled(score, pd, depth), f(score, pd, depth), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=0)


def test_torch_compile_does_not_recompile_per_seed():
    compiles = []

    def backend(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    @torch.compile(fullgraph=True, backend=backend)
    def f(score, pd, seed):
        return ops.sample_dynamic_pairs(score, pd, seed=seed)

    score, pd = random_inputs(2, 8, 9, seed=27)
    for seed in range(5):
        for x, y in zip(
            f(score, pd, seed), ops.sample_dynamic_pairs(score, pd, seed=seed), strict=True
        ):
            assert torch.equal(x, y)
    assert len(compiles) <= 2  # the first seed, then one graph with a symbolic seed


def test_get_backend_has_the_op():
    assert ops.get_backend("ext").sample_dynamic_pairs is ops.sample_dynamic_pairs
    assert ops.get_backend("reference").sample_dynamic_pairs is reference.sample_dynamic_pairs


# --- CUDA


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", FLOAT_TYPES)
@pytest.mark.parametrize(
    "shape, ties", [((3, 13, 29), True), ((2, 300, 417), False), ((2, 300, 417), True)]
)
def test_device_is_bit_identical_to_cpu(device, dtype, shape, ties):
    B, H, W = shape
    score, pd = random_inputs(B, H, W, seed=24, dtype=dtype, pd_dtype=torch.float32, ties=ties)
    for ratio, seed in ((0.2, 0), (0.6, 2**63 + 3), (0.003, 5)):
        out = ops.sample_dynamic_pairs(score.to(device), pd.to(device), ratio=ratio, seed=seed)
        cpu = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=seed)
        for o, c in zip(out, cpu, strict=True):
            assert o.device.type == device
            assert torch.equal(o.cpu(), c)


@pytest.mark.cuda
def test_cuda_4k_frame_and_many_tiles_bit_identical_to_cpu():
    g = torch.Generator().manual_seed(25)
    score = torch.rand(2, 1, 2160, 3840, generator=g)
    score[:, :, :500] = 0  # out-of-view pixels: a big tie at 0
    pd = torch.rand(2, 1, 2160, 3840, generator=g) + 0.5
    for ratio in (0.2, 0.9):
        out = ops.sample_dynamic_pairs(score.cuda(), pd.cuda(), ratio=ratio, seed=3)
        cpu = ops.sample_dynamic_pairs(score, pd, ratio=ratio, seed=3)
        for o, c in zip(out, cpu, strict=True):
            assert torch.equal(o.cpu(), c)


@pytest.mark.cuda
def test_cuda_reference_runs_on_the_device():
    score, pd = random_inputs(2, 30, 40, seed=26)
    out = ops.sample_dynamic_pairs(score.cuda(), pd.cuda(), seed=1)
    ref = reference.sample_dynamic_pairs(score.cuda(), pd.cuda(), seed=1)
    for o, r in zip(out, ref, strict=True):
        assert torch.equal(o, r)
    assert ref[1].device.type == "cuda"
