// The launch grid of the CUDA kernels that run one thread per pixel, image by image.
#pragma once

#include <c10/util/Exception.h>

#include <climits>
#include <cstdint>

#include "common/launch.h"

namespace scdepth {

struct PixelGrid {
  int64_t tiles;   // blocks per image
  int64_t blocks;  // B * tiles: one launch's grid, which must fit an int
};

// B images of HW pixels in blocks of `threads` pixels, a block never spanning two images (so
// a block's per-image sums stay its own); `op` names the op in the error of a batch too large.
inline PixelGrid pixel_grid(int64_t B, int64_t HW, int64_t threads, const char* op) {
  const int64_t tiles = ceil_div<int64_t>(HW, threads);
  TORCH_CHECK_VALUE(B * tiles <= INT_MAX, op, ": batch too large for one launch (B = ", B,
                    ", H*W = ", HW, ")");
  return {tiles, B * tiles};
}

}  // namespace scdepth
