// Block-wide exclusive prefix sum for CUDA kernels: warp shuffles, then the warp totals.
#pragma once

#include <cuda_runtime.h>

#include "common/block_reduce.cuh"

namespace scdepth {

// Exclusive prefix sum of one value per thread in threadIdx.x order; `total` receives the sum
// over the block in every thread. Every thread of the block must call it (it contains
// __syncthreads, the last one so that the next call may reuse the shared buffer). The sums
// must fit in unsigned int. kThreads must be a multiple of 32 and equal blockDim.x.
template <int kThreads>
__device__ inline unsigned int block_exclusive_scan(unsigned int v, unsigned int& total) {
  static_assert(kThreads % kWarpSize == 0 && kThreads <= 1024, "whole warps, one block");
  constexpr int kWarps = kThreads / kWarpSize;
  __shared__ unsigned int warp_total[kWarps];
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  unsigned int incl = v;
  for (int off = 1; off < kWarpSize; off *= 2) {
    const unsigned int y = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= off) incl += y;
  }
  if (lane == kWarpSize - 1) warp_total[warp] = incl;
  __syncthreads();
  unsigned int before = 0, sum = 0;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    const unsigned int t = warp_total[w];
    before += w < warp ? t : 0u;
    sum += t;
  }
  __syncthreads();
  total = sum;
  return before + incl - v;
}

}  // namespace scdepth
