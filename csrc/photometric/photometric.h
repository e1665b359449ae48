// Per-pixel math of the photometric error, shared by the CPU and the CUDA kernels.
//
// For one channel, with x = tgt and y = warped reflection-padded by p = k // 2 exactly as
// F.pad(·, (p, p, p, p), mode='reflect'), the k×k box means (F.avg_pool2d(·, k, stride=1))
// of x, y, x², y², xy give μx, μy, σx² = E[x²] − μx², σy² = E[y²] − μy², σxy = E[xy] − μxμy and
//   SSIM = ((2μxμy + C1)(2σxy + C2)) / ((μx² + μy² + C1)(σx² + σy² + C2)).
// The per-channel photometric term is (1 − α) clamp(|x − y|, 0, 1) + α clamp((1 − SSIM)/2, 0, 1);
// photo = weight · mean over channels of it, l1 = mean over channels of |x − y|.
//
// Backward. SSIM depends on the inputs only through the five window means, so with
// g = dL/dSSIM at output pixel q, the gradient of a padded input value x_r is
//   Σ over the windows q that contain r of g_q / k² · (∂S/∂μx + 2 x_r ∂S/∂E[x²] + y_r ∂S/∂E[xy]),
// and ∂S/∂E[x²] = ∂S/∂E[y²]. So four coefficient maps per channel (Coeffs below) are box-
// filtered with the adjoint stencil of the padded box filter and combined with x and y. The
// padded position r is the source pixel reflect(r − p): the adjoint sums, for each source pixel,
// over every (window, tap) pair that reads it (reflect_multiplicity).
#pragma once

#include <c10/macros/Macros.h>

#include "common/math.h"

#include <cstdint>

namespace scdepth::photometric {

// SSIM stabilisers C1 = (K1 L)², C2 = (K2 L)² with K1 = 0.01, K2 = 0.03 and dynamic range
// L = 1 (Wang et al., "Image quality assessment: from error visibility to structural
// similarity", TIP 2004; the values of Monodepth2 and SC-Depth).
constexpr double kC1 = 0.01 * 0.01;
constexpr double kC2 = 0.03 * 0.03;

// Window sizes: odd, from 3 (SC-Depth paper, Monodepth2) to 11 (the SSIM paper's Gaussian).
constexpr int kMinWindow = 3;
constexpr int kMaxWindow = 11;
constexpr int kMaxHalf = kMaxWindow / 2;

// Source index of padded coordinate i (relative to the image, i in [-(n-1), 2(n-1)]) under
// reflection padding without repeating the edge: -1 -> 1, n -> n - 2 (F.pad mode='reflect').
C10_HOST_DEVICE inline int64_t reflect(int64_t i, int64_t n) {
  return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i);
}

// How many of the k = 2p + 1 taps of the window centred on output pixel q read source pixel s,
// along one axis of length n > p: taps read padded positions q - p .. q + p; position j reads
// s when j = s, or j = -s (reflected at the start, s >= 1), or j = 2(n-1) - s (reflected at
// the end, s <= n - 2). These three positions are distinct for n >= 2, so each counts once.
// For |q - s| > p the count is 0: every window that reads s is centred within p of s.
C10_HOST_DEVICE inline int reflect_multiplicity(int64_t s, int64_t q, int64_t n, int64_t p) {
  auto near = [p](int64_t a, int64_t b) { return a - b <= p && b - a <= p; };
  return static_cast<int>(near(q, s)) + static_cast<int>(s >= 1 && near(q, -s)) +
         static_cast<int>(s <= n - 2 && near(q, 2 * (n - 1) - s));
}

