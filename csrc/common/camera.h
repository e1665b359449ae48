// The pinhole camera's back-projection, shared by the ops that lift depth to 3-D points
// (inverse_warp, depth_normals) on the CPU and on CUDA: one K^-1 and one ray per pixel, so that
// every op computes the same points to the bit.
#pragma once

#include <c10/macros/Macros.h>

namespace scdepth {

// K^-1 (row-major) of K (9 contiguous values, row-major) from its cofactors, in the compute
// type T. A singular K gives non-finite entries; scdepth.ops._checks.check_intrinsics rejects
// such a K (and one whose inverse overflows T) before the kernels run.
template <typename T, typename S>
C10_HOST_DEVICE inline void invert_intrinsics(const S* K, T* Kinv) {
  const T a = K[0], b = K[1], c = K[2], d = K[3], e = K[4], f = K[5];
  const T g = K[6], h = K[7], i = K[8];
  const T A = e * i - f * h, B = f * g - d * i, C = d * h - e * g;
  const T inv_det = T(1) / (a * A + b * B + c * C);
  Kinv[0] = A * inv_det;
  Kinv[1] = (c * h - b * i) * inv_det;
  Kinv[2] = (b * f - c * e) * inv_det;
  Kinv[3] = B * inv_det;
  Kinv[4] = (a * i - c * g) * inv_det;
  Kinv[5] = (c * d - a * f) * inv_det;
  Kinv[6] = C * inv_det;
  Kinv[7] = (b * g - a * h) * inv_det;
  Kinv[8] = (a * e - b * d) * inv_det;
}

// Component r of the ray K^-1 [u, v, 1]^T of pixel (u, v) (pixel centres at integer
// coordinates); the point of depth d is d times the ray.
template <typename T>
C10_HOST_DEVICE inline T ray(const T* Kinv, int r, T u, T v) {
  return Kinv[3 * r] * u + Kinv[3 * r + 1] * v + Kinv[3 * r + 2];
}

}  // namespace scdepth
