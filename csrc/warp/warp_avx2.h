// The inverse warp's float32 CPU row kernels on 8 pixels at a time (AVX2), chosen at run
// time where the CPU has AVX2 (cpu_simd.h). They do warp.h's per-pixel math -- project,
// corners, sample, sample_grad_uv, backprop_pixel -- with the same operations in the same
// order (no fused multiply-add), so the outputs, the depth gradient and the source gradient
// are bit-identical to the portable path; only the pose gradient is summed in another
// (fixed) order: 8 lane sums per row, then across the lanes. warp.h stays the definition of
// the math; tests/test_warp.py compares the two paths.
#pragma once

#include <climits>
#include <cstdint>
#include <type_traits>

#include "common/cpu_simd.h"
#include "warp/warp.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define SCDEPTH_HAVE_AVX2_KERNELS 1

#include <immintrin.h>

namespace scdepth::warp::avx2 {

#define SCDEPTH_AVX2 __attribute__((target("avx2")))

constexpr int kLanes = 8;

// project() and corners() of 8 pixels (u, u+1, ..., u+7) of image row v.
struct Lanes {
  __m256 d, z, qu, qv;  // depth, z', (u', v')
  __m256 front, any;    // masks (all ones / zero)
  __m256 fx, fy;
  __m256i off[4];  // corner offsets in the plane (0 outside the image)
  __m256 in[4];    // corner inside the image (mask)
  __m256 w[4];     // bilinear weights (0 outside the image)
};

SCDEPTH_AVX2 inline __m256 ps(float x) { return _mm256_set1_ps(x); }

// Projection and bilinear corners, as project() and corners() compute them. The offsets are
// int32: the caller checks H * W < 2^31.
SCDEPTH_AVX2 inline void lanes_at(const Params<float>& p, const float* depth_row, int64_t u,
                                  float v, int H, int W, Lanes& L) {
  const __m256 zero = _mm256_setzero_ps(), one = ps(1.f);
  const __m256 fu = _mm256_add_ps(_mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0), ps(float(u)));
  const __m256 fv = ps(v);
  L.d = _mm256_loadu_ps(depth_row + u);
  // z' = d (M2 . [u, v, 1]) + t_z
  __m256 m = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(ps(p.M2[0]), fu),
                                         _mm256_mul_ps(ps(p.M2[1]), fv)),
                           ps(p.M2[2]));
  L.z = _mm256_add_ps(_mm256_mul_ps(L.d, m), ps(p.t[2]));
  L.front = _mm256_and_ps(
      _mm256_and_ps(_mm256_cmp_ps(L.d, zero, _CMP_GT_OQ),
                    _mm256_cmp_ps(L.d, ps(INFINITY), _CMP_LT_OQ)),
      _mm256_cmp_ps(L.z, ps(float(kMinZ)), _CMP_GT_OQ));
  const __m256 inv_z = _mm256_div_ps(one, _mm256_blendv_ps(one, L.z, L.front));
  __m256 au = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(ps(p.A[0]), fu),
                                          _mm256_mul_ps(ps(p.A[1]), fv)),
                            ps(p.A[2]));
  __m256 av = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(ps(p.A[3]), fu),
                                          _mm256_mul_ps(ps(p.A[4]), fv)),
                            ps(p.A[5]));
  L.qu = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(L.d, au), ps(p.a[0])), inv_z);
  L.qv = _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(L.d, av), ps(p.a[1])), inv_z);
  // corners()
  L.any = _mm256_and_ps(
      _mm256_and_ps(L.front, _mm256_and_ps(_mm256_cmp_ps(L.qu, ps(-1.f), _CMP_GT_OQ),
                                           _mm256_cmp_ps(L.qu, ps(float(W)), _CMP_LT_OQ))),
      _mm256_and_ps(_mm256_cmp_ps(L.qv, ps(-1.f), _CMP_GT_OQ),
                    _mm256_cmp_ps(L.qv, ps(float(H)), _CMP_LT_OQ)));
  const __m256i any_i = _mm256_castps_si256(L.any), minus_one = _mm256_set1_epi32(-1);
  const __m256i minus_two = _mm256_set1_epi32(-2);
  const __m256i x0 = _mm256_blendv_epi8(
      minus_two, _mm256_add_epi32(_mm256_cvttps_epi32(_mm256_add_ps(L.qu, one)), minus_one), any_i);
  const __m256i y0 = _mm256_blendv_epi8(
      minus_two, _mm256_add_epi32(_mm256_cvttps_epi32(_mm256_add_ps(L.qv, one)), minus_one), any_i);
  L.fx = _mm256_and_ps(L.any, _mm256_sub_ps(L.qu, _mm256_cvtepi32_ps(x0)));
  L.fy = _mm256_and_ps(L.any, _mm256_sub_ps(L.qv, _mm256_cvtepi32_ps(y0)));
  const __m256 wx[2] = {_mm256_sub_ps(one, L.fx), L.fx};
  const __m256 wy[2] = {_mm256_sub_ps(one, L.fy), L.fy};
  const __m256i Wv = _mm256_set1_epi32(W), Hv = _mm256_set1_epi32(H);
  for (int k = 0; k < 4; ++k) {
    const __m256i x = _mm256_add_epi32(x0, _mm256_set1_epi32(k & 1));
    const __m256i y = _mm256_add_epi32(y0, _mm256_set1_epi32(k >> 1));
    const __m256i in = _mm256_and_si256(
        _mm256_and_si256(_mm256_cmpgt_epi32(x, minus_one), _mm256_cmpgt_epi32(Wv, x)),
        _mm256_and_si256(_mm256_cmpgt_epi32(y, minus_one), _mm256_cmpgt_epi32(Hv, y)));
    L.in[k] = _mm256_castsi256_ps(in);
    L.off[k] = _mm256_and_si256(in, _mm256_add_epi32(_mm256_mullo_epi32(y, Wv), x));
    L.w[k] = _mm256_and_ps(L.in[k], _mm256_mul_ps(wx[k & 1], wy[k >> 1]));
  }
}

