// CPU kernels of normal_rank_error. The forward packs each pixel's normal, pseudo-normal and
// validity into 8 consecutive values, so that a point costs one cache line instead of seven
// (the points of an anchor are scattered over the image), and runs parallel over anchors; it
// also keeps each pair's slope. The backward multiplies the slopes by the incoming gradient
// and adds the pairs' gradients parallel over images: an image's anchors touch only its own
// pixels, so no two threads write one pixel, and every image is summed in one fixed order
// (map, anchor, pair). The result is deterministic and the same at any thread count.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <atomic>
#include <vector>

#include "common/launch.h"
#include "normals/normal_rank.h"
#include "normals/normal_rank_args.h"

namespace scdepth::normals {
namespace {

constexpr int64_t kGrainAnchors = 4096;  // work per parallel_for chunk
constexpr int64_t kGrainPixels = 16384;
constexpr int kPacked = 8;  // n0 n1 n2 p0 p1 p2 valid, and one pad to 32 bytes in float32

// One image's pixels packed by pack(): the accessor anchor_pairs reads.
template <typename T>
struct PackedNormals {
  const T* px;  // [HW, kPacked]

  bool is_valid(int64_t i) const { return px[i * kPacked + 6] != T(0); }
  template <typename U>
  U n(int64_t i, int k) const { return px[i * kPacked + k]; }
  template <typename U>
  U p(int64_t i, int k) const { return px[i * kPacked + 3 + k]; }
};

// [B * HW, kPacked] in the compute type T. Invalid pixels hold zeros (their values are never
// read, and NaN stays out of the buffer).
template <typename T, typename S>
std::vector<T> pack(const S* normal, const S* pseudo, const bool* valid, int64_t B, int64_t HW) {
  std::vector<T> out(B * HW * kPacked);
  at::parallel_for(0, B * HW, kGrainPixels, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / HW, pix = i % HW;
      T* o = out.data() + i * kPacked;
      const bool ok = valid[i];
      for (int k = 0; k < 3; ++k) {
        o[k] = ok ? static_cast<T>(normal[(b * 3 + k) * HW + pix]) : T(0);
        o[3 + k] = ok ? static_cast<T>(pseudo[(b * 3 + k) * HW + pix]) : T(0);
      }
      o[6] = ok ? T(1) : T(0);
      o[7] = T(0);
    }
  });
  return out;
}

// Anchor a = (s * B + b) * M + m of points [S, 4, B, M], walked in order without a division
// per anchor.
struct AnchorWalk {
  const int64_t* points;
  int64_t B, M, s, b, m;

  AnchorWalk(const int64_t* points_, int64_t B_, int64_t M_, int64_t a)
      : points(points_), B(B_), M(M_), s(a / (B_ * M_)), b((a / M_) % B_), m(a % M_) {}

  int64_t point(int k) const { return points[(s * kPoints + k) * B * M + b * M + m]; }
  void next() {
    if (++m == M) {
      m = 0;
      if (++b == B) b = 0, ++s;
    }
  }
};

// Anchors lie anywhere in the image: without prefetching, a thread has only the few loads of
// the next anchor or two in flight, and waits on each cache miss in turn.
constexpr int64_t kPrefetchAnchors = 16;

// Calls f(a, b, idx) for the anchors a in [begin, end), with their image b and four pixel
// indices, after prefetching line(b, i) for the points kPrefetchAnchors anchors ahead;
// returns false if an index lies outside [0, HW) (that anchor is skipped).
template <typename F, typename L>
bool for_anchors(const int64_t* points, int64_t begin, int64_t end, int64_t B, int64_t M,
                 int64_t HW, const F& f, const L& line) {
  bool ok = true;
  AnchorWalk at(points, B, M, begin), ahead(points, B, M, begin);
  for (int64_t a = begin; a < end && a < begin + kPrefetchAnchors; ++a) ahead.next();
  for (int64_t a = begin; a < end; ++a) {
    if (a + kPrefetchAnchors < end) {
      for (int k = 0; k < kPoints; ++k) {
        const int64_t i = ahead.point(k);
        if (i >= 0 && i < HW) __builtin_prefetch(line(ahead.b, i));
      }
      ahead.next();
    }
    int64_t idx[kPoints];
    bool inside = true;
    for (int k = 0; k < kPoints; ++k) {
      idx[k] = at.point(k);
      inside = inside && idx[k] >= 0 && idx[k] < HW;
    }
    if (inside) f(a, at.b, idx);
    ok = ok && inside;
    at.next();
  }
  return ok;
}

