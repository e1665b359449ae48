// CPU kernels of normal_rank_error. The forward runs parallel over anchors. The backward
// first computes each pair's coefficient (grad * weight * slope) parallel over anchors, then
// scatters n_j's gradient parallel over (image, component) planes: an image's anchors touch
// only its own pixels, so no two threads write one plane, and every plane is summed in one
// fixed order (map, anchor, pair). The result is deterministic and the same at any thread
// count.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <atomic>

#include "common/launch.h"
#include "normals/normal_rank.h"
#include "normals/normal_rank_args.h"

namespace scdepth::normals {
namespace {

constexpr int64_t kGrainAnchors = 4096;  // work per parallel_for chunk

// The four pixel indices of anchor a = (s * B + b) * M + m from points [S, 4, B, M]; false
// when one lies outside [0, HW).
inline bool load_points(const int64_t* points, int64_t a, int64_t B, int64_t M, int64_t HW,
                        int64_t idx[kPoints]) {
  const int64_t s = a / (B * M), bm = a % (B * M);
  bool ok = true;
  for (int k = 0; k < kPoints; ++k) {
    idx[k] = points[(s * kPoints + k) * B * M + bm];
    ok = ok && idx[k] >= 0 && idx[k] < HW;
  }
  return ok;
}

void check_points(bool bad, int64_t HW) {
  TORCH_CHECK_INDEX(!bad, "normal_rank_error: points must be pixel indices in [0, H * W) = [0, ",
                    HW, ")");
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& normal_,
                                               const at::Tensor& pseudo_normal_,
                                               const at::Tensor& valid_, const at::Tensor& points_,
                                               const at::Tensor& weight_) {
  check_args(normal_, pseudo_normal_, valid_, points_, weight_);
  const auto normal = normal_.contiguous(), pseudo_normal = pseudo_normal_.contiguous();
  const auto valid = valid_.contiguous(), points = points_.contiguous();
  const auto weight = weight_.contiguous();
  const int64_t B = normal.size(0), HW = normal.size(2) * normal.size(3);
  const int64_t M = points.size(3), anchors = points.size(0) * B * M;
  auto error = at::empty(weight.sizes(), weight.options());
  auto pair_weight = at::empty(weight.sizes(), weight.options());
  std::atomic<bool> bad{false};
  SCDEPTH_DISPATCH_FLOATING(normal.scalar_type(), "normal_rank_error_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* n = normal.const_data_ptr<scalar_t>();
    const scalar_t* p = pseudo_normal.const_data_ptr<scalar_t>();
    const bool* v = valid.const_data_ptr<bool>();
    const int64_t* pts = points.const_data_ptr<int64_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    scalar_t* err = error.mutable_data_ptr<scalar_t>();
    scalar_t* pw = pair_weight.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, anchors, kGrainAnchors, [&](int64_t begin, int64_t end) {
      for (int64_t a = begin; a < end; ++a) {
        int64_t idx[kPoints];
        T e = T(0), count = T(0);
        if (load_points(pts, a, B, M, HW, idx)) {
          const int64_t b = (a / M) % B;
          const auto r = anchor_pairs<T>(n + b * 3 * HW, p + b * 3 * HW, v + b * HW, HW, idx);
          anchor_error(r, static_cast<T>(w[a]), e, count);
        } else {
          bad.store(true, std::memory_order_relaxed);
        }
        err[a] = static_cast<scalar_t>(e);
        pw[a] = static_cast<scalar_t>(count);
      }
    });
  });
  check_points(bad.load(), HW);
  return {error, pair_weight};
}

at::Tensor backward_cpu(const at::Tensor& grad_error_, const at::Tensor& normal_,
                        const at::Tensor& pseudo_normal_, const at::Tensor& valid_,
                        const at::Tensor& points_, const at::Tensor& weight_) {
  check_backward_args(grad_error_, normal_, pseudo_normal_, valid_, points_, weight_);
  const auto grad_error = grad_error_.contiguous(), normal = normal_.contiguous();
  const auto pseudo_normal = pseudo_normal_.contiguous(), valid = valid_.contiguous();
  const auto points = points_.contiguous(), weight = weight_.contiguous();
  const int64_t B = normal.size(0), HW = normal.size(2) * normal.size(3);
  const int64_t S = points.size(0), M = points.size(3), anchors = S * B * M;
  const auto acc = normal.options().dtype(at::toOpMathType(normal.scalar_type()));
  auto grad = at::zeros(normal.sizes(), acc);
  auto coef = at::empty({anchors, kPairs}, acc);
  std::atomic<bool> bad{false};
  SCDEPTH_DISPATCH_FLOATING(normal.scalar_type(), "normal_rank_error_backward_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* n = normal.const_data_ptr<scalar_t>();
    const scalar_t* p = pseudo_normal.const_data_ptr<scalar_t>();
    const bool* v = valid.const_data_ptr<bool>();
    const int64_t* pts = points.const_data_ptr<int64_t>();
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    const scalar_t* ge = grad_error.const_data_ptr<scalar_t>();
    T* c = coef.mutable_data_ptr<T>();
    at::parallel_for(0, anchors, kGrainAnchors, [&](int64_t begin, int64_t end) {
      for (int64_t a = begin; a < end; ++a) {
        int64_t idx[kPoints];
        for (int j = 0; j < kPairs; ++j) c[a * kPairs + j] = T(0);
        if (!load_points(pts, a, B, M, HW, idx)) {
          bad.store(true, std::memory_order_relaxed);
          continue;
        }
        const int64_t b = (a / M) % B;
        const auto r = anchor_pairs<T>(n + b * 3 * HW, p + b * 3 * HW, v + b * HW, HW, idx);
        const T g = static_cast<T>(ge[a]) * static_cast<T>(w[a]);
        for (int j = 0; j < kPairs; ++j) c[a * kPairs + j] = g * r.slope[j];
      }
    });
    check_points(bad.load(), HW);
    T* out = grad.mutable_data_ptr<T>();
    at::parallel_for(0, B * 3, 1, [&](int64_t begin, int64_t end) {
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t b = plane / 3;
        const scalar_t* np = n + plane * HW;
        T* gp = out + plane * HW;
        for (int64_t s = 0; s < S; ++s) {
          for (int64_t m = 0; m < M; ++m) {
            const int64_t a = (s * B + b) * M + m;
            const int64_t* ap = pts + s * kPoints * B * M + b * M + m;
            for (int j = 0; j < kPairs; ++j) {
              const T k = c[a * kPairs + j];
              if (k == T(0)) continue;
              const int64_t i = ap[j * B * M], q = ap[(j + 1) * B * M];
              gp[i] += k * static_cast<T>(np[q]);
              gp[q] += k * static_cast<T>(np[i]);
            }
          }
        }
      }
    });
  });
  return grad.to(normal.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CPU, m) {
  m.impl("normal_rank_error", &forward_cpu);
  m.impl("normal_rank_error_backward", &backward_cpu);
}

}  // namespace scdepth::normals
