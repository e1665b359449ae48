// Argument checks of inverse_warp, shared by its CPU and CUDA entry points.
#pragma once

#include <climits>

#include "common/checks.h"

namespace scdepth::warp {

inline void check_args(const at::Tensor& src, const at::Tensor& depth, const at::Tensor& pose,
                       const at::Tensor& K, int64_t src_grad_from) {
  TORCH_CHECK_VALUE(src_grad_from >= 0, "src_grad_from must be >= 0, got ", src_grad_from);
  check_floating(src, "src");
  check_dim(src, 4, "src", "[B, C, H, W]");
  TORCH_CHECK_VALUE(src.size(1) >= 1, "src must have at least one channel, got ",
                    shape_str(src));
  TORCH_CHECK_VALUE(src.size(2) < INT_MAX && src.size(3) < INT_MAX,
                    "src height and width must be < 2^31, got ", shape_str(src));
  check_floating(depth, "depth");
  check_like(depth, "depth", src, "src");
  TORCH_CHECK_VALUE(depth.dim() == 4 && depth.size(0) == src.size(0) && depth.size(1) == 1 &&
                        depth.size(2) == src.size(2) && depth.size(3) == src.size(3),
                    "depth must be [B, 1, H, W] like src ", shape_str(src), ", got ",
                    shape_str(depth));
  check_floating(pose, "pose");
  check_like(pose, "pose", src, "src");
  TORCH_CHECK_VALUE(pose.dim() == 3 && pose.size(0) == src.size(0) && pose.size(1) == 3 &&
                        pose.size(2) == 4,
                    "pose must be [B, 3, 4] with B = ", src.size(0), ", got ", shape_str(pose));
  check_floating(K, "K");
  check_like(K, "K", src, "src");
  TORCH_CHECK_VALUE(K.dim() == 3 && K.size(0) == src.size(0) && K.size(1) == 3 && K.size(2) == 3,
                    "K must be [B, 3, 3] with B = ", src.size(0), ", got ", shape_str(K));
}

inline void check_backward_args(const at::Tensor& grad_warped, const at::Tensor& grad_depth_out,
                                const at::Tensor& src, const at::Tensor& depth,
                                const at::Tensor& pose, const at::Tensor& K,
                                int64_t src_grad_from) {
  check_args(src, depth, pose, K, src_grad_from);
  check_like(grad_warped, "grad_warped", src, "src");
  TORCH_CHECK_VALUE(grad_warped.sizes() == src.sizes(), "grad_warped must be shaped like src ",
                    shape_str(src), ", got ", shape_str(grad_warped));
  check_like(grad_depth_out, "grad_computed_depth", src, "src");
  TORCH_CHECK_VALUE(grad_depth_out.sizes() == depth.sizes(),
                    "grad_computed_depth must be shaped like depth ", shape_str(depth), ", got ",
                    shape_str(grad_depth_out));
}

}  // namespace scdepth::warp