// The four corner values of one plane (0 outside the image: masked loads).
SCDEPTH_AVX2 inline void gather4(const float* plane, const Lanes& L, __m256 val[4]) {
  for (int k = 0; k < 4; ++k) {
    val[k] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), plane, L.off[k], L.in[k], 4);
  }
}

// Forward of pixels [0, n) of row v, n the largest multiple of 8 <= W: warped (out: row v of
// the first of C planes of stride HW), z' and valid. Returns n; the caller does the rest.
SCDEPTH_AVX2 inline int64_t forward_row(const Params<float>& p, const float* src, int64_t C,
                                        int64_t HW, int H, int W, const float* depth_row, int v,
                                        float* out, float* zo, float* va) {
  const int64_t n = W / kLanes * kLanes;
  const __m256 zero = _mm256_setzero_ps(), one = ps(1.f);
  Lanes L;
  for (int64_t u = 0; u < n; u += kLanes) {
    lanes_at(p, depth_row, u, float(v), H, W, L);
    _mm256_storeu_ps(zo + u, L.z);
    // inside(): front and (u', v') in [0, W-1] x [0, H-1]
    const __m256 inside = _mm256_and_ps(
        _mm256_and_ps(L.front, _mm256_and_ps(_mm256_cmp_ps(L.qu, zero, _CMP_GE_OQ),
                                             _mm256_cmp_ps(L.qu, ps(float(W - 1)), _CMP_LE_OQ))),
        _mm256_and_ps(_mm256_cmp_ps(L.qv, zero, _CMP_GE_OQ),
                      _mm256_cmp_ps(L.qv, ps(float(H - 1)), _CMP_LE_OQ)));
    _mm256_storeu_ps(va + u, _mm256_and_ps(inside, one));
    for (int64_t ch = 0; ch < C; ++ch) {
      __m256 val[4];
      gather4(src + ch * HW, L, val);
      __m256 acc = zero;  // sample(): + 0 where a corner is outside, as skipping it
      for (int k = 0; k < 4; ++k) acc = _mm256_add_ps(acc, _mm256_mul_ps(L.w[k], val[k]));
      _mm256_storeu_ps(out + ch * HW + u, _mm256_and_ps(L.any, acc));
    }
  }
  return n;
}

// The source-gradient scatter of one channel's 8 pixels: for each pixel in order, each
// inside corner in order, plane[corner] += weight * g, the portable path's order of the same
// additions (its pixels follow the block's). off and in: the block's corners, stored.
SCDEPTH_AVX2 inline void scatter8(float* plane, const Lanes& L, __m256 g,
                                  const int32_t (&off)[4][kLanes], const int (&in)[4]) {
  alignas(32) float add[4][kLanes];
  for (int k = 0; k < 4; ++k) _mm256_store_ps(add[k], _mm256_mul_ps(L.w[k], g));
  for (int l = 0; l < kLanes; ++l) {
    for (int k = 0; k < 4; ++k) {
      if (in[k] >> l & 1) plane[off[k][l]] += add[k][l];
    }
  }
}

