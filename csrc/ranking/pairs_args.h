// Argument checks and sizes of sample_dynamic_pairs, shared by its CPU and CUDA entry points.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <ATen/ops/empty.h>

#include <tuple>

#include "common/checks.h"

namespace scdepth::pairs {

// Pixels per image must stay below 2^31: partners are drawn from 32-bit words and S_b is
// listed with int32 indices.
constexpr int64_t kMaxPixels = (int64_t(1) << 31) - 1;

// k = floor(ratio * N) in float64, at most N - 1 so that S_b is never empty. (For ratio < 1 the
// clamp never acts: ratio <= 1 - 2^-53 keeps ratio * N over half an ulp below N, so it does
// not round up to N; it is a guard.) Python's _checks.num_selected is the same formula.
inline int64_t num_selected(int64_t N, double ratio) {
  if (N == 0) return 0;
  const auto k = static_cast<int64_t>(std::floor(ratio * static_cast<double>(N)));
  return std::min(k, N - 1);
}

// The sizes and outputs of one call, alike on both devices: k pairs per image, whose partners
// are drawn from the M = N - k pixels of S_b.
struct Outputs {
  int64_t B, N, k, M;
  at::Tensor idx_a, idx_b, label;  // [B, k]: int64, int64, int8

  std::tuple<at::Tensor, at::Tensor, at::Tensor> tuple() const { return {idx_a, idx_b, label}; }
};

inline Outputs make_outputs(const at::Tensor& score, double ratio) {
  const int64_t B = score.size(0), N = score.size(2) * score.size(3);
  const int64_t k = num_selected(N, ratio);
  const auto opts = score.options();
  return {B, N, k, N - k, at::empty({B, k}, opts.dtype(at::kLong)),
          at::empty({B, k}, opts.dtype(at::kLong)), at::empty({B, k}, opts.dtype(at::kChar))};
}

inline void check_args(const at::Tensor& score, const at::Tensor& pseudo_depth, double ratio,
                       double tau) {
  check_floating(score, "score");
  check_dim(score, 4, "score", "[B, 1, H, W]");
  TORCH_CHECK_VALUE(score.size(1) == 1, "score must be [B, 1, H, W], got ", shape_str(score));
  TORCH_CHECK_VALUE(score.size(2) * score.size(3) <= kMaxPixels,
                    "score must have H * W < 2^31 pixels, got ", shape_str(score));
  check_floating(pseudo_depth, "pseudo_depth");
  TORCH_CHECK_VALUE(pseudo_depth.device() == score.device(),
                    "pseudo_depth must be on the device of score (", score.device(), "), got ",
                    pseudo_depth.device());
  TORCH_CHECK_VALUE(pseudo_depth.sizes() == score.sizes(),
                    "pseudo_depth must be [B, 1, H, W] like score ", shape_str(score), ", got ",
                    shape_str(pseudo_depth));
  TORCH_CHECK_VALUE(ratio > 0.0 && ratio < 1.0, "ratio must be in (0, 1), got ", ratio);
  TORCH_CHECK_VALUE(std::isfinite(tau) && tau >= 0.0, "tau must be finite and >= 0, got ", tau);
}

}  // namespace scdepth::pairs
