// CUDA kernels of inverse_warp: one thread per target pixel, blocks never straddle two
// images (so each block loads its image's camera parameters once into shared memory).
// The math is warp.h's, shared with the CPU kernels.
//
// Written against CUDA only through cuda_runtime.h and ATen/cuda/Atomic.cuh, so that
// tests/warp_cuda_host.cpp can run them on the host (tests/simt/: one thread per CUDA thread,
// real barriers); warp_cuda.cu launches them on the device.
#pragma once

#include <cuda_runtime.h>

#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/util/Exception.h>

#include <climits>
#include <cstdint>

#include "common/block_reduce.cuh"
#include "common/launch.h"
#include "common/pixel_grid.h"
#include "warp/warp.h"

namespace scdepth::warp {

constexpr int kThreads = 256;  // pixels per block

using Grid = PixelGrid;

inline Grid make_grid(int64_t B, int64_t HW) {
  return pixel_grid(B, HW, kThreads, "inverse_warp");
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

// grad_src (compute type, may be null) of channels grad_from and up is scattered with
// atomics; the pose gradient is summed per block and written once per block to
// pose_partial[blockIdx.x][12].
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ gw, const scalar_t* __restrict__ gz,
                    const scalar_t* __restrict__ src, const scalar_t* __restrict__ depth,
                    const scalar_t* __restrict__ pose, const scalar_t* __restrict__ K,
                    at::opmath_type<scalar_t>* __restrict__ grad_src,
                    scalar_t* __restrict__ grad_depth,
                    at::opmath_type<scalar_t>* __restrict__ pose_partial, int64_t C, int64_t H,
                    int64_t W, int64_t tiles, int64_t grad_from) {
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
        if (grad_src != nullptr && ch >= grad_from && g != T(0)) {
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

}  // namespace scdepth::warp
