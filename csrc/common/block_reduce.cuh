// Block-wide sums for CUDA kernels: warp shuffles, then one shared-memory pass.
#pragma once

#include <cuda_runtime.h>

namespace scdepth {

constexpr int kWarpSize = 32;

// Sums v[0..N) over the block; the result is valid in thread 0 only. Every thread of the
// block must call it (it contains __syncthreads). kThreads must be a multiple of 32.
template <int kThreads, int N, typename T>
__device__ inline void block_sum(T (&v)[N]) {
  static_assert(kThreads % kWarpSize == 0 && kThreads <= 1024, "whole warps, one block");
  constexpr int kWarps = kThreads / kWarpSize;
  __shared__ T partial[kWarps][N];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
#pragma unroll
  for (int k = 0; k < N; ++k) {
    for (int off = kWarpSize / 2; off > 0; off /= 2) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
  }
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < N; ++k) partial[warp][k] = v[k];
  }
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int k = 0; k < N; ++k) {
      v[k] = lane < kWarps ? partial[lane][k] : T(0);
      for (int off = kWarpSize / 2; off > 0; off /= 2) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
    }
  }
}

}  // namespace scdepth
