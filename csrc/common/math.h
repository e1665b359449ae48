// Small scalar helpers shared by the per-pixel math of several ops (CPU and CUDA).
#pragma once

#include <c10/macros/Macros.h>

namespace scdepth {

// sign(v) as torch.sgn / the gradient of torch.abs: 0 at 0 (and for NaN).
template <typename T>
C10_HOST_DEVICE inline T sign(T v) {
  return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));
}

}  // namespace scdepth
