// CUDA kernels of normal_rank_error: one thread per anchor. The math is normal_rank.h's,
// shared with the CPU kernels. The backward adds each pair's gradient into its two pixels
// with atomics (an opmath buffer), so its sums are not in a fixed order.
//
// Written against CUDA only through cuda_runtime.h and ATen/cuda/Atomic.cuh, so that
// tests/normal_rank_cuda_host.cpp can run them on the host (tests/simt/); normal_rank_cuda.cu
// launches them on the device.
#pragma once

#include <cuda_runtime.h>

#include <ATen/OpMathType.h>
#include <ATen/cuda/Atomic.cuh>
#include <c10/macros/Macros.h>

#include <cstdint>

#include "normals/normal_rank.h"

namespace scdepth::normals {

constexpr int kThreads = 256;  // anchors per block

// Anchor a = (s * B + b) * M + m of points [S, 4, B, M]: its image b and four pixel indices,
// which must lie in [0, HW) (a device-side assert, as torch's own index kernels have).
__device__ inline int64_t anchor_points(const int64_t* points, int64_t a, int64_t B, int64_t M,
                                        int64_t HW, int64_t idx[kPoints]) {
  const int64_t s = a / (B * M), bm = a % (B * M);
  for (int k = 0; k < kPoints; ++k) {
    idx[k] = points[(s * kPoints + k) * B * M + bm];
    CUDA_KERNEL_ASSERT(idx[k] >= 0 && idx[k] < HW);
  }
  return bm / M;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const scalar_t* __restrict__ normal, const scalar_t* __restrict__ pseudo,
                   const bool* __restrict__ valid, const int64_t* __restrict__ points,
                   const scalar_t* __restrict__ weight, scalar_t* __restrict__ error,
                   scalar_t* __restrict__ pair_weight,
                   at::opmath_type<scalar_t>* __restrict__ pair_slope, int64_t B, int64_t M,
                   int64_t HW, int64_t anchors) {
  using T = at::opmath_type<scalar_t>;
  const int64_t a = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (a >= anchors) return;
  int64_t idx[kPoints];
  const int64_t b = anchor_points(points, a, B, M, HW, idx);
  const PlanarNormals<scalar_t> N{normal + b * 3 * HW, pseudo + b * 3 * HW, valid + b * HW, HW};
  const auto r = anchor_pairs<T>(N, idx);
  const T w = static_cast<T>(weight[a]);
  T e, count;
  anchor_error(r, w, e, count);
  anchor_slopes(r, w, pair_slope + a * kPairs);
  error[a] = static_cast<scalar_t>(e);
  pair_weight[a] = static_cast<scalar_t>(count);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ grad_error, const scalar_t* __restrict__ normal,
                    const int64_t* __restrict__ points,
                    const at::opmath_type<scalar_t>* __restrict__ pair_slope,
                    at::opmath_type<scalar_t>* __restrict__ grad, int64_t B, int64_t M,
                    int64_t HW, int64_t anchors) {
  using T = at::opmath_type<scalar_t>;
  const int64_t a = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (a >= anchors) return;
  int64_t idx[kPoints];
  const int64_t b = anchor_points(points, a, B, M, HW, idx);
  const scalar_t* n = normal + b * 3 * HW;
  T* gb = grad + b * 3 * HW;
  const auto read = [&](int64_t i, int c) { return static_cast<T>(n[c * HW + i]); };
  const auto add = [&](int64_t i, int c, T v) { gpuAtomicAdd(gb + c * HW + i, v); };
  const T g = static_cast<T>(grad_error[a]);
  for (int j = 0; j < kPairs; ++j) {
    pair_grad(g, pair_slope[a * kPairs + j], idx[j], idx[j + 1], read, add);
  }
}

}  // namespace scdepth::normals