// Gradients of pixels [0, n) of row v (n as in forward_row): the grad_depth row, the pose
// gradient added to gpose[12] and, unless gs is null, the source gradient of channels
// grad_from and up scattered into gs (the first of C gradient planes). src: C planes of
// stride HW; grad: row v of the first of C planes of stride HW.
SCDEPTH_AVX2 inline int64_t backward_row(const Params<float>& p, const float* src,
                                         const float* grad, int64_t C, int64_t HW, int H, int W,
                                         const float* depth_row, const float* gz_row, int v,
                                         float* gd_row, float* gpose, float* gs,
                                         int64_t grad_from) {
  const int64_t n = W / kLanes * kLanes;
  const __m256 zero = _mm256_setzero_ps(), one = ps(1.f);
  __m256 acc[12];
  for (auto& a : acc) a = zero;
  Lanes L;
  alignas(32) int32_t off[4][kLanes];
  int in[4];
  for (int64_t u = 0; u < n; u += kLanes) {
    lanes_at(p, depth_row, u, float(v), H, W, L);
    const bool scatter = gs != nullptr && _mm256_movemask_ps(L.any) != 0;
    for (int k = 0; scatter && k < 4; ++k) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(off[k]), L.off[k]);
      in[k] = _mm256_movemask_ps(L.in[k]);
    }
    __m256 gu = zero, gv = zero;
    const __m256 one_fy = _mm256_sub_ps(one, L.fy), one_fx = _mm256_sub_ps(one, L.fx);
    for (int64_t ch = 0; ch < C; ++ch) {  // sample_grad_uv(), and the scatter
      __m256 val[4];
      gather4(src + ch * HW, L, val);
      const __m256 g = _mm256_loadu_ps(grad + ch * HW + u);
      if (scatter && ch >= grad_from) scatter8(gs + ch * HW, L, g, off, in);
      const __m256 du = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(val[1], val[0]), one_fy),
                                      _mm256_mul_ps(_mm256_sub_ps(val[3], val[2]), L.fy));
      const __m256 dv = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(val[2], val[0]), one_fx),
                                      _mm256_mul_ps(_mm256_sub_ps(val[3], val[1]), L.fx));
      gu = _mm256_add_ps(gu, _mm256_mul_ps(g, du));
      gv = _mm256_add_ps(gv, _mm256_mul_ps(g, dv));
    }
    gu = _mm256_and_ps(L.any, gu);  // no corner inside: the portable path skips the channels
    gv = _mm256_and_ps(L.any, gv);
    // backprop_pixel()
    const __m256 inv_z = _mm256_div_ps(one, L.z);
    const __m256 gz = _mm256_loadu_ps(gz_row + u);
    __m256 gX[3];
    for (int j = 0; j < 3; ++j) {
      const __m256 t = _mm256_mul_ps(
          _mm256_add_ps(_mm256_mul_ps(gu, ps(p.K[j])), _mm256_mul_ps(gv, ps(p.K[3 + j]))),
          inv_z);
      gX[j] = _mm256_add_ps(j == 2 ? gz : zero, t);
    }
    gX[2] = _mm256_sub_ps(
        gX[2],
        _mm256_mul_ps(_mm256_add_ps(_mm256_mul_ps(gu, L.qu), _mm256_mul_ps(gv, L.qv)), inv_z));
    gX[0] = _mm256_and_ps(L.front, gX[0]);
    gX[1] = _mm256_and_ps(L.front, gX[1]);
    gX[2] = _mm256_blendv_ps(gz, gX[2], L.front);
    const __m256 fu = _mm256_add_ps(_mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0), ps(float(u)));
    __m256 ray[3];
    for (int r = 0; r < 3; ++r) {
      ray[r] = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(ps(p.Kinv[3 * r]), fu),
                                           _mm256_mul_ps(ps(p.Kinv[3 * r + 1]), ps(float(v)))),
                             ps(p.Kinv[3 * r + 2]));
    }
    __m256 gd = zero;
    for (int r = 0; r < 3; ++r) {
      const __m256 gXd = _mm256_mul_ps(gX[r], L.d);
      for (int k = 0; k < 3; ++k) {
        acc[4 * r + k] = _mm256_add_ps(acc[4 * r + k], _mm256_mul_ps(gXd, ray[k]));
      }
      acc[4 * r + 3] = _mm256_add_ps(acc[4 * r + 3], gX[r]);
      const __m256 Rray = _mm256_add_ps(
          _mm256_add_ps(_mm256_mul_ps(ps(p.R[3 * r]), ray[0]),
                        _mm256_mul_ps(ps(p.R[3 * r + 1]), ray[1])),
          _mm256_mul_ps(ps(p.R[3 * r + 2]), ray[2]));
      gd = _mm256_add_ps(gd, _mm256_mul_ps(Rray, gX[r]));
    }
    _mm256_storeu_ps(gd_row + u, gd);
  }
  for (int j = 0; j < 12; ++j) {
    alignas(32) float lane[kLanes];
    _mm256_store_ps(lane, acc[j]);
    for (int l = 0; l < kLanes; ++l) gpose[j] += lane[l];
  }
  return n;
}

#undef SCDEPTH_AVX2

}  // namespace scdepth::warp::avx2

#endif

namespace scdepth::warp::avx2 {

// Whether the kernels above serve an image of S with H * W = HW pixels: float32, plane
// offsets within int32, a CPU with AVX2 and SCDEPTH_CPU_SIMD not "0".
template <typename S>
bool usable(int64_t HW) {
#ifdef SCDEPTH_HAVE_AVX2_KERNELS
  return std::is_same_v<S, float> && HW < INT_MAX && cpu_avx2_enabled();
#else
  return false;
#endif
}

// Other types, and builds without the kernels: no pixel done, the portable path does the
// row (the float32 overloads above win where they exist).
template <typename T, typename S>
int64_t forward_row(const Params<T>&, const S*, int64_t, int64_t, int, int, const S*, int, S*,
                    S*, S*) {
  return 0;
}

template <typename T, typename S>
int64_t backward_row(const Params<T>&, const S*, const S*, int64_t, int64_t, int, int, const S*,
                     const S*, int, S*, T*, T*, int64_t) {
  return 0;
}

}  // namespace scdepth::warp::avx2
