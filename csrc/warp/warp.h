// Per-pixel math of the inverse warp, shared by the CPU and the CUDA kernels.
//
// For target pixel (u, v) with depth d:  X = d K^-1 [u, v, 1]^T,  X' = R X + t,
// z' = X'_z,  (u', v') = (K X')_xy / z'. The source is sampled bilinearly at (u', v') with
// pixel centres at integer coordinates and zero padding outside the image, i.e.
// F.grid_sample(..., padding_mode='zeros', align_corners=True).
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

#include "common/camera.h"

namespace scdepth::warp {

// A point is warped only if it lies in front of the source camera: z' > kMinZ.
constexpr double kMinZ = 1e-3;

// Per batch item, in the compute type T. With p = [u, v, 1]^T and M = R K^-1:
// z' = d (M_2 . p) + t_z and (u', v') z' = d (A p) + a, where A = K_01 M and a = K_01 t
// (K_01: the first two rows of K), so a projection costs a few multiply-adds.
template <typename T>
struct Params {
  T Kinv[9];
  T R[9];
  T t[3];
  T K[6];   // K_01
  T M2[3];  // row 2 of R K^-1
  T A[6];   // K_01 R K^-1
  T a[2];   // K_01 t
};

// K: 9 contiguous values (row-major 3x3); pose: 12 contiguous values ([R | t], 3x4).
// A singular K gives non-finite K^-1, so every pixel comes out invalid rather than wrong.
template <typename T, typename S>
C10_HOST_DEVICE inline Params<T> make_params(const S* K, const S* pose) {
  Params<T> p;
  invert_intrinsics(K, p.Kinv);
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) p.R[3 * r + k] = pose[4 * r + k];
    p.t[r] = pose[4 * r + 3];
  }
  for (int k = 0; k < 6; ++k) p.K[k] = K[k];
  T M[9];
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) {
      M[3 * r + k] = p.R[3 * r] * p.Kinv[k] + p.R[3 * r + 1] * p.Kinv[3 + k] +
                     p.R[3 * r + 2] * p.Kinv[6 + k];
    }
  }
  for (int k = 0; k < 3; ++k) p.M2[k] = M[6 + k];
  for (int r = 0; r < 2; ++r) {
    for (int k = 0; k < 3; ++k) {
      p.A[3 * r + k] = p.K[3 * r] * M[k] + p.K[3 * r + 1] * M[3 + k] + p.K[3 * r + 2] * M[6 + k];
    }
    p.a[r] = p.K[3 * r] * p.t[0] + p.K[3 * r + 1] * p.t[1] + p.K[3 * r + 2] * p.t[2];
  }
  return p;
}

template <typename T>
struct Projection {
  T u, v;      // (u', v'): where the pixel lands in the source image
  T z;         // z'
  bool front;  // depth finite and > 0, and z' > kMinZ: only then is the source sampled
};

// The source is sampled only where the depth is finite and > 0 (false for NaN) and the point
// lies in front of the source camera.
template <typename T>
C10_HOST_DEVICE inline bool in_front(T d, T z) {
  return (d > T(0)) & (d < T(INFINITY)) & (z > T(kMinZ));
}

// Branch-free (bitwise &, selects), so that a loop of projections vectorises on the CPU.
template <typename T>
C10_HOST_DEVICE inline Projection<T> project(const Params<T>& p, T d, T u, T v) {
  Projection<T> q;
  q.z = d * (p.M2[0] * u + p.M2[1] * v + p.M2[2]) + p.t[2];
  q.front = in_front(d, q.z);
  const T inv_z = T(1) / (q.front ? q.z : T(1));  // (u', v') are unused when !front
  q.u = (d * (p.A[0] * u + p.A[1] * v + p.A[2]) + p.a[0]) * inv_z;
  q.v = (d * (p.A[3] * u + p.A[4] * v + p.A[5]) + p.a[1]) * inv_z;
  return q;
}

// `valid` output: sampled, and (u', v') inside [0, W-1] x [0, H-1].
template <typename T>
C10_HOST_DEVICE inline bool inside(const Projection<T>& q, int64_t H, int64_t W) {
  return q.front && q.u >= T(0) && q.u <= T(W - 1) && q.v >= T(0) && q.v <= T(H - 1);
}

