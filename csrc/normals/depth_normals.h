// Per-pixel math of depth_normals, SC-DepthV3's surface normals from depth, shared by the CPU
// and the CUDA kernels.
//
// P(x, y) = d(x, y) K^-1 [x, y, 1]^T is the point of pixel (x, y) (common/camera.h), taken at
// clamped coordinates (replicate padding). Its derivatives are the normalised Sobel filter,
//   du = (U(y-1) + 2 U(y) + U(y+1)) / 8,   U(r) = P(x+1, r) - P(x-1, r)
//   dv = (V(x-1) + 2 V(x) + V(x+1)) / 8,   V(c) = P(c, y+1) - P(c, y-1)
// in this order of operations (the reference's), and the normal is N = n / sqrt(max(|n|^2,
// eps^2)) with n = du x dv.
//
// The backward needs no atomics: (1) per output pixel, dL/d(du) and dL/d(dv) from dL/dN
// (normal_grad, the forward recomputed); (2) per depth pixel q, dL/dP(q) gathered from the
// 3 x 3 outputs whose stencil reads q (gather_weights, combine), and dL/dd(q) = dL/dP(q) . ray.
// Sobel is separable: du's stencil is the smoothing kernel [1, 2, 1] along y times the
// difference kernel [-1, 0, 1] along x, dv's the other way round, so step (2) is a 3-tap filter
// along each row of dL/d(du), dL/d(dv) (row_filter) followed by a 3-tap sum over rows.
#pragma once

#include <c10/macros/Macros.h>

#include <cmath>
#include <cstdint>

#include "common/camera.h"

// Every function here is always inlined: the CPU's row loops call them per pixel, and gcc
// vectorises a loop only when its calls are inlined before it breaks up their structs.