// clamp(v, lo, hi) with NaN propagated, as torch.clamp.
template <typename T>
C10_HOST_DEVICE inline T clamp(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// d clamp(v, lo, hi) / dv: 1 strictly inside (lo, hi), 0 at the bounds, outside and for NaN
// (the reference's _clamp01; torch 2.14's clamp_backward too, torch 2.11's passes 1 at them).
template <typename T>
C10_HOST_DEVICE inline T clamp_grad(T v, T lo, T hi) {
  return (v > lo) & (v < hi) ? T(1) : T(0);
}

// The five window means of one channel at one output pixel.
template <typename T>
struct Moments {
  T mx, my;    // E[x], E[y]
  T exx, eyy;  // E[x²], E[y²]
  T exy;       // E[xy]
};

template <typename T>
C10_HOST_DEVICE inline T ssim(const Moments<T>& m) {
  const T sx = m.exx - m.mx * m.mx, sy = m.eyy - m.my * m.my, sxy = m.exy - m.mx * m.my;
  const T num = (T(2) * m.mx * m.my + T(kC1)) * (T(2) * sxy + T(kC2));
  const T den = (m.mx * m.mx + m.my * m.my + T(kC1)) * (sx + sy + T(kC2));
  return num / den;
}

// The per-channel term of photo before the channel mean and the weight.
template <typename T>
C10_HOST_DEVICE inline T photo_term(T alpha, T diff, T s) {
  const T l1 = clamp(diff < T(0) ? -diff : diff, T(0), T(1));
  return (T(1) - alpha) * l1 + alpha * clamp((T(1) - s) * T(0.5), T(0), T(1));
}

// Adjoint coefficients at one output pixel: g_q / k² times ∂SSIM/∂μx, ∂SSIM/∂μy,
// ∂SSIM/∂E[x²] (= ∂SSIM/∂E[y²]) and ∂SSIM/∂E[xy]. After the adjoint box filter (sums over the
// windows containing a source pixel) they give
//   dL/dx = mx + 2 x sq + y xy,   dL/dy = my + 2 y sq + x xy.
template <typename T>
struct Coeffs {
  T mx, my, sq, xy;
};

// `g_term`: dL/d(photo_term) of this channel at this pixel (the photo gradient times the
// weight, divided by the channel count); `inv_area` = 1 / k². Also returns SSIM.
template <typename T>
C10_HOST_DEVICE inline Coeffs<T> ssim_coeffs(const Moments<T>& m, T alpha, T g_term, T inv_area,
                                             T& s) {
  const T mx2 = m.mx * m.mx, my2 = m.my * m.my, mxy = m.mx * m.my;
  const T a = T(2) * mxy + T(kC1), b = T(2) * (m.exy - mxy) + T(kC2);
  const T c = mx2 + my2 + T(kC1), d = (m.exx - mx2) + (m.eyy - my2) + T(kC2);
  const T den = c * d;
  s = (a * b) / den;
  // dL/dSSIM = -alpha/2 · clamp'((1 - SSIM)/2) · g_term, and the 1/k² of the box mean.
  const T g = -alpha * T(0.5) * clamp_grad((T(1) - s) * T(0.5), T(0), T(1)) * g_term * inv_area;
  const T r = g / den;
  // S = a b / (c d): dS/da = b/(cd), dS/db = a/(cd), dS/dc = -S/c = -a b d/(cd)², dS/dd = -S/d.
  const T ga = b * r, gb = a * r, gc = -s * d * r, gd = -s * c * r;
  // a = 2 μxμy + C1, b = 2(E[xy] - μxμy) + C2, c = μx² + μy² + C1, d = E[x²] - μx² + E[y²] - μy² + C2.
  Coeffs<T> k;
  k.mx = T(2) * (m.my * (ga - gb) + m.mx * (gc - gd));
  k.my = T(2) * (m.mx * (ga - gb) + m.my * (gc - gd));
  k.sq = gd;
  k.xy = T(2) * gb;
  return k;
}

// dL/d(x - y) at a pixel through |x - y|: the l1 output (weight 1/C) and the clamped L1 term of
// photo. `g_term` as for ssim_coeffs, `g_l1_term` = dL/dl1 / C.
template <typename T>
C10_HOST_DEVICE inline T diff_grad(T alpha, T diff, T g_term, T g_l1_term) {
  const T ad = diff < T(0) ? -diff : diff;
  return sign(diff) * (g_l1_term + (T(1) - alpha) * clamp_grad(ad, T(0), T(1)) * g_term);
}

}  // namespace scdepth::photometric
