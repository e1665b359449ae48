// Per-anchor math of SC-DepthV3's edge-guided normal ranking loss, shared by the CPU and the
// CUDA kernels.
//
// An anchor has four points a, b, c, d (pixel indices of one image) and a weight w; its pairs
// are (a, b), (b, c), (c, d). A pair counts when both of its pixels are valid (a finite,
// positive pseudo-depth); its error is | |n_i . n_j| - |p_i . p_j| |, n the predicted and p
// the pseudo normals. The anchor's error is w times the sum over its counted pairs, its pair
// weight w times their number. Normals are read through an accessor (PlanarNormals below for
// [B, 3, H, W] planes; the CPU packs a pixel's values into one line). An invalid pixel's
// normals are never read.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>

#include "common/math.h"

namespace scdepth::normals {

constexpr int kPoints = 4;  // a, b, c, d
constexpr int kPairs = 3;   // (a, b), (b, c), (c, d)

template <typename T>
C10_HOST_DEVICE inline T abs_of(T x) {
  return x < T(0) ? -x : x;
}

// The normals of one image in [3, H, W] planes: component k of pixel i at plane[k * HW + i].
template <typename S>
struct PlanarNormals {
  const S* normal;
  const S* pseudo;
  const bool* valid;
  int64_t HW;

  C10_HOST_DEVICE bool is_valid(int64_t i) const { return valid[i]; }
  template <typename T>
  C10_HOST_DEVICE T n(int64_t i, int k) const { return static_cast<T>(normal[k * HW + i]); }
  template <typename T>
  C10_HOST_DEVICE T p(int64_t i, int k) const { return static_cast<T>(pseudo[k * HW + i]); }
};

// One anchor's pairs. idx: its four pixel indices (already checked to lie in [0, HW)); N: the
// image's normals and validity (PlanarNormals, or the CPU's packed pixels). For each pair:
// whether it counts, and, where it does, its error and the slope of that error with respect
// to n_i . n_j (sign(|cos| - |cos*|) sign(cos)). Dot products sum components 0, 1, 2 in order.
template <typename T>
struct AnchorPairs {
  bool counts[kPairs];
  T error[kPairs];
  T slope[kPairs];
};

template <typename T, typename Normals>
C10_HOST_DEVICE inline AnchorPairs<T> anchor_pairs(const Normals& N, const int64_t idx[kPoints]) {
  AnchorPairs<T> r;
  for (int j = 0; j < kPairs; ++j) {
    const int64_t a = idx[j], b = idx[j + 1];
    r.counts[j] = N.is_valid(a) && N.is_valid(b);
    r.error[j] = T(0);
    r.slope[j] = T(0);
    if (!r.counts[j]) continue;
    T cos = T(0), cos_star = T(0);
    for (int k = 0; k < 3; ++k) {
      cos += N.template n<T>(a, k) * N.template n<T>(b, k);
      cos_star += N.template p<T>(a, k) * N.template p<T>(b, k);
    }
    const T diff = abs_of(cos) - abs_of(cos_star);
    r.error[j] = abs_of(diff);
    r.slope[j] = sign(diff) * sign(cos);
  }
  return r;
}

// d error / d (n_i . n_j) of the anchor's pairs: w times each pair's slope, and exactly 0
// where a pair does not count (not w * 0, which is NaN for an infinite weight), what the
// backward needs of the forward.
template <typename T>
C10_HOST_DEVICE inline void anchor_slopes(const AnchorPairs<T>& r, T w, T* slope) {
  for (int j = 0; j < kPairs; ++j) slope[j] = r.counts[j] ? w * r.slope[j] : T(0);
}

// The gradient of one pair into its two points: grad_error * the pair's slope. Nothing where
// the slope or the product is 0: a pair that does not count may have pixels whose normals
// are NaN, which must not reach the gradient whatever grad_error is (NaN times 0 is NaN).
// add(i, c, v) adds v to component c of pixel i's gradient; n(i, c) reads the normal.
template <typename T, typename Add, typename Read>
C10_HOST_DEVICE inline void pair_grad(T grad_error, T slope, int64_t i, int64_t q, const Read& n,
                                      const Add& add) {
  const T k = grad_error * slope;
  if (slope == T(0) || k == T(0)) return;
  for (int c = 0; c < 3; ++c) {
    add(i, c, k * n(q, c));
    add(q, c, k * n(i, c));
  }
}

// The anchor's (error, pair weight) from its pairs and weight w.
template <typename T>
C10_HOST_DEVICE inline void anchor_error(const AnchorPairs<T>& r, T w, T& error, T& pair_weight) {
  T e = T(0), n = T(0);
  for (int j = 0; j < kPairs; ++j) {
    if (!r.counts[j]) continue;
    e += r.error[j];
    n += T(1);
  }
  error = w * e;
  pair_weight = w * n;
}

}  // namespace scdepth::normals
