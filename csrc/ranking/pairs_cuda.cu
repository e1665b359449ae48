// CUDA entry point of sample_dynamic_pairs: allocations and launches on the current stream;
// the kernels are in pairs_kernels.cuh.
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "common/launch.h"
#include "ranking/pairs_args.h"
#include "ranking/pairs_kernels.cuh"

namespace scdepth::pairs {
namespace {

// launch(blocks, kernel, args...) of pairs_kernels.cuh on `stream`.
struct CudaLaunch {
  cudaStream_t stream;

  template <typename Kernel, typename... Args>
  void operator()(unsigned int blocks, Kernel kernel, Args... args) const {
    kernel<<<blocks, kThreads, 0, stream>>>(args...);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cuda(const at::Tensor& score_,
                                                            const at::Tensor& pseudo_depth_,
                                                            double ratio, double tau,
                                                            int64_t seed) {
  check_args(score_, pseudo_depth_, ratio, tau);
  const c10::cuda::CUDAGuard guard(score_.device());
  const auto score = score_.contiguous(), pd = pseudo_depth_.contiguous();
  const Outputs out = make_outputs(score, ratio);
  const int64_t B = out.B, N = out.N, k = out.k, M = out.M;
  const auto opts = score.options();
  if (B * k == 0) return out.tuple();  // also B = 0 or N <= 1: no launch

  const Tiling tiling = make_tiling(B, N);
  auto stat = at::empty({B, M}, opts.dtype(at::kInt));
  const CudaLaunch launch{at::cuda::getCurrentCUDAStream()};
  SCDEPTH_DISPATCH_FLOATING(score.scalar_type(), "sample_dynamic_pairs_select_cuda", [&] {
    constexpr int P = num_passes<scalar_t>();
    auto hist = at::zeros({B, P, kBins}, opts.dtype(at::kInt));
    auto states = at::empty({B, P, 2}, opts.dtype(at::kLong));  // SelectState per pass
    auto counts = at::empty({B, tiling.tiles, 2}, opts.dtype(at::kLong));
    launch_select(launch, score.const_data_ptr<scalar_t>(), B, N, k, tiling,
                  reinterpret_cast<unsigned int*>(hist.mutable_data_ptr<int32_t>()),
                  reinterpret_cast<SelectState*>(states.mutable_data_ptr<int64_t>()),
                  counts.mutable_data_ptr<int64_t>(), out.idx_a.mutable_data_ptr<int64_t>(),
                  stat.mutable_data_ptr<int32_t>());
  });
  SCDEPTH_DISPATCH_FLOATING(pd.scalar_type(), "sample_dynamic_pairs_partners_cuda", [&] {
    launch_partners(launch, pd.const_data_ptr<scalar_t>(), out.idx_a.const_data_ptr<int64_t>(),
                    stat.const_data_ptr<int32_t>(), out.idx_b.mutable_data_ptr<int64_t>(),
                    out.label.mutable_data_ptr<int8_t>(), B, N, k, static_cast<uint64_t>(seed),
                    tau);
  });
  return out.tuple();
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CUDA, m) {
  m.impl("sample_dynamic_pairs", &forward_cuda);
}

}  // namespace scdepth::pairs
