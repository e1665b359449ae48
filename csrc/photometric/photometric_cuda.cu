// CUDA kernels of photometric_error: one block per 2-D output tile (photometric_tile.h), the
// tile's input and halo staged in shared memory, all five window statistics from one separable
// pass (horizontal sums of the halo rows, then vertical sums), the channel loop inside the
// block. The per-pixel math is photometric.h's, shared with the CPU kernels.
//
// Backward is a gather: a block owns a tile of source pixels, recomputes the statistics of the
// output pixels within p of it (from x and y with a 2p halo), forms their four adjoint
// coefficients and sums them over the windows containing each source pixel (reflections
// counted by reflect_multiplicity). Every gradient element has one writer: no atomics, and the
// result is deterministic.
//
// Recompute vs saved form, in bytes per pixel of DRAM traffic (e = element size, C channels;
// 3 channels of float32 in brackets):
//   forward reads x, y, weight and writes photo, l1:                     (2C + 3) e  [36 B]
//   backward recomputing the statistics reads x, y, weight, grad_photo, grad_l1 and writes
//   grad_x, grad_y, grad_weight:                                          (4C + 4) e  [64 B]
//   saving a compact form instead (SSIM's four partial derivatives per channel, masks folded
//   in): forward writes 4C e more, backward still reads x and y (dL/dx needs x and y) plus the
//   4C saved maps:                        forward (6C + 3) e [84 B], backward (8C + 4) e [112 B]
// i.e. 96 B/pixel more traffic at C = 3 (+96%), and 48 B/pixel of memory held from forward to
// backward (41 MB at KITTI size). The recomputation is a few dozen flops per pixel on data
// already in shared memory, far below what the bandwidth leaves idle, so backward recomputes.
// The halo is re-read from L2: (TH + 2p)(32 + 2p) / (32 TH) loads per pixel in forward (1.2 at
// k = 3, TH = 16), (TH + 4p)(32 + 4p) / (32 TH) in backward (2.4 at k = 7).
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <climits>

#include "common/launch.h"
#include "photometric/photometric.h"
#include "photometric/photometric_args.h"
#include "photometric/photometric_tile.h"

namespace scdepth::photometric {
namespace {

constexpr int kThreads = 256;  // per block: 8 rows of a 32-column tile per pass
static_assert(kThreads % kTileW == 0, "a pass covers whole tile rows");
constexpr size_t kDefaultSmem = 48 * 1024;  // beyond this a kernel must opt in

// The Block of photometric_tile.h for a CUDA thread block.
struct CudaBlock {
  int tid, threads;
  C10_HOST_DEVICE void sync() const {
#ifdef __CUDA_ARCH__
    __syncthreads();
#endif
  }
};

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                   const scalar_t* __restrict__ w, scalar_t* __restrict__ photo,
                   scalar_t* __restrict__ l1, int64_t C, int64_t H, int64_t W, int k,
                   at::opmath_type<scalar_t> alpha, int64_t tiles_y, int64_t tiles_x) {
  using T = at::opmath_type<scalar_t>;
  constexpr int TH = tile_rows<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  const Tile t = tile_of<TH>(blockIdx.x, tiles_y, tiles_x);
  const int64_t HW = H * W;
  forward_tile<TH>(CudaBlock{static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x)},
                   reinterpret_cast<T*>(smem), x + t.b * C * HW, y + t.b * C * HW,
                   w != nullptr ? w + t.b * HW : nullptr, photo + t.b * HW, l1 + t.b * HW, C,
                   H, W, k, alpha, t.ty0, t.tx0);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const scalar_t* __restrict__ gp, const scalar_t* __restrict__ gl1,
                    const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                    const scalar_t* __restrict__ w, scalar_t* __restrict__ grad_x,
                    scalar_t* __restrict__ grad_y, scalar_t* __restrict__ grad_w, int64_t C,
                    int64_t H, int64_t W, int k, at::opmath_type<scalar_t> alpha,
                    int64_t tiles_y, int64_t tiles_x) {
  using T = at::opmath_type<scalar_t>;
  constexpr int TH = tile_rows<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  const Tile t = tile_of<TH>(blockIdx.x, tiles_y, tiles_x);
  const int64_t HW = H * W, planes = t.b * C * HW;
  backward_tile<TH>(CudaBlock{static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x)},
                    reinterpret_cast<T*>(smem), gp + t.b * HW, gl1 + t.b * HW, x + planes,
                    y + planes, w != nullptr ? w + t.b * HW : nullptr, grad_x + planes,
                    grad_y + planes, grad_w != nullptr ? grad_w + t.b * HW : nullptr, C, H, W,
                    k, alpha, t.ty0, t.tx0);
}

// Tiles of the grid (the batch folded into x: no gridDim.y/z limit) and dynamic shared memory.
struct Launch {
  int64_t tiles_y, tiles_x;
  unsigned int blocks;
  size_t smem;
};

template <typename T>
Launch make_launch(int64_t B, int64_t H, int64_t W, int64_t smem_elems) {
  constexpr int TH = tile_rows<T>;
  const int64_t tiles_y = ceil_div<int64_t>(H, TH), tiles_x = ceil_div<int64_t>(W, kTileW);
  const int64_t blocks = B * tiles_y * tiles_x;
  TORCH_CHECK_VALUE(blocks <= INT_MAX, "photometric_error: batch too large for one launch (B = ",
                    B, ", H = ", H, ", W = ", W, ")");
  return {tiles_y, tiles_x, static_cast<unsigned int>(blocks),
          static_cast<size_t>(smem_elems) * sizeof(T)};
}

