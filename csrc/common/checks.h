// Argument checks shared by every op. Errors name the argument and say what was expected,
// e.g. "depth must be [B, 1, H, W] like src, got [2, 3, 8, 8]".
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <sstream>
#include <string>

namespace scdepth {

inline std::string shape_str(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

inline void check_defined(const at::Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.defined(), name, " must be a tensor, got an undefined tensor");
}

inline void check_floating(const at::Tensor& t, const char* name) {
  check_defined(t, name);
  const auto st = t.scalar_type();
  TORCH_CHECK_TYPE(st == at::kHalf || st == at::kBFloat16 || st == at::kFloat || st == at::kDouble,
                   name, " must be float16, bfloat16, float32 or float64, got ", st);
}

inline void check_dim(const at::Tensor& t, int64_t ndim, const char* name, const char* layout) {
  TORCH_CHECK_VALUE(t.dim() == ndim, name, " must be ", layout, ", got ", shape_str(t));
}

// `t` must have the same dtype and device as `ref` (named `ref_name`).
inline void check_like(const at::Tensor& t, const char* name, const at::Tensor& ref,
                       const char* ref_name) {
  TORCH_CHECK_TYPE(t.scalar_type() == ref.scalar_type(), name, " must have the dtype of ",
                   ref_name, " (", ref.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == ref.device(), name, " must be on the device of ", ref_name,
                    " (", ref.device(), "), got ", t.device());
}

}  // namespace scdepth
