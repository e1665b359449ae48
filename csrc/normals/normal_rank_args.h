// Argument checks of normal_rank_error, shared by its CPU and CUDA entry points.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>

#include <tuple>

#include "common/checks.h"

namespace scdepth::normals {

inline void check_normal_arg(const at::Tensor& normal) {
  check_floating(normal, "normal");
  check_dim(normal, 4, "normal", "[B, 3, H, W]");
  TORCH_CHECK_VALUE(normal.size(1) == 3, "normal must be [B, 3, H, W], got ", shape_str(normal));
}

// points [S, 4, B, M] int64 beside normal [B, 3, H, W] (its values are checked by the kernels).
inline void check_points_arg(const at::Tensor& points, const at::Tensor& normal) {
  check_defined(points, "points");
  TORCH_CHECK_TYPE(points.scalar_type() == at::kLong, "points must be int64, got ",
                   points.scalar_type());
  TORCH_CHECK_VALUE(points.device() == normal.device(),
                    "points must be on the device of normal (", normal.device(), "), got ",
                    points.device());
  TORCH_CHECK_VALUE(points.dim() == 4 && points.size(1) == 4 && points.size(2) == normal.size(0),
                    "points must be [S, 4, B, M] with B = ", normal.size(0), ", got ",
                    shape_str(points));
}

inline void check_args(const at::Tensor& normal, const at::Tensor& pseudo_normal,
                       const at::Tensor& valid, const at::Tensor& points,
                       const at::Tensor& weight) {
  check_normal_arg(normal);
  check_like(pseudo_normal, "pseudo_normal", normal, "normal");
  TORCH_CHECK_VALUE(pseudo_normal.sizes() == normal.sizes(),
                    "pseudo_normal must be shaped like normal ", shape_str(normal), ", got ",
                    shape_str(pseudo_normal));
  check_defined(valid, "valid");
  TORCH_CHECK_TYPE(valid.scalar_type() == at::kBool, "valid must be bool, got ",
                   valid.scalar_type());
  TORCH_CHECK_VALUE(valid.device() == normal.device(), "valid must be on the device of normal (",
                    normal.device(), "), got ", valid.device());
  const int64_t B = normal.size(0), H = normal.size(2), W = normal.size(3);
  TORCH_CHECK_VALUE(valid.dim() == 4 && valid.size(0) == B && valid.size(1) == 1 &&
                        valid.size(2) == H && valid.size(3) == W,
                    "valid must be [B, 1, H, W] like normal ", shape_str(normal), ", got ",
                    shape_str(valid));
  check_points_arg(points, normal);
  check_like(weight, "weight", normal, "normal");
  TORCH_CHECK_VALUE(weight.dim() == 3 && weight.size(0) == points.size(0) &&
                        weight.size(1) == B && weight.size(2) == points.size(3),
                    "weight must be [S, B, M] like points ", shape_str(points), ", got ",
                    shape_str(weight));
}

inline void check_backward_args(const at::Tensor& grad_error, const at::Tensor& normal,
                                const at::Tensor& points, const at::Tensor& pair_slope) {
  check_normal_arg(normal);
  check_points_arg(points, normal);
  const int64_t B = normal.size(0), S = points.size(0), M = points.size(3);
  check_like(grad_error, "grad_error", normal, "normal");
  TORCH_CHECK_VALUE(grad_error.dim() == 3 && grad_error.size(0) == S &&
                        grad_error.size(1) == B && grad_error.size(2) == M,
                    "grad_error must be [S, B, M] like points ", shape_str(points), ", got ",
                    shape_str(grad_error));
  check_defined(pair_slope, "pair_slope");
  TORCH_CHECK_TYPE(pair_slope.scalar_type() == at::toOpMathType(normal.scalar_type()),
                   "pair_slope must be ", at::toOpMathType(normal.scalar_type()), ", got ",
                   pair_slope.scalar_type());
  TORCH_CHECK_VALUE(pair_slope.device() == normal.device(),
                    "pair_slope must be on the device of normal (", normal.device(), "), got ",
                    pair_slope.device());
  TORCH_CHECK_VALUE(pair_slope.dim() == 4 && pair_slope.size(0) == S && pair_slope.size(1) == B &&
                        pair_slope.size(2) == M && pair_slope.size(3) == 3,
                    "pair_slope must be [S, B, M, 3] like points ", shape_str(points), ", got ",
                    shape_str(pair_slope));
}

// One forward call's inputs, checked and contiguous, its sizes, and its outputs (error,
// pair_weight, pair_slope), allocated: what the CPU and CUDA entry points share.
struct Forward {
  at::Tensor normal, pseudo_normal, valid, points, weight;
  int64_t B, HW, M, anchors;
  at::Tensor error, pair_weight, pair_slope;

  Forward(const at::Tensor& normal_, const at::Tensor& pseudo_normal_, const at::Tensor& valid_,
          const at::Tensor& points_, const at::Tensor& weight_) {
    check_args(normal_, pseudo_normal_, valid_, points_, weight_);
    normal = normal_.contiguous(), pseudo_normal = pseudo_normal_.contiguous();
    valid = valid_.contiguous(), points = points_.contiguous(), weight = weight_.contiguous();
    B = normal.size(0), HW = normal.size(2) * normal.size(3);
    M = points.size(3), anchors = points.size(0) * B * M;
    error = at::empty(weight.sizes(), weight.options());
    pair_weight = at::empty(weight.sizes(), weight.options());
    pair_slope = at::empty({points.size(0), B, M, 3},
                           weight.options().dtype(at::toOpMathType(weight.scalar_type())));
  }

  std::tuple<at::Tensor, at::Tensor, at::Tensor> outputs() const {
    return {error, pair_weight, pair_slope};
  }
};

}  // namespace scdepth::normals
