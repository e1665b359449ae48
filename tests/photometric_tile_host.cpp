// Runs the CUDA kernels' tile code (csrc/photometric/photometric_tile.h) on the host, block
// after block with one thread per block, for tests/test_photometric.py (loaded with ctypes).
// Shared memory is filled with NaN before every block, between guard zones that must still
// hold NaN afterwards: a read of shared memory no phase wrote poisons the result, and a write
// outside the tile's layout is reported.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "photometric/photometric_tile.h"

namespace {

using namespace scdepth::photometric;

struct SerialBlock {
  int tid = 0, threads = 1;
  void sync() const {}
};

constexpr int64_t kGuard = 4096;

template <typename T>
struct Smem {
  explicit Smem(int64_t elems) : buf(elems + 2 * kGuard), elems(elems) {}
  T* reset() {
    std::fill(buf.begin(), buf.end(), std::numeric_limits<T>::quiet_NaN());
    return buf.data() + kGuard;
  }
  bool guards_intact() const {
    for (int64_t i = 0; i < kGuard; ++i) {
      if (!std::isnan(buf[i]) || !std::isnan(buf[kGuard + elems + i])) return false;
    }
    return true;
  }
  std::vector<T> buf;
  int64_t elems;
};

// Returns 0, or 1 when a block wrote outside its shared memory.
template <typename T>
int forward(const T* x, const T* y, const T* w, T* photo, T* l1, int64_t B, int64_t C,
            int64_t H, int64_t W, int k, double alpha) {
  constexpr int TH = tile_rows<T>;
  const int64_t tiles_y = (H + TH - 1) / TH, tiles_x = (W + kTileW - 1) / kTileW, HW = H * W;
  Smem<T> smem(forward_smem_elems<TH>(k / 2));
  for (int64_t block = 0; block < B * tiles_y * tiles_x; ++block) {
    const Tile t = tile_of<TH>(block, tiles_y, tiles_x);
    forward_tile<TH>(SerialBlock{}, smem.reset(), x + t.b * C * HW, y + t.b * C * HW,
                     w != nullptr ? w + t.b * HW : nullptr, photo + t.b * HW, l1 + t.b * HW, C,
                     H, W, k, static_cast<T>(alpha), t.ty0, t.tx0);
    if (!smem.guards_intact()) return 1;
  }
  return 0;
}

template <typename T>
int backward(const T* gp, const T* gl1, const T* x, const T* y, const T* w, T* gx, T* gy, T* gw,
             int64_t B, int64_t C, int64_t H, int64_t W, int k, double alpha) {
  constexpr int TH = tile_rows<T>;
  const int64_t tiles_y = (H + TH - 1) / TH, tiles_x = (W + kTileW - 1) / kTileW, HW = H * W;
  Smem<T> smem(backward_smem_elems<TH>(k / 2));
  for (int64_t block = 0; block < B * tiles_y * tiles_x; ++block) {
    const Tile t = tile_of<TH>(block, tiles_y, tiles_x);
    const int64_t planes = t.b * C * HW;
    backward_tile<TH>(SerialBlock{}, smem.reset(), gp + t.b * HW, gl1 + t.b * HW, x + planes,
                      y + planes, w != nullptr ? w + t.b * HW : nullptr, gx + planes,
                      gy + planes, gw != nullptr ? gw + t.b * HW : nullptr, C, H, W, k,
                      static_cast<T>(alpha), t.ty0, t.tx0);
    if (!smem.guards_intact()) return 1;
  }
  return 0;
}

}  // namespace

extern "C" {

int tile_forward_f32(const float* x, const float* y, const float* w, float* photo, float* l1,
                     int64_t B, int64_t C, int64_t H, int64_t W, int k, double alpha) {
  return forward(x, y, w, photo, l1, B, C, H, W, k, alpha);
}

int tile_forward_f64(const double* x, const double* y, const double* w, double* photo,
                     double* l1, int64_t B, int64_t C, int64_t H, int64_t W, int k,
                     double alpha) {
  return forward(x, y, w, photo, l1, B, C, H, W, k, alpha);
}

int tile_backward_f32(const float* gp, const float* gl1, const float* x, const float* y,
                      const float* w, float* gx, float* gy, float* gw, int64_t B, int64_t C,
                      int64_t H, int64_t W, int k, double alpha) {
  return backward(gp, gl1, x, y, w, gx, gy, gw, B, C, H, W, k, alpha);
}

int tile_backward_f64(const double* gp, const double* gl1, const double* x, const double* y,
                      const double* w, double* gx, double* gy, double* gw, int64_t B, int64_t C,
                      int64_t H, int64_t W, int k, double alpha) {
  return backward(gp, gl1, x, y, w, gx, gy, gw, B, C, H, W, k, alpha);
}

}  // extern "C"
