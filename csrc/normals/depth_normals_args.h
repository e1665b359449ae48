// Argument checks of depth_normals, shared by its CPU and CUDA entry points. K's values (finite
// and invertible) are checked in Python (scdepth.ops._checks.check_intrinsics), as for
// inverse_warp.
#pragma once

#include <climits>

#include "common/checks.h"

namespace scdepth::depth_normals {

inline void check_args(const at::Tensor& depth, const at::Tensor& K) {
  check_floating(depth, "depth");
  check_dim(depth, 4, "depth", "[B, 1, H, W]");
  TORCH_CHECK_VALUE(depth.size(1) == 1, "depth must be [B, 1, H, W], got ", shape_str(depth));
  // the CPU row loops index columns with int (a vectorised int64 -> float conversion costs more)
  TORCH_CHECK_VALUE(depth.size(2) < INT_MAX && depth.size(3) < INT_MAX,
                    "depth height and width must be < 2^31, got ", shape_str(depth));
  check_floating(K, "K");
  check_like(K, "K", depth, "depth");
  TORCH_CHECK_VALUE(K.dim() == 3 && K.size(0) == depth.size(0) && K.size(1) == 3 &&
                        K.size(2) == 3,
                    "K must be [B, 3, 3] with B = ", depth.size(0), ", got ", shape_str(K));
}

inline void check_backward_args(const at::Tensor& grad_normal, const at::Tensor& depth,
                                const at::Tensor& K) {
  check_args(depth, K);
  check_floating(grad_normal, "grad_normal");
  check_like(grad_normal, "grad_normal", depth, "depth");
  TORCH_CHECK_VALUE(grad_normal.dim() == 4 && grad_normal.size(0) == depth.size(0) &&
                        grad_normal.size(1) == 3 && grad_normal.size(2) == depth.size(2) &&
                        grad_normal.size(3) == depth.size(3),
                    "grad_normal must be [B, 3, H, W] like depth ", shape_str(depth), ", got ",
                    shape_str(grad_normal));
}

}  // namespace scdepth::depth_normals