// The four bilinear corners of (u', v'): flat offsets and weights, weight 0 (and offset 0)
// for corners outside the image. Order: (x0,y0), (x0+1,y0), (x0,y0+1), (x0+1,y0+1).
template <typename T>
struct Corners {
  int64_t off[4];
  T w[4];
  T fx, fy;    // fractional position inside the cell
  bool in[4];  // corner inside the image
  bool any;    // some corner inside: there is something to sample or to scatter
};

// Coordinates are range-checked before the integer conversion, so NaN or huge values are safe.
template <typename T>
C10_HOST_DEVICE inline Corners<T> corners(const Projection<T>& q, int64_t H, int64_t W) {
  Corners<T> c;
  c.any = q.front && q.u > T(-1) && q.u < T(W) && q.v > T(-1) && q.v < T(H);
  // floor(x) for x > -1 as a truncation of x + 1 (one instruction, unlike std::floor on a
  // baseline x86-64 build).
  const int64_t x0 = c.any ? static_cast<int64_t>(q.u + T(1)) - 1 : -2;
  const int64_t y0 = c.any ? static_cast<int64_t>(q.v + T(1)) - 1 : -2;
  c.fx = c.any ? q.u - T(x0) : T(0);
  c.fy = c.any ? q.v - T(y0) : T(0);
  const T wx[2] = {T(1) - c.fx, c.fx}, wy[2] = {T(1) - c.fy, c.fy};
  for (int k = 0; k < 4; ++k) {
    const int64_t x = x0 + (k & 1), y = y0 + (k >> 1);
    c.in[k] = x >= 0 && x < W && y >= 0 && y < H;
    c.off[k] = c.in[k] ? y * W + x : 0;
    c.w[k] = c.in[k] ? wx[k & 1] * wy[k >> 1] : T(0);
  }
  return c;
}

// Bilinear sample of one channel plane (contiguous H x W).
template <typename T, typename S>
C10_HOST_DEVICE inline T sample(const S* plane, const Corners<T>& c) {
  T acc = T(0);
  for (int k = 0; k < 4; ++k) {
    if (c.in[k]) acc += c.w[k] * static_cast<T>(plane[c.off[k]]);
  }
  return acc;
}

// d(sample)/du' and d(sample)/dv' of one channel plane, accumulated times g.
template <typename T, typename S>
C10_HOST_DEVICE inline void sample_grad_uv(const S* plane, const Corners<T>& c, T g, T& gu,
                                           T& gv) {
  T val[4];
  for (int k = 0; k < 4; ++k) val[k] = c.in[k] ? static_cast<T>(plane[c.off[k]]) : T(0);
  gu += g * ((val[1] - val[0]) * (T(1) - c.fy) + (val[3] - val[2]) * c.fy);
  gv += g * ((val[2] - val[0]) * (T(1) - c.fx) + (val[3] - val[1]) * c.fx);
}

// Chain rule from (gu, gv, gz) = dL/d(u', v', z') to dL/d depth (returned) and dL/d[R | t]
// (12 values, row-major, added to gpose).
template <typename T>
C10_HOST_DEVICE inline T backprop_pixel(const Params<T>& p, const Projection<T>& q, T d, T u,
                                        T v, T gu, T gv, T gz, T* gpose) {
  T gXs[3] = {T(0), T(0), gz};  // dL/dX', X' = R X + t
  if (q.front) {
    const T inv_z = T(1) / q.z;  // u' = (K_0 . X') / z', v' = (K_1 . X') / z'
    for (int j = 0; j < 3; ++j) gXs[j] += (gu * p.K[j] + gv * p.K[3 + j]) * inv_z;
    gXs[2] -= (gu * q.u + gv * q.v) * inv_z;
  }
  T ray[3];  // X = d K^-1 [u, v, 1]^T = d ray
  for (int r = 0; r < 3; ++r) ray[r] = scdepth::ray(p.Kinv, r, u, v);
  T gd = T(0);
  for (int r = 0; r < 3; ++r) {
    for (int k = 0; k < 3; ++k) gpose[4 * r + k] += gXs[r] * d * ray[k];
    gpose[4 * r + 3] += gXs[r];
    gd += (p.R[3 * r] * ray[0] + p.R[3 * r + 1] * ray[1] + p.R[3 * r + 2] * ray[2]) * gXs[r];
  }
  return gd;
}

}  // namespace scdepth::warp
