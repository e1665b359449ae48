// inverse_warp's CUDA kernels (csrc/warp/warp_kernels.cuh) run on the host through
// tests/simt/cuda_runtime.h:
//   warp_cuda_host DTYPE B C H W GRAD_FROM IN OUT
// DTYPE: f32 or f64. GRAD_FROM: the first channel whose source gradient is computed. IN: src [B, C, H, W], depth [B, 1, H, W], pose [B, 3, 4], K [B, 3, 3],
// grad_warped [B, C, H, W] and grad_z [B, 1, H, W], raw and concatenated. OUT: warped,
// computed_depth, valid, then grad_src, grad_depth and grad_pose (the per-block partial sums
// added up, as warp_cuda.cu's second pass does), concatenated in the same dtype.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "simt/raw_files.h"
#include "warp/warp_kernels.cuh"

using namespace scdepth::warp;

namespace {

template <typename T>
int run(int64_t B, int64_t C, int64_t H, int64_t W, int64_t grad_from, const char* in,
        const char* out) {
  const int64_t img = B * C * H * W, map = B * H * W;
  const int64_t sizes[] = {img, map, B * 12, B * 9, img, map};
  int64_t total = 0;
  for (int64_t n : sizes) total += n;
  std::vector<T> data(total);
  if (!simt::read_raw(in, data)) return 2;
  const T* src = data.data();
  const T *depth = src + img, *pose = depth + map, *K = pose + B * 12;
  const T *gw = K + B * 9, *gz = gw + img;

  const Grid grid = make_grid(B, H * W);
  std::vector<T> result(img + 2 * map + img + map + B * 12, T(0));
  T *warped = result.data(), *zo = warped + img, *va = zo + map;
  T *grad_src = va + map, *grad_depth = grad_src + img, *grad_pose = grad_depth + map;
  simt::launch(grid.blocks, kThreads, forward_kernel<T>, src, depth, pose, K, warped, zo, va, C,
               H, W, grid.tiles);
  std::vector<T> partial(grid.blocks * 12);
  simt::launch(grid.blocks, kThreads, backward_kernel<T>, gw, gz, src, depth, pose, K, grad_src,
               grad_depth, partial.data(), C, H, W, grid.tiles, grad_from);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < grid.tiles; ++t) {
      for (int k = 0; k < 12; ++k) grad_pose[b * 12 + k] += partial[(b * grid.tiles + t) * 12 + k];
    }
  }
  return simt::write_raw(out, result) ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: %s DTYPE B C H W GRAD_FROM IN OUT\n", argv[0]);
    return 2;
  }
  const std::string dtype = argv[1];
  const int64_t B = std::atoll(argv[2]), C = std::atoll(argv[3]);
  const int64_t H = std::atoll(argv[4]), W = std::atoll(argv[5]);
  const int64_t grad_from = std::atoll(argv[6]);
  if (dtype == "f32") return run<float>(B, C, H, W, grad_from, argv[7], argv[8]);
  if (dtype == "f64") return run<double>(B, C, H, W, grad_from, argv[7], argv[8]);
  std::fprintf(stderr, "unknown dtype %s\n", dtype.c_str());
  return 2;
}
