// CPU kernels of sample_dynamic_pairs (the plan is in pairs.h). Two phases:
//  1. per image, parallel over the batch: order keys and the first digit histogram, then the
//     remaining passes over a shrinking candidate buffer (each pass compacts the candidates
//     of the previous one, then histograms them), then one sweep that emits A_b and S_b in
//     index order. The sweeps are branch-free: branches on random data would mispredict;
//  2. parallel over all B * k pairs: partner draws, then partners, then labels.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <array>
#include <tuple>
#include <vector>

#include "common/launch.h"
#include "ranking/pairs.h"
#include "ranking/pairs_args.h"

namespace scdepth::pairs {
namespace {

constexpr int64_t kGrainPairs = 4096;  // pairs per parallel_for chunk in phase 2
constexpr int64_t kPrefetch = 24;      // pairs ahead to prefetch random reads in phase 2

// Histogram of the pass-`pass` digits of keys[0, n), in four interleaved sub-histograms so
// that runs of equal keys (e.g. the zeros of out-of-view pixels) do not serialise on one
// counter.
template <typename scalar_t>
void histogram(const key_t<scalar_t>* keys, int64_t n, int pass,
               std::array<int64_t, kBins>& hist) {
  std::array<std::array<int64_t, kBins>, 4> sub{};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int j = 0; j < 4; ++j) ++sub[j][digit_of<scalar_t>(keys[i + j], pass)];
  }
  for (; i < n; ++i) ++sub[0][digit_of<scalar_t>(keys[i], pass)];
  for (int d = 0; d < kBins; ++d) hist[d] = sub[0][d] + sub[1][d] + sub[2][d] + sub[3][d];
}

// Per-thread buffers of select_image, reused across images.
template <typename K>
struct Scratch {
  std::vector<K> keys, cand;
  std::vector<int64_t> a;  // A_b, k + 1 entries (one spare slot for the branch-free sweep)
  std::vector<int32_t> s;  // S_b, N - k + 1 entries
};

// A_b (a, k entries) and S_b (s, N - k entries) of one image, both in index order.
template <typename scalar_t>
void select_image(const scalar_t* score, int64_t N, int64_t k, int64_t* a, int32_t* s,
                  Scratch<key_t<scalar_t>>& w) {
  using K = key_t<scalar_t>;
  constexpr int P = num_passes<scalar_t>();
  w.keys.resize(N);
  w.cand.resize(N);
  for (int64_t i = 0; i < N; ++i) w.keys[i] = order_key(score[i]);
  std::array<int64_t, kBins> hist;
  histogram<scalar_t>(w.keys.data(), N, 0, hist);
  SelectState st = select_digit<scalar_t>(SelectState{0, k}, hist.data(), 0);
  const K* src = w.keys.data();
  int64_t n = N;
  for (int pass = 1; pass < P; ++pass) {
    // Branch-free compaction of the candidates (in place from pass 2 on: the write index
    // never passes the read index).
    K* dst = w.cand.data();
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
      const K key = src[i];
      dst[m] = key;
      m += is_candidate<scalar_t>(key, st.prefix, pass);
    }
    histogram<scalar_t>(dst, m, pass, hist);
    st = select_digit<scalar_t>(st, hist.data(), pass);
    src = dst;
    n = m;
  }
  // One branch-free sweep: every pixel is written to both lists at its would-be position;
  // the wrong one is overwritten by the next pixel of that list (or lands in the spare slot).
  const K threshold = static_cast<K>(st.prefix);
  const int64_t ties = st.need;
  w.a.resize(k + 1);
  w.s.resize(N - k + 1);
  int64_t* ta = w.a.data();
  int32_t* ts = w.s.data();
  int64_t gt = 0, eq = 0;
  for (int64_t i = 0; i < N; ++i) {
    const K key = w.keys[i];
    const int64_t before = selected_before(gt, eq, ties);
    ta[before] = i;
    ts[i - before] = static_cast<int32_t>(i);
    gt += key > threshold;
    eq += key == threshold;
  }
  std::copy(ta, ta + k, a);
  std::copy(ts, ts + (N - k), s);
}