namespace scdepth::depth_normals {

constexpr double kEps = 1e-8;          // |n|^2 is clamped at eps^2 (the reference's eps)
constexpr double kSobelScale = 0.125;  // 1 / 8: the absolute weights of each filter sum to 1

template <typename T>
struct Vec3 {
  T x, y, z;
};

template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> operator-(const Vec3<T>& a, const Vec3<T>& b) {
  return {a.x - b.x, a.y - b.y, a.z - b.z};
}

template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> operator+(const Vec3<T>& a, const Vec3<T>& b) {
  return {a.x + b.x, a.y + b.y, a.z + b.z};
}

template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> operator*(T s, const Vec3<T>& a) {
  return {s * a.x, s * a.y, s * a.z};
}

template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE T dot(const Vec3<T>& a, const Vec3<T>& b) {
  return a.x * b.x + a.y * b.y + a.z * b.z;
}

template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> cross(const Vec3<T>& a, const Vec3<T>& b) {
  return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

C10_HOST_DEVICE C10_ALWAYS_INLINE int64_t clamp_index(int64_t i, int64_t n) {
  return i < 0 ? 0 : (i >= n ? n - 1 : i);
}

// The ray K^-1 [x, y, 1]^T of pixel (x, y), and the point of depth d there.
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> ray3(const T* Kinv, T x, T y) {
  return {ray(Kinv, 0, x, y), ray(Kinv, 1, x, y), ray(Kinv, 2, x, y)};
}

template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> point(const T* Kinv, T d, T x, T y) {
  return d * ray3(Kinv, x, y);
}

// The Sobel filter along one axis: (a + 2 b + c) / 8 of the central differences at offsets
// -1, 0, +1 across it.
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> smooth(const Vec3<T>& a, const Vec3<T>& b,
                                                  const Vec3<T>& c) {
  return T(kSobelScale) * (a + T(2) * b + c);
}

// du and dv, or what belongs to each of them (their gradients, those filtered along a row).
template <typename T>
struct Derivatives {
  Vec3<T> du, dv;
};

// du and dv of output pixel (x, y) of an H x W image; depth(x, y) reads the depth of an
// in-image pixel in the compute type T.
template <typename T, typename Depth>
C10_HOST_DEVICE C10_ALWAYS_INLINE Derivatives<T> derivatives(const T* Kinv, const Depth& depth,
                                                             int64_t x, int64_t y, int64_t H,
                                                             int64_t W) {
  const int64_t xs[3] = {clamp_index(x - 1, W), x, clamp_index(x + 1, W)};
  const int64_t ys[3] = {clamp_index(y - 1, H), y, clamp_index(y + 1, H)};
  const auto P = [&](int i, int j) {  // the point at (xs[i], ys[j])
    return point(Kinv, depth(xs[i], ys[j]), T(xs[i]), T(ys[j]));
  };
  Vec3<T> U[3], V[3];
  for (int j = 0; j < 3; ++j) U[j] = P(2, j) - P(0, j);
  for (int i = 0; i < 3; ++i) V[i] = P(i, 2) - P(i, 0);
  return {smooth(U[0], U[1], U[2]), smooth(V[0], V[1], V[2])};
}

// 1 / sqrt(max(s, eps^2)); NaN stays NaN, as with torch.clamp_min.
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE T inverse_norm(T s) {
  const T floor = T(kEps * kEps);
  return T(1) / std::sqrt(s < floor ? floor : s);
}

template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> unit_normal(const Derivatives<T>& d) {
  const Vec3<T> n = cross(d.du, d.dv);
  return inverse_norm(dot(n, n)) * n;
}

// dL/d(du) and dL/d(dv) from g = dL/dN. With k = 1 / sqrt(max(|n|^2, eps^2)):
// dL/dn = k g - k^3 (g . n) n, the second term only where |n|^2 >= eps^2 (the clamp passes no
// gradient below eps^2, as torch.clamp_min); n = du x dv, so dL/d(du) = dv x dL/dn and
// dL/d(dv) = dL/dn x du.
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Derivatives<T> normal_grad(const Derivatives<T>& d,
                                                             const Vec3<T>& g) {
  const Vec3<T> n = cross(d.du, d.dv);
  const T s = dot(n, n);
  const T k = inverse_norm(s);
  const T through_norm = s >= T(kEps * kEps) ? k * k * k * dot(g, n) : T(0);
  const Vec3<T> gn = k * g - through_norm * n;
  return {cross(d.dv, gn), cross(gn, d.du)};
}

// The weight with which output pixel p reads pixel p + o (o in {-1, 0, 1}) along an axis of n
// pixels, for the 3-tap kernel w over slots -1, 0, +1 with replicate padding: the sum of w[i]
// over the slots i with clamp(p + i) = p + o (a border pixel fills several slots of the
// outputs beside it, and a 1-pixel axis all three).
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE T folded_weight(const T w[3], int64_t p, int o, int64_t n) {
  T s = T(0);
  for (int i = -1; i <= 1; ++i) {
    if (clamp_index(p + i, n) == p + o) s += w[i + 1];
  }
  return s;
}

// The weights with which pixel q gathers from the outputs q + c (c = -1, 0, +1, index c + 1)
// along an axis of n pixels: of the smoothing and of the difference kernel; 0 for outputs
// outside the image.
template <typename T>
struct GatherWeights {
  T smooth[3], diff[3];
};

template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE GatherWeights<T> gather_weights(int64_t q, int64_t n) {
  const T smooth[3] = {T(1), T(2), T(1)}, diff[3] = {T(-1), T(0), T(1)};
  GatherWeights<T> w;
  for (int c = -1; c <= 1; ++c) {
    const int64_t p = q + c;
    const bool inside = p >= 0 && p < n;
    w.smooth[c + 1] = inside ? folded_weight(smooth, p, -c, n) : T(0);
    w.diff[c + 1] = inside ? folded_weight(diff, p, -c, n) : T(0);
  }
  return w;
}

// The 3-tap sum along a row: w[0] a + w[1] b + w[2] c, for the outputs at x - 1, x, x + 1
// (zero outside the image).
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> taps(const T w[3], const Vec3<T>& a, const Vec3<T>& b,
                                                const Vec3<T>& c) {
  return w[0] * a + w[1] * b + w[2] * c;
}

// One row of step (2) along x: what the outputs of a row give pixel x through du (the
// difference kernel along x applied to dL/d(du)) and through dv (the smoothing kernel applied
// to dL/d(dv)). g[k] holds the outputs x - 1, x, x + 1.
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Derivatives<T> row_filter(const GatherWeights<T>& cols,
                                                            const Derivatives<T> g[3]) {
  return {taps(cols.diff, g[0].du, g[1].du, g[2].du),
          taps(cols.smooth, g[0].dv, g[1].dv, g[2].dv)};
}

// dL/dP of pixel q from the row_filter results h[r] of rows q_y - 1, q_y, q_y + 1: du's
// stencil smooths along y, dv's differences along y.
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE Vec3<T> combine(const GatherWeights<T>& rows,
                                                   const Derivatives<T> h[3]) {
  Vec3<T> acc = {T(0), T(0), T(0)};
  for (int r = 0; r < 3; ++r) acc = acc + rows.smooth[r] * h[r].du + rows.diff[r] * h[r].dv;
  return T(kSobelScale) * acc;
}

// dL/dd of pixel (x, y) from dL/dP there: P = d ray.
template <typename T>
C10_HOST_DEVICE C10_ALWAYS_INLINE T depth_grad(const Vec3<T>& grad_point, const T* Kinv, T x,
                                               T y) {
  return dot(grad_point, ray3(Kinv, x, y));
}

}  // namespace scdepth::depth_normals