void check_points(bool bad, int64_t HW) {
  TORCH_CHECK_INDEX(!bad, "normal_rank_error: points must be pixel indices in [0, H * W) = [0, ",
                    HW, ")");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cpu(const at::Tensor& normal,
                                                           const at::Tensor& pseudo_normal,
                                                           const at::Tensor& valid,
                                                           const at::Tensor& points,
                                                           const at::Tensor& weight) {
  const Forward f(normal, pseudo_normal, valid, points, weight);
  const int64_t B = f.B, HW = f.HW, M = f.M;
  if (f.anchors == 0) return f.outputs();
  std::atomic<bool> bad{false};
  SCDEPTH_DISPATCH_FLOATING(f.normal.scalar_type(), "normal_rank_error_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const auto px = pack<T>(f.normal.const_data_ptr<scalar_t>(),
                            f.pseudo_normal.const_data_ptr<scalar_t>(),
                            f.valid.const_data_ptr<bool>(), B, HW);
    const int64_t* pts = f.points.const_data_ptr<int64_t>();
    const scalar_t* w = f.weight.const_data_ptr<scalar_t>();
    scalar_t* err = f.error.mutable_data_ptr<scalar_t>();
    scalar_t* pw = f.pair_weight.mutable_data_ptr<scalar_t>();
    T* ps = f.pair_slope.mutable_data_ptr<T>();
    at::parallel_for(0, f.anchors, kGrainAnchors, [&](int64_t begin, int64_t end) {
      const auto pixel = [&](int64_t b, int64_t i) { return px.data() + (b * HW + i) * kPacked; };
      const bool ok = for_anchors(pts, begin, end, B, M, HW, [&](int64_t a, int64_t b,
                                                                 const int64_t* idx) {
        const auto r = anchor_pairs<T>(PackedNormals<T>{px.data() + b * HW * kPacked}, idx);
        T e, count;
        anchor_error(r, static_cast<T>(w[a]), e, count);
        anchor_slopes(r, static_cast<T>(w[a]), ps + a * kPairs);
        err[a] = static_cast<scalar_t>(e);
        pw[a] = static_cast<scalar_t>(count);
      }, pixel);
      if (!ok) bad.store(true, std::memory_order_relaxed);
    });
  });
  check_points(bad.load(), HW);
  return f.outputs();
}

at::Tensor backward_cpu(const at::Tensor& grad_error_, const at::Tensor& normal_,
                        const at::Tensor& points_, const at::Tensor& pair_slope_) {
  check_backward_args(grad_error_, normal_, points_, pair_slope_);
  const auto grad_error = grad_error_.contiguous(), normal = normal_.contiguous();
  const auto points = points_.contiguous(), pair_slope = pair_slope_.contiguous();
  const int64_t B = normal.size(0), HW = normal.size(2) * normal.size(3);
  const int64_t S = points.size(0), M = points.size(3);
  auto grad = at::empty(normal.sizes(), normal.options());
  std::atomic<bool> bad{false};
  SCDEPTH_DISPATCH_FLOATING(normal.scalar_type(), "normal_rank_error_backward_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* nrm = normal.const_data_ptr<scalar_t>();
    const int64_t* pts = points.const_data_ptr<int64_t>();
    const scalar_t* ge = grad_error.const_data_ptr<scalar_t>();
    const T* slope = pair_slope.const_data_ptr<T>();
    scalar_t* out = grad.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      // [HW, 4]: a pixel's normal, and its gradient, in one line each
      std::vector<T> n(HW * 4), acc(HW * 4);
      const auto read = [&](int64_t i, int c) { return n[i * 4 + c]; };
      const auto add = [&](int64_t i, int c, T v) { acc[i * 4 + c] += v; };
      for (int64_t b = begin; b < end; ++b) {
        for (int64_t i = 0; i < HW; ++i) {
          for (int c = 0; c < 3; ++c) n[i * 4 + c] = static_cast<T>(nrm[(b * 3 + c) * HW + i]);
        }
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t s = 0; s < S; ++s) {
          const int64_t* first = pts + s * kPoints * B * M + b * M;
          const int64_t row = (s * B + b) * M;
          for (int64_t m = 0; m < M; ++m) {
            if (m + kPrefetchAnchors < M) {
              for (int k = 0; k < kPoints; ++k) {
                const int64_t i = first[k * B * M + m + kPrefetchAnchors];
                __builtin_prefetch(n.data() + i * 4);
                __builtin_prefetch(acc.data() + i * 4, 1);
              }
            }
            const T g = static_cast<T>(ge[row + m]);
            for (int j = 0; j < kPairs; ++j) {
              const int64_t i = first[j * B * M + m], q = first[(j + 1) * B * M + m];
              if (i < 0 || i >= HW || q < 0 || q >= HW) {
                bad.store(true, std::memory_order_relaxed);
                continue;
              }
              pair_grad(g, slope[(row + m) * kPairs + j], i, q, read, add);
            }
          }
        }
        for (int c = 0; c < 3; ++c) {
          scalar_t* plane = out + (b * 3 + c) * HW;
          for (int64_t i = 0; i < HW; ++i) plane[i] = static_cast<scalar_t>(acc[i * 4 + c]);
        }
      }
    });
  });
  check_points(bad.load(), HW);
  return grad;
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CPU, m) {
  m.impl("normal_rank_error", &forward_cpu);
  m.impl("normal_rank_error_backward", &backward_cpu);
}

}  // namespace scdepth::normals
