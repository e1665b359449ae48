// depth_normals' CUDA kernels (csrc/normals/depth_normals_kernels.cuh) run on the host through
// tests/simt/cuda_runtime.h:
//   depth_normals_cuda_host DTYPE B H W IN OUT
// DTYPE: f32 or f64. IN, raw and concatenated in DTYPE: depth [B, 1, H, W], K [B, 3, 3],
// grad_normal [B, 3, H, W]. OUT: normal [B, 3, H, W], then grad_depth [B, 1, H, W], in DTYPE.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "normals/depth_normals_kernels.cuh"
#include "simt/raw_files.h"

using namespace scdepth::depth_normals;

namespace {

template <typename T>
int run(int64_t B, int64_t H, int64_t W, const char* in, const char* out) {
  const int64_t HW = H * W;
  std::vector<T> inputs(B * HW + 9 * B + 3 * B * HW);
  if (!simt::read_raw(in, inputs)) return 2;
  const T *depth = inputs.data(), *K = depth + B * HW, *grad_normal = K + 9 * B;

  std::vector<T> result(4 * B * HW, T(0));
  T *normal = result.data(), *grad_depth = normal + 3 * B * HW;
  const auto fg = forward_grid(B, HW);
  simt::launch(fg.blocks, kThreads, forward_kernel<T>, depth, K, normal, H, W, fg.tiles);
  const auto bg = backward_grid(B, H, W);
  simt::launch(bg.blocks, kThreads, backward_kernel<T>, grad_normal, depth, K, grad_depth, H, W,
               bg.tiles_x, bg.tiles_y);
  return simt::write_raw(out, result) ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s DTYPE B H W IN OUT\n", argv[0]);
    return 2;
  }
  const std::string dtype = argv[1];
  const int64_t B = std::atoll(argv[2]), H = std::atoll(argv[3]), W = std::atoll(argv[4]);
  if (dtype == "f32") return run<float>(B, H, W, argv[5], argv[6]);
  if (dtype == "f64") return run<double>(B, H, W, argv[5], argv[6]);
  std::fprintf(stderr, "unknown dtype %s\n", dtype.c_str());
  return 2;
}