// Pairs e in [begin, end), e = b * k + i (the Philox subsequence): partner draws, then
// partners, then labels. Separate sweeps, and software prefetch kPrefetch pairs ahead, so that
// the random reads of S_b and of the pseudo depths overlap instead of each waiting for the
// last: 3-4x faster at KITTI size.
template <typename scalar_t>
void partners(const scalar_t* __restrict__ d, const int64_t* __restrict__ a,
              const int32_t* __restrict__ s, int64_t* __restrict__ pb, int8_t* __restrict__ lb,
              int64_t begin, int64_t end, int64_t k, int64_t N, uint32_t M, uint64_t seed,
              double one_plus_tau) {
  using T = at::opmath_type<scalar_t>;
  const uint64_t limit = acceptance_limit(M);
  for (int64_t e = begin; e < end; ++e) {
    pb[e] = draw_below(seed, static_cast<uint64_t>(e), M, limit);
  }
  // (b, i) of pair e, stepped along; the prefetch address uses the current b, which may be an
  // image early near an image's end: still inside the buffer, and prefetches never fault.
  for (int64_t e = begin, b = begin / k, i = begin % k; e < end; ++e) {
    if (e + kPrefetch < end) __builtin_prefetch(s + b * M + pb[e + kPrefetch]);
    pb[e] = s[b * M + pb[e]];
    if (++i == k) i = 0, ++b;
  }
  for (int64_t e = begin, b = begin / k, i = begin % k; e < end; ++e) {
    if (e + kPrefetch < end) __builtin_prefetch(d + b * N + pb[e + kPrefetch]);
    const T da = static_cast<T>(d[b * N + a[e]]), db = static_cast<T>(d[b * N + pb[e]]);
    lb[e] = ordinal_label(static_cast<double>(da), static_cast<double>(db), one_plus_tau);
    if (++i == k) i = 0, ++b;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cpu(const at::Tensor& score_,
                                                           const at::Tensor& pseudo_depth_,
                                                           double ratio, double tau,
                                                           int64_t seed) {
  check_args(score_, pseudo_depth_, ratio, tau);
  const auto score = score_.contiguous(), pd = pseudo_depth_.contiguous();
  const Outputs out = make_outputs(score, ratio);
  const int64_t B = out.B, N = out.N, k = out.k, M = out.M;
  const auto opts = score.options();
  if (B * k == 0) return out.tuple();

  auto stat = at::empty({B, M}, opts.dtype(at::kInt));  // S_b of every image, index order
  int64_t* a = out.idx_a.mutable_data_ptr<int64_t>();
  int32_t* s = stat.mutable_data_ptr<int32_t>();
  SCDEPTH_DISPATCH_FLOATING(score.scalar_type(), "sample_dynamic_pairs_select_cpu", [&] {
    const scalar_t* sc = score.const_data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      Scratch<key_t<scalar_t>> scratch;
      for (int64_t b = begin; b < end; ++b) {
        select_image(sc + b * N, N, k, a + b * k, s + b * M, scratch);
      }
    });
  });

  int64_t* pb = out.idx_b.mutable_data_ptr<int64_t>();
  int8_t* lb = out.label.mutable_data_ptr<int8_t>();
  const auto m32 = static_cast<uint32_t>(M);
  SCDEPTH_DISPATCH_FLOATING(pd.scalar_type(), "sample_dynamic_pairs_partners_cpu", [&] {
    const scalar_t* d = pd.const_data_ptr<scalar_t>();
    at::parallel_for(0, B * k, kGrainPairs, [&](int64_t begin, int64_t end) {
      partners(d, a, s, pb, lb, begin, end, k, N, m32, static_cast<uint64_t>(seed), 1.0 + tau);
    });
  });
  return out.tuple();
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CPU, m) {
  m.impl("sample_dynamic_pairs", &forward_cpu);
}

}  // namespace scdepth::pairs
