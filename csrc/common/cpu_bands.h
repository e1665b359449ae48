// How the CPU kernels that run over bands of rows cut an image batch into tasks.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "common/launch.h"

namespace scdepth {

struct Bands {
  int64_t rows;       // rows per band
  int64_t per_image;  // bands per image
  int64_t tasks;      // B * per_image
};

// About four tasks per thread, so that uneven bands even out, with min_rows..max_rows rows
// each: the op's own trade-off (what a band recomputes at its edges, or how far a running sum
// may go).
inline Bands make_bands(int64_t B, int64_t H, int64_t min_rows, int64_t max_rows) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t rows = std::clamp<int64_t>(ceil_div<int64_t>(B * H, 4 * threads), min_rows,
                                           max_rows);
  const int64_t per_image = ceil_div<int64_t>(H, rows);
  return {rows, per_image, B * per_image};
}

}  // namespace scdepth
