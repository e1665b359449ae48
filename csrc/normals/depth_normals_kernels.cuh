// CUDA kernels of depth_normals. The math is depth_normals.h's, shared with the CPU kernels,
// on the same operands, so both give the same bits (up to the fused multiply-adds nvcc
// contracts on the device).
//
// Forward: one thread per output pixel, gathering its 3 x 3 depths; blocks never straddle two
// images, so each block loads its image's K^-1 once. Backward: one pass, no atomics. A block
// owns a tile of kTileH x kTileW depth pixels; it first computes step 1 (dL/d(du), dL/d(dv))
// of the outputs of the tile and its 1-pixel halo into shared memory (zero outside the image),
// then every thread gathers its pixel's gradient from the 3 x 3 outputs around it (step 2).
// Every gradient element has one writer and one order of summation: deterministic. The halo's
// outputs are computed by each tile that borders them (to the same bits): 1.33 evaluations of
// step 1 per pixel instead of writing it to global memory and reading it back in a second
// kernel (24 bytes per pixel each way in float32), as on the CPU, where one pass was the
// faster (on a GPU the two have not been timed).
//
// Written against CUDA only through cuda_runtime.h, so that tests/depth_normals_cuda_host.cpp
// can run them on the host (tests/simt/); depth_normals_cuda.cu launches them on the device.
#pragma once

#include <cuda_runtime.h>

#include <ATen/OpMathType.h>
#include <c10/macros/Macros.h>
#include <c10/util/Exception.h>

#include <climits>
#include <cstdint>

#include "common/launch.h"
#include "common/pixel_grid.h"
#include "normals/depth_normals.h"

namespace scdepth::depth_normals {

constexpr int kThreads = 256;  // pixels per block, both kernels
// The backward's tile: a warp per row of 32 pixels, 8 rows; with its halo, (8 + 2) x (32 + 2)
// outputs of step 1 for 256 pixels, 1.33 per pixel.
constexpr int kTileW = 32;
constexpr int kTileH = kThreads / kTileW;
constexpr int kHaloW = kTileW + 2;
constexpr int kHaloH = kTileH + 2;
static_assert(kTileW * kTileH == kThreads, "one thread per pixel of the tile");

inline PixelGrid forward_grid(int64_t B, int64_t HW) {
  return pixel_grid(B, HW, kThreads, "depth_normals");
}

struct BackwardGrid {
  int64_t tiles_x, tiles_y;  // tiles along a row, along a column of an image
  int64_t blocks;
};

inline BackwardGrid backward_grid(int64_t B, int64_t H, int64_t W) {
  const int64_t tx = ceil_div<int64_t>(W, kTileW), ty = ceil_div<int64_t>(H, kTileH);
  TORCH_CHECK_VALUE(B * tx * ty <= INT_MAX, "depth_normals: batch too large for one launch (B = ",
                    B, ", H = ", H, ", W = ", W, ")");
  return {tx, ty, B * tx * ty};
}

// Thread 0 computes image b's K^-1; every thread of the block reaches the barrier.
template <typename T, typename scalar_t>
__device__ inline void load_inverse(T* Kinv, const scalar_t* K, int64_t b) {
  if (threadIdx.x == 0) invert_intrinsics(K + 9 * b, Kinv);
  __syncthreads();
}

// Reads the depth of an in-image pixel of one image in the compute type.
template <typename T, typename scalar_t>
struct DepthPlane {
  const scalar_t* depth;
  int64_t W;

  __device__ T operator()(int64_t x, int64_t y) const { return static_cast<T>(depth[y * W + x]); }
};

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const scalar_t* __restrict__ depth, const scalar_t* __restrict__ K,
                   scalar_t* __restrict__ normal, int64_t H, int64_t W, int64_t tiles) {
  using T = at::opmath_type<scalar_t>;
  __shared__ T Kinv[9];
  const int64_t b = blockIdx.x / tiles;
  const int64_t i = (blockIdx.x % tiles) * kThreads + threadIdx.x;
  load_inverse(Kinv, K, b);
  const int64_t HW = H * W;
  if (i >= HW) return;  // after the only barrier
  const int64_t x = i % W, y = i / W;
  const DepthPlane<T, scalar_t> plane{depth + b * HW, W};
  const Vec3<T> n = unit_normal(derivatives(Kinv, plane, x, y, H, W));
  scalar_t* out = normal + b * 3 * HW + i;
  out[0] = static_cast<scalar_t>(n.x);
  out[HW] = static_cast<scalar_t>(n.y);
  out[2 * HW] = static_cast<scalar_t>(n.z);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ grad_normal, const scalar_t* __restrict__ depth,
                    const scalar_t* __restrict__ K, scalar_t* __restrict__ grad_depth, int64_t H,
                    int64_t W, int64_t tiles_x, int64_t tiles_y) {
  using T = at::opmath_type<scalar_t>;
  __shared__ T Kinv[9];
  // step 1 of outputs (x0 - 1 + j, y0 - 1 + i) at [i][j]
  __shared__ Derivatives<T> step1[kHaloH][kHaloW];
  const int64_t tiles = tiles_x * tiles_y;
  const int64_t b = blockIdx.x / tiles, t = blockIdx.x % tiles;
  const int64_t x0 = (t % tiles_x) * kTileW, y0 = (t / tiles_x) * kTileH;
  const int64_t HW = H * W;
  load_inverse(Kinv, K, b);
  const DepthPlane<T, scalar_t> plane{depth + b * HW, W};
  const scalar_t* g = grad_normal + b * 3 * HW;
  for (int k = threadIdx.x; k < kHaloH * kHaloW; k += kThreads) {
    const int i = k / kHaloW, j = k % kHaloW;
    const int64_t x = x0 - 1 + j, y = y0 - 1 + i;
    Derivatives<T> s = {{T(0), T(0), T(0)}, {T(0), T(0), T(0)}};
    if (x >= 0 && x < W && y >= 0 && y < H) {
      const int64_t p = y * W + x;
      const Vec3<T> gn = {static_cast<T>(g[p]), static_cast<T>(g[HW + p]),
                          static_cast<T>(g[2 * HW + p])};
      s = normal_grad(derivatives(Kinv, plane, x, y, H, W), gn);
    }
    step1[i][j] = s;
  }
  __syncthreads();
  const int li = threadIdx.x / kTileW, lj = threadIdx.x % kTileW;
  const int64_t x = x0 + lj, y = y0 + li;
  if (x >= W || y >= H) return;  // after the last barrier
  const auto cols = gather_weights<T>(x, W);
  Derivatives<T> h[3];
  for (int r = 0; r < 3; ++r) h[r] = row_filter(cols, &step1[li + r][lj]);
  const Vec3<T> gp = combine(gather_weights<T>(y, H), h);
  grad_depth[b * HW + y * W + x] = static_cast<scalar_t>(depth_grad(gp, Kinv, T(x), T(y)));
}

}  // namespace scdepth::depth_normals
