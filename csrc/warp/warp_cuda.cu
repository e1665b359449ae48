// CUDA entry points of inverse_warp: allocations and launches on the current stream; the
// kernels are in warp_kernels.cuh.
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/launch.h"
#include "warp/warp_args.h"
#include "warp/warp_kernels.cuh"

namespace scdepth::warp {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cuda(const at::Tensor& src_,
                                                            const at::Tensor& depth_,
                                                            const at::Tensor& pose_,
                                                            const at::Tensor& K_,
                                                            int64_t src_grad_from) {
  check_args(src_, depth_, pose_, K_, src_grad_from);
  const c10::cuda::CUDAGuard guard(src_.device());
  const auto src = src_.contiguous(), depth = depth_.contiguous();
  const auto pose = pose_.contiguous(), K = K_.contiguous();
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  auto warped = at::empty({B, C, H, W}, src.options());
  auto computed_depth = at::empty({B, 1, H, W}, src.options());
  auto valid = at::empty({B, 1, H, W}, src.options());
  if (B * H * W == 0) return {warped, computed_depth, valid};
  const Grid grid = make_grid(B, H * W);
  auto stream = at::cuda::getCurrentCUDAStream();
  SCDEPTH_DISPATCH_FLOATING(src.scalar_type(), "inverse_warp_cuda", [&] {
    forward_kernel<scalar_t><<<grid.blocks, kThreads, 0, stream>>>(
        src.const_data_ptr<scalar_t>(), depth.const_data_ptr<scalar_t>(),
        pose.const_data_ptr<scalar_t>(), K.const_data_ptr<scalar_t>(),
        warped.mutable_data_ptr<scalar_t>(), computed_depth.mutable_data_ptr<scalar_t>(),
        valid.mutable_data_ptr<scalar_t>(), C, H, W, grid.tiles);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {warped, computed_depth, valid};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(
    const at::Tensor& grad_warped_, const at::Tensor& grad_z_, const at::Tensor& src_,
    const at::Tensor& depth_, const at::Tensor& pose_, const at::Tensor& K_,
    int64_t src_grad_from) {
  check_backward_args(grad_warped_, grad_z_, src_, depth_, pose_, K_, src_grad_from);
  const c10::cuda::CUDAGuard guard(src_.device());
  const auto gw = grad_warped_.contiguous(), gz = grad_z_.contiguous();
  const auto src = src_.contiguous(), depth = depth_.contiguous();
  const auto pose = pose_.contiguous(), K = K_.contiguous();
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const bool need_src_grad = src_grad_from < C;
  const auto acc = src.options().dtype(at::toOpMathType(src.scalar_type()));
  auto grad_depth = at::empty({B, 1, H, W}, depth.options());
  auto grad_src = need_src_grad ? at::zeros({B, C, H, W}, acc) : at::empty({0}, src.options());
  if (B * H * W == 0) {
    return {grad_src.to(src.scalar_type()), grad_depth, at::zeros({B, 3, 4}, pose.options())};
  }
  if (need_src_grad) at::globalContext().alertNotDeterministic("inverse_warp_backward_cuda");
  const Grid grid = make_grid(B, H * W);
  auto pose_partial = at::empty({B, grid.tiles, 12}, acc);
  auto stream = at::cuda::getCurrentCUDAStream();
  SCDEPTH_DISPATCH_FLOATING(src.scalar_type(), "inverse_warp_backward_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    backward_kernel<scalar_t><<<grid.blocks, kThreads, 0, stream>>>(
        gw.const_data_ptr<scalar_t>(), gz.const_data_ptr<scalar_t>(),
        src.const_data_ptr<scalar_t>(), depth.const_data_ptr<scalar_t>(),
        pose.const_data_ptr<scalar_t>(), K.const_data_ptr<scalar_t>(),
        need_src_grad ? grad_src.mutable_data_ptr<T>() : nullptr,
        grad_depth.mutable_data_ptr<scalar_t>(), pose_partial.mutable_data_ptr<T>(), C, H, W,
        grid.tiles, src_grad_from);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  // Second, small pass: the per-block partial sums of each image.
  auto grad_pose = pose_partial.sum(1).view({B, 3, 4}).to(src.scalar_type());
  return {grad_src.to(src.scalar_type()), grad_depth, grad_pose};
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CUDA, m) {
  m.impl("inverse_warp", &forward_cuda);
  m.impl("inverse_warp_backward", &backward_cuda);
}

}  // namespace scdepth::warp
