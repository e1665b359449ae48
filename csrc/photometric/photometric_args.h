// Argument checks of photometric_error, shared by its CPU and CUDA entry points.
#pragma once

#include <c10/util/Optional.h>

#include <climits>
#include <cmath>

#include "common/checks.h"
#include "photometric/photometric.h"

namespace scdepth::photometric {

// A [B, 1, H, W] map like tgt [B, C, H, W] (weight, grad_photo, grad_l1).
inline void check_map(const at::Tensor& t, const char* name, const at::Tensor& tgt) {
  check_floating(t, name);
  check_like(t, name, tgt, "tgt");
  TORCH_CHECK_VALUE(t.dim() == 4 && t.size(0) == tgt.size(0) && t.size(1) == 1 &&
                        t.size(2) == tgt.size(2) && t.size(3) == tgt.size(3),
                    name, " must be [B, 1, H, W] like tgt ", shape_str(tgt), ", got ",
                    shape_str(t));
}

inline void check_args(const at::Tensor& tgt, const at::Tensor& warped,
                       const std::optional<at::Tensor>& weight, double alpha, int64_t window) {
  check_floating(tgt, "tgt");
  check_dim(tgt, 4, "tgt", "[B, C, H, W]");
  TORCH_CHECK_VALUE(tgt.size(1) >= 1, "tgt must have at least one channel, got ",
                    shape_str(tgt));
  TORCH_CHECK_VALUE(tgt.size(2) < INT_MAX && tgt.size(3) < INT_MAX,
                    "tgt height and width must be < 2^31, got ", shape_str(tgt));
  check_floating(warped, "warped");
  check_like(warped, "warped", tgt, "tgt");
  TORCH_CHECK_VALUE(warped.sizes() == tgt.sizes(), "warped must be shaped like tgt ",
                    shape_str(tgt), ", got ", shape_str(warped));
  if (weight.has_value() && weight->defined()) check_map(*weight, "weight", tgt);
  TORCH_CHECK_VALUE(window % 2 == 1 && window >= kMinWindow && window <= kMaxWindow,
                    "window must be odd and in [", kMinWindow, ", ", kMaxWindow, "], got ",
                    window);
  TORCH_CHECK_VALUE(alpha >= 0.0 && alpha <= 1.0, "alpha must be in [0, 1], got ", alpha);
  const int64_t p = window / 2;
  TORCH_CHECK_VALUE(tgt.size(2) > p && tgt.size(3) > p,
                    "tgt height and width must be > window // 2 = ", p,
                    " for the reflection padding, got ", shape_str(tgt));
}

inline void check_backward_args(const at::Tensor& grad_photo, const at::Tensor& grad_l1,
                                const at::Tensor& tgt, const at::Tensor& warped,
                                const std::optional<at::Tensor>& weight, double alpha,
                                int64_t window) {
  check_args(tgt, warped, weight, alpha, window);
  check_map(grad_photo, "grad_photo", tgt);
  check_map(grad_l1, "grad_l1", tgt);
}

}  // namespace scdepth::photometric