// Lets `kernel` use `bytes` of dynamic shared memory (an opt-in beyond 48 KiB).
template <typename Kernel>
void allow_smem(Kernel* kernel, size_t bytes, int64_t window) {
  if (bytes <= kDefaultSmem) return;
  const size_t limit = at::cuda::getCurrentDeviceProperties()->sharedMemPerBlockOptin;
  TORCH_CHECK(bytes <= limit, "photometric_error: window ", window, " needs ", bytes,
              " bytes of shared memory per block, the device allows ", limit);
  C10_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& tgt_, const at::Tensor& warped_,
                                                const std::optional<at::Tensor>& weight_,
                                                double alpha, int64_t window) {
  check_args(tgt_, warped_, weight_, alpha, window);
  const c10::cuda::CUDAGuard guard(tgt_.device());
  const auto tgt = tgt_.contiguous(), warped = warped_.contiguous();
  const auto weight = weight_.has_value() && weight_->defined() ? weight_->contiguous()
                                                                 : at::Tensor();
  const int64_t B = tgt.size(0), C = tgt.size(1), H = tgt.size(2), W = tgt.size(3);
  auto photo = at::empty({B, 1, H, W}, tgt.options());
  auto l1 = at::empty({B, 1, H, W}, tgt.options());
  if (B == 0) return {photo, l1};
  const int p = static_cast<int>(window / 2);
  auto stream = at::cuda::getCurrentCUDAStream();
  SCDEPTH_DISPATCH_FLOATING(tgt.scalar_type(), "photometric_error_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    const Launch l = make_launch<T>(B, H, W, forward_smem_elems<tile_rows<T>>(p));
    allow_smem(forward_kernel<scalar_t>, l.smem, window);
    forward_kernel<scalar_t><<<l.blocks, kThreads, l.smem, stream>>>(
        tgt.const_data_ptr<scalar_t>(), warped.const_data_ptr<scalar_t>(),
        weight.defined() ? weight.const_data_ptr<scalar_t>() : nullptr,
        photo.mutable_data_ptr<scalar_t>(), l1.mutable_data_ptr<scalar_t>(), C, H, W,
        static_cast<int>(window), static_cast<T>(alpha), l.tiles_y, l.tiles_x);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {photo, l1};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cuda(
    const at::Tensor& grad_photo_, const at::Tensor& grad_l1_, const at::Tensor& tgt_,
    const at::Tensor& warped_, const std::optional<at::Tensor>& weight_, double alpha,
    int64_t window) {
  check_backward_args(grad_photo_, grad_l1_, tgt_, warped_, weight_, alpha, window);
  const c10::cuda::CUDAGuard guard(tgt_.device());
  const auto grad_photo = grad_photo_.contiguous(), grad_l1 = grad_l1_.contiguous();
  const auto tgt = tgt_.contiguous(), warped = warped_.contiguous();
  const bool has_weight = weight_.has_value() && weight_->defined();
  const auto weight = has_weight ? weight_->contiguous() : at::Tensor();
  const int64_t B = tgt.size(0), C = tgt.size(1), H = tgt.size(2), W = tgt.size(3);
  auto grad_tgt = at::empty(tgt.sizes(), tgt.options());
  auto grad_warped = at::empty(tgt.sizes(), tgt.options());
  auto grad_weight = has_weight ? at::empty(weight.sizes(), tgt.options())
                                : at::empty({0}, tgt.options());
  if (B == 0) return {grad_tgt, grad_warped, grad_weight};
  const int p = static_cast<int>(window / 2);
  auto stream = at::cuda::getCurrentCUDAStream();
  SCDEPTH_DISPATCH_FLOATING(tgt.scalar_type(), "photometric_error_backward_cuda", [&] {
    using T = at::opmath_type<scalar_t>;
    const Launch l = make_launch<T>(B, H, W, backward_smem_elems<tile_rows<T>>(p));
    allow_smem(backward_kernel<scalar_t>, l.smem, window);
    backward_kernel<scalar_t><<<l.blocks, kThreads, l.smem, stream>>>(
        grad_photo.const_data_ptr<scalar_t>(), grad_l1.const_data_ptr<scalar_t>(),
        tgt.const_data_ptr<scalar_t>(), warped.const_data_ptr<scalar_t>(),
        has_weight ? weight.const_data_ptr<scalar_t>() : nullptr,
        grad_tgt.mutable_data_ptr<scalar_t>(), grad_warped.mutable_data_ptr<scalar_t>(),
        has_weight ? grad_weight.mutable_data_ptr<scalar_t>() : nullptr, C, H, W,
        static_cast<int>(window), static_cast<T>(alpha), l.tiles_y, l.tiles_x);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_tgt, grad_warped, grad_weight};
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CUDA, m) {
  m.impl("photometric_error", &forward_cuda);
  m.impl("photometric_error_backward", &backward_cuda);
}

}  // namespace scdepth::photometric
