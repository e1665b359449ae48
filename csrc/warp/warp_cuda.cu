// CUDA kernels of inverse_warp: one thread per target pixel, blocks never straddle two
// images (so each block loads its image's camera parameters once into shared memory).
// The math is warp.h's, shared with the CPU kernels.
#include <ATen/Context.h>
#include <ATen/cuda/Atomic.cuh>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <climits>

#include "common/block_reduce.cuh"
#include "common/launch.h"
#include "warp/warp.h"
#include "warp/warp_args.h"

namespace scdepth::warp {
namespace {

constexpr int kThreads = 256;  // pixels per block

struct Grid {
  int64_t tiles;  // blocks per image
  int64_t blocks;
};

Grid make_grid(int64_t B, int64_t HW) {
  const int64_t tiles = ceil_div<int64_t>(HW, kThreads);
  TORCH_CHECK_VALUE(B * tiles <= INT_MAX, "inverse_warp: batch too large for one launch (B = ",
                    B, ", H*W = ", HW, ")");
  return {tiles, B * tiles};
}

// Thread 0 loads image b's parameters; every thread of the block reaches the barrier.
template <typename T, typename scalar_t>
__device__ inline void load_params(Params<T>& p, const scalar_t* K, const scalar_t* pose,
                                   int64_t b) {
  if (threadIdx.x == 0) p = make_params<T>(K + 9 * b, pose + 12 * b);
  __syncthreads();
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const scalar_t* __restrict__ src, const scalar_t* __restrict__ depth,
                   const scalar_t* __restrict__ pose, const scalar_t* __restrict__ K,
                   scalar_t* __restrict__ out, scalar_t* __restrict__ zo,
                   scalar_t* __restrict__ va, int64_t C, int64_t H, int64_t W, int64_t tiles) {
  using T = at::opmath_type<scalar_t>;
  __shared__ Params<T> p;
  const int64_t b = blockIdx.x / tiles;
  const int64_t i = (blockIdx.x % tiles) * kThreads + threadIdx.x;
  load_params(p, K, pose, b);
  const int64_t HW = H * W;
  if (i >= HW) return;  // after the only barrier
  const int64_t pix = b * HW + i;
  const T u = static_cast<T>(i % W), v = static_cast<T>(i / W);
  const auto q = project(p, static_cast<T>(depth[pix]), u, v);
  zo[pix] = static_cast<scalar_t>(q.z);
  va[pix] = static_cast<scalar_t>(inside(q, H, W) ? 1 : 0);
  const auto c = corners(q, H, W);
  for (int64_t ch = 0; ch < C; ++ch) {
    const int64_t plane = (b * C + ch) * HW;
    out[plane + i] = static_cast<scalar_t>(c.any ? sample(src + plane, c) : T(0));
  }
}

// grad_src (compute type, may be null) is scattered with atomics; the pose gradient is
// summed per block and written once per block to pose_partial[blockIdx.x][12].
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ gw, const scalar_t* __restrict__ gz,
                    const scalar_t* __restrict__ src, const scalar_t* __restrict__ depth,
                    const scalar_t* __restrict__ pose, const scalar_t* __restrict__ K,
                    at::opmath_type<scalar_t>* __restrict__ grad_src,
                    scalar_t* __restrict__ grad_depth,
                    at::opmath_type<scalar_t>* __restrict__ pose_partial, int64_t C, int64_t H,
                    int64_t W, int64_t tiles) {
  using T = at::opmath_type<scalar_t>;
  __shared__ Params<T> p;
  const int64_t b = blockIdx.x / tiles;
  const int64_t i = (blockIdx.x % tiles) * kThreads + threadIdx.x;
  load_params(p, K, pose, b);
  const int64_t HW = H * W;
  T gpose[12] = {};
  if (i < HW) {  // no early return: block_sum below has barriers
    const int64_t pix = b * HW + i;
    const T u = static_cast<T>(i % W), v = static_cast<T>(i / W);
    const auto q = project(p, static_cast<T>(depth[pix]), u, v);
    T gu = T(0), gv = T(0);
    const auto c = corners(q, H, W);
    if (c.any) {
      for (int64_t ch = 0; ch < C; ++ch) {
        const int64_t plane = (b * C + ch) * HW;
        const T g = static_cast<T>(gw[plane + i]);
        sample_grad_uv(src + plane, c, g, gu, gv);
        if (grad_src != nullptr && g != T(0)) {
          for (int k = 0; k < 4; ++k) {
            if (c.in[k]) gpuAtomicAdd(grad_src + plane + c.off[k], c.w[k] * g);
          }
        }
      }
    }
    grad_depth[pix] =
        static_cast<scalar_t>(backprop_pixel(p, q, static_cast<T>(depth[pix]), u, v, gu, gv,
                                       static_cast<T>(gz[pix]), gpose));
  }
  block_sum<kThreads>(gpose);
  if (threadIdx.x == 0) {
    for (int k = 0; k < 12; ++k) pose_partial[blockIdx.x * 12 + k] = gpose[k];
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cuda(const at::Tensor& src_,
                                                            const at::Tensor& depth_,
                                                            const at::Tensor& pose_,
                                                            const at::Tensor& K_) {
  check_args(src_, depth_, pose_, K_);
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
    const at::Tensor& depth_, const at::Tensor& pose_, const at::Tensor& K_, bool need_src_grad) {
  check_backward_args(grad_warped_, grad_z_, src_, depth_, pose_, K_);
  const c10::cuda::CUDAGuard guard(src_.device());
  const auto gw = grad_warped_.contiguous(), gz = grad_z_.contiguous();
  const auto src = src_.contiguous(), depth = depth_.contiguous();
  const auto pose = pose_.contiguous(), K = K_.contiguous();
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
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
        grid.tiles);
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
