// CUDA entry points of normal_rank_error: allocations and launches on the current stream; the
// kernels are in normal_rank_kernels.cuh.
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <climits>

#include "common/launch.h"
#include "normals/normal_rank_args.h"
#include "normals/normal_rank_kernels.cuh"

namespace scdepth::normals {
namespace {

int64_t blocks_for(int64_t anchors) {
  const int64_t blocks = ceil_div<int64_t>(anchors, kThreads);
  TORCH_CHECK_VALUE(blocks <= INT_MAX, "normal_rank_error: too many anchors for one launch (",
                    anchors, ")");
  return blocks;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cuda(const at::Tensor& normal,
                                                            const at::Tensor& pseudo_normal,
                                                            const at::Tensor& valid,
                                                            const at::Tensor& points,
                                                            const at::Tensor& weight) {
  const c10::cuda::CUDAGuard guard(normal.device());
  const Forward f(normal, pseudo_normal, valid, points, weight);
  if (f.anchors == 0) return f.outputs();
  auto stream = at::cuda::getCurrentCUDAStream();
  SCDEPTH_DISPATCH_FLOATING(f.normal.scalar_type(), "normal_rank_error_cuda", [&] {
    forward_kernel<scalar_t><<<blocks_for(f.anchors), kThreads, 0, stream>>>(
        f.normal.const_data_ptr<scalar_t>(), f.pseudo_normal.const_data_ptr<scalar_t>(),
        f.valid.const_data_ptr<bool>(), f.points.const_data_ptr<int64_t>(),
        f.weight.const_data_ptr<scalar_t>(), f.error.mutable_data_ptr<scalar_t>(),
        f.pair_weight.mutable_data_ptr<scalar_t>(),
        f.pair_slope.mutable_data_ptr<at::opmath_type<scalar_t>>(), f.B, f.M, f.HW, f.anchors);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return f.outputs();
}

at::Tensor backward_cuda(const at::Tensor& grad_error_, const at::Tensor& normal_,
                         const at::Tensor& points_, const at::Tensor& pair_slope_) {
  check_backward_args(grad_error_, normal_, points_, pair_slope_);
  const c10::cuda::CUDAGuard guard(normal_.device());
  const auto grad_error = grad_error_.contiguous(), normal = normal_.contiguous();
  const auto points = points_.contiguous(), pair_slope = pair_slope_.contiguous();
  const int64_t B = normal.size(0), HW = normal.size(2) * normal.size(3);
  const int64_t M = points.size(3), anchors = points.size(0) * B * M;
  const auto acc = normal.options().dtype(at::toOpMathType(normal.scalar_type()));
  auto grad = at::zeros(normal.sizes(), acc);
  if (anchors == 0) return grad.to(normal.scalar_type());
  at::globalContext().alertNotDeterministic("normal_rank_error_backward_cuda");
  auto stream = at::cuda::getCurrentCUDAStream();
  SCDEPTH_DISPATCH_FLOATING(normal.scalar_type(), "normal_rank_error_backward_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    backward_kernel<scalar_t><<<blocks_for(anchors), kThreads, 0, stream>>>(
        grad_error.const_data_ptr<scalar_t>(), normal.const_data_ptr<scalar_t>(),
        points.const_data_ptr<int64_t>(), pair_slope.const_data_ptr<T>(),
        grad.mutable_data_ptr<T>(), B, M, HW, anchors);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad.to(normal.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CUDA, m) {
  m.impl("normal_rank_error", &forward_cuda);
  m.impl("normal_rank_error_backward", &backward_cuda);
}

}  // namespace scdepth::normals
