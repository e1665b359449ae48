// CUDA entry points of depth_normals: allocations and launches on the current stream; the
// kernels are in depth_normals_kernels.cuh.
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/launch.h"
#include "normals/depth_normals_args.h"
#include "normals/depth_normals_kernels.cuh"

namespace scdepth::depth_normals {
namespace {

at::Tensor forward_cuda(const at::Tensor& depth_, const at::Tensor& K_) {
  check_args(depth_, K_);
  const c10::cuda::CUDAGuard guard(depth_.device());
  const auto depth = depth_.contiguous(), K = K_.contiguous();
  const int64_t B = depth.size(0), H = depth.size(2), W = depth.size(3);
  auto normal = at::empty({B, 3, H, W}, depth.options());
  if (B * H * W == 0) return normal;
  const auto grid = forward_grid(B, H * W);
  auto stream = at::cuda::getCurrentCUDAStream();
  SCDEPTH_DISPATCH_FLOATING(depth.scalar_type(), "depth_normals_cuda", [&] {
    forward_kernel<scalar_t><<<grid.blocks, kThreads, 0, stream>>>(
        depth.const_data_ptr<scalar_t>(), K.const_data_ptr<scalar_t>(),
        normal.mutable_data_ptr<scalar_t>(), H, W, grid.tiles);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return normal;
}

at::Tensor backward_cuda(const at::Tensor& grad_normal_, const at::Tensor& depth_,
                         const at::Tensor& K_) {
  check_backward_args(grad_normal_, depth_, K_);
  const c10::cuda::CUDAGuard guard(depth_.device());
  const auto grad_normal = grad_normal_.contiguous(), depth = depth_.contiguous();
  const auto K = K_.contiguous();
  const int64_t B = depth.size(0), H = depth.size(2), W = depth.size(3);
  auto grad_depth = at::empty(depth.sizes(), depth.options());
  if (B * H * W == 0) return grad_depth;
  const auto grid = backward_grid(B, H, W);
  auto stream = at::cuda::getCurrentCUDAStream();
  SCDEPTH_DISPATCH_FLOATING(depth.scalar_type(), "depth_normals_backward_cuda", [&] {
    backward_kernel<scalar_t><<<grid.blocks, kThreads, 0, stream>>>(
        grad_normal.const_data_ptr<scalar_t>(), depth.const_data_ptr<scalar_t>(),
        K.const_data_ptr<scalar_t>(), grad_depth.mutable_data_ptr<scalar_t>(), H, W,
        grid.tiles_x, grid.tiles_y);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_depth;
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CUDA, m) {
  m.impl("depth_normals", &forward_cuda);
  m.impl("depth_normals_backward", &backward_cuda);
}

}  // namespace scdepth::depth_normals
