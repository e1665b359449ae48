// normal_rank_error's CUDA kernels (csrc/normals/normal_rank_kernels.cuh) run on the host
// through tests/simt/cuda_runtime.h:
//   normal_rank_cuda_host DTYPE S B H W M IN OUT
// DTYPE: f32 or f64. IN, raw and concatenated: normal and pseudo_normal [B, 3, H, W], weight
// and grad_error [S, B, M] in DTYPE, then points [S, 4, B, M] int64, then valid [B, H, W] as
// one byte each. OUT: error, pair_weight [S, B, M], pair_slope [S, B, M, 3] and grad_normal
// [B, 3, H, W], in DTYPE.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "normals/normal_rank_kernels.cuh"
#include "simt/raw_files.h"

using namespace scdepth::normals;

namespace {

template <typename T>
int run(int64_t S, int64_t B, int64_t H, int64_t W, int64_t M, const char* in, const char* out) {
  const int64_t HW = H * W, img = B * 3 * HW, anchors = S * B * M;
  std::vector<T> floats(2 * img + 2 * anchors);
  std::vector<int64_t> points(anchors * kPoints);
  std::vector<unsigned char> bytes(B * HW);
  if (!simt::read_raw(in, floats, points, bytes)) return 2;
  std::vector<char> valid_storage(B * HW);
  bool* valid = reinterpret_cast<bool*>(valid_storage.data());
  for (int64_t i = 0; i < B * HW; ++i) valid[i] = bytes[i] != 0;
  const T *normal = floats.data(), *pseudo = normal + img;
  const T *weight = pseudo + img, *grad_error = weight + anchors;

  std::vector<T> result(5 * anchors + img, T(0));
  T *error = result.data(), *pair_weight = error + anchors, *pair_slope = pair_weight + anchors;
  T* grad = pair_slope + kPairs * anchors;
  const int64_t blocks = (anchors + kThreads - 1) / kThreads;
  simt::launch(blocks, kThreads, forward_kernel<T>, normal, pseudo, valid, points.data(),
               weight, error, pair_weight, pair_slope, B, M, HW, anchors);
  simt::launch(blocks, kThreads, backward_kernel<T>, grad_error, normal, points.data(),
               static_cast<const T*>(pair_slope), grad, B, M, HW, anchors);
  return simt::write_raw(out, result) ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 9) {
    std::fprintf(stderr, "usage: %s DTYPE S B H W M IN OUT\n", argv[0]);
    return 2;
  }
  const std::string dtype = argv[1];
  const int64_t S = std::atoll(argv[2]), B = std::atoll(argv[3]), H = std::atoll(argv[4]);
  const int64_t W = std::atoll(argv[5]), M = std::atoll(argv[6]);
  if (dtype == "f32") return run<float>(S, B, H, W, M, argv[7], argv[8]);
  if (dtype == "f64") return run<double>(S, B, H, W, M, argv[7], argv[8]);
  std::fprintf(stderr, "unknown dtype %s\n", dtype.c_str());
  return 2;
}
