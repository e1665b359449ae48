// The CUDA kernels' work on one 2-D tile of the image, written against a `Block` (thread id,
// thread count, barrier) rather than threadIdx and __syncthreads(): photometric_cuda.cu runs it
// with a CUDA block, and tests/test_photometric.py compiles it for the host and runs it with a
// single "thread" per block (every phase is a loop over work items, so one thread doing all
// items is the same computation), which checks the tiling, halo and adjoint indexing on
// machines without a GPU. Races are for compute-sanitizer --tool racecheck on a GPU.
//
// Every phase is `for (i = tid; i < n; i += threads)` followed by a barrier that every thread
// reaches; state that outlives a barrier lives in shared memory (`smem`), never in registers.
#pragma once

#include <c10/macros/Macros.h>

#include <cstdint>

#include "photometric/photometric.h"

namespace scdepth::photometric {

// Output tile of one block: TH rows x kTileW columns (one warp wide, so that global loads and
// stores along a row coalesce). TH = tile_rows<T> for compute type T: 16, or 8 for float64,
// whose backward tile would otherwise need 126 KiB of shared memory at k = 11 (the 8-row tile
// needs at most 94 KiB, within the 99 KiB per-block opt-in limit of sm_86/sm_89 GPUs; A100
// and H100 allow 163 and 227 KiB).
constexpr int kTileW = 32;
template <typename T>
constexpr int tile_rows = sizeof(T) > 4 ? 8 : 16;

// Index of the source pixel read at padded coordinate i of an axis of length n. Inside the
// reflection's domain [-(n-1), 2(n-1)] (which contains [-p, n-1+p] since n > p) it is exactly
// reflect(); beyond, where a tile overhangs the image and the value is never used, it is some
// index in [0, n), so that every load stays in bounds.
C10_HOST_DEVICE inline int64_t reflect_clamped(int64_t i, int64_t n) {
  const int64_t lo = -(n - 1), hi = 2 * (n - 1);
  return reflect(i < lo ? lo : (i > hi ? hi : i), n);
}

// Shared memory of a forward tile, in elements of the compute type, for half-window p:
// x and y with a halo of p, the 5 horizontal sums of each halo row, and 2 accumulators.
template <int TH>
C10_HOST_DEVICE constexpr int64_t forward_smem_elems(int p) {
  return 2 * int64_t(TH + 2 * p) * (kTileW + 2 * p) + 5 * int64_t(TH + 2 * p) * kTileW +
         2 * TH * kTileW;
}

// Shared memory of a backward tile: x and y with a halo of 2p (the windows of the output
// pixels within p of the tile), the 5 horizontal sums for those output columns (reused for
// the 4 row adjoints once the coefficients exist), the 4 coefficients of the output pixels
// within p of the tile, and the channel sum of photo_term for the weight gradient.
template <int TH>
C10_HOST_DEVICE constexpr int64_t backward_smem_elems(int p) {
  const int64_t rows_in = TH + 4 * p, cols_in = kTileW + 4 * p;
  const int64_t rows_q = TH + 2 * p, cols_q = kTileW + 2 * p;
  const int64_t sums = 5 * rows_in * cols_q, row_adj = 4 * rows_q * kTileW;
  return 2 * rows_in * cols_in + (sums > row_adj ? sums : row_adj) + 4 * rows_q * cols_q +
         TH * kTileW;
}

// Where a tile lies: image b, first row ty0, first column tx0.
struct Tile {
  int64_t b, ty0, tx0;
};

// The tile of flat block index `block` when each image is covered by tiles_y x tiles_x tiles.
template <int TH>
C10_HOST_DEVICE inline Tile tile_of(int64_t block, int64_t tiles_y, int64_t tiles_x) {
  const int64_t per_image = tiles_y * tiles_x, t = block % per_image;
  return {block / per_image, (t / tiles_x) * TH, (t % tiles_x) * kTileW};
}

// Loads channel plane x, y rows [ty0 - halo, ty0 + rows - halo) x columns
// [tx0 - halo, tx0 + cols - halo), reflection-padded, into xs, ys (rows x cols).
template <typename T, typename S, typename Block>
C10_HOST_DEVICE inline void load_halo(const Block& blk, const S* x, const S* y, int64_t H,
                                      int64_t W, int64_t y0, int64_t x0, int rows, int cols,
                                      T* xs, T* ys) {
  for (int i = blk.tid; i < rows * cols; i += blk.threads) {
    const int64_t sy = reflect_clamped(y0 + i / cols, H), sx = reflect_clamped(x0 + i % cols, W);
    xs[i] = static_cast<T>(x[sy * W + sx]);
    ys[i] = static_cast<T>(y[sy * W + sx]);
  }
}

// hs[j][r][u] (j = x, y, x², y², xy; rows x cols_out) = sums over xs[r][u .. u + k - 1].
template <typename T, typename Block>
C10_HOST_DEVICE inline void horizontal_sums(const Block& blk, const T* xs, const T* ys,
                                            int rows, int cols_in, int cols_out, int k, T* hs) {
  const int plane = rows * cols_out;
  for (int i = blk.tid; i < plane; i += blk.threads) {
    const int r = i / cols_out, u = i % cols_out;
    T s[5] = {T(0), T(0), T(0), T(0), T(0)};
    for (int t = 0; t < k; ++t) {
      const T xv = xs[r * cols_in + u + t], yv = ys[r * cols_in + u + t];
      s[0] += xv;
      s[1] += yv;
      s[2] += xv * xv;
      s[3] += yv * yv;
      s[4] += xv * yv;
    }
    for (int j = 0; j < 5; ++j) hs[j * plane + i] = s[j];
  }
}

// The window means at (row r .. r + k - 1, column u) of horizontal sums hs (rows x cols).
template <typename T>
C10_HOST_DEVICE inline Moments<T> window_means(const T* hs, int rows, int cols, int r, int u,
                                               int k, T inv_area) {
  const int plane = rows * cols;
  T s[5] = {T(0), T(0), T(0), T(0), T(0)};
  for (int t = 0; t < k; ++t) {
    for (int j = 0; j < 5; ++j) s[j] += hs[j * plane + (r + t) * cols + u];
  }
  return {s[0] * inv_area, s[1] * inv_area, s[2] * inv_area, s[3] * inv_area, s[4] * inv_area};
}

// Forward of one tile: photo and l1 for the tile's pixels. x, y: image b's channel planes
// (C x H x W); w, photo, l1: image b's map (H x W); w may be null.
template <int TH, typename T, typename S, typename Block>
C10_HOST_DEVICE inline void forward_tile(const Block& blk, T* smem, const S* x, const S* y,
                                         const S* w, S* photo, S* l1, int64_t C, int64_t H,
                                         int64_t W, int k, T alpha, int64_t ty0, int64_t tx0) {
  const int p = k / 2, rows = TH + 2 * p, cols = kTileW + 2 * p;
  constexpr int kPixels = TH * kTileW;
  T* xs = smem;
  T* ys = xs + rows * cols;
  T* hs = ys + rows * cols;
  T* acc = hs + 5 * rows * kTileW;  // [0, kPixels): photo terms, then |x - y|
  const T inv_area = T(1) / T(k * k), inv_c = T(1) / T(C);
  const int64_t HW = H * W;
  for (int i = blk.tid; i < 2 * kPixels; i += blk.threads) acc[i] = T(0);
  for (int64_t c = 0; c < C; ++c) {
    load_halo(blk, x + c * HW, y + c * HW, H, W, ty0 - p, tx0 - p, rows, cols, xs, ys);
    blk.sync();
    horizontal_sums(blk, xs, ys, rows, cols, kTileW, k, hs);
    blk.sync();
    for (int i = blk.tid; i < kPixels; i += blk.threads) {
      const int v = i / kTileW, u = i % kTileW;
      if (ty0 + v >= H || tx0 + u >= W) continue;
      const T d = xs[(v + p) * cols + u + p] - ys[(v + p) * cols + u + p];
      acc[i] += photo_term(alpha, d, ssim(window_means(hs, rows, kTileW, v, u, k, inv_area)));
      acc[kPixels + i] += d < T(0) ? -d : d;
    }
    blk.sync();  // xs, ys and hs are overwritten by the next channel
  }
  for (int i = blk.tid; i < kPixels; i += blk.threads) {
    const int64_t gy = ty0 + i / kTileW, gx = tx0 + i % kTileW;
    if (gy >= H || gx >= W) continue;
    const int64_t pix = gy * W + gx;
    const T wt = w != nullptr ? static_cast<T>(w[pix]) : T(1);
    photo[pix] = static_cast<S>(wt * (acc[i] * inv_c));
    l1[pix] = static_cast<S>(acc[kPixels + i] * inv_c);
  }
}

// Backward of one tile: grad_x, grad_y (image b's C planes) and grad_w (image b's map, null
// when there is no weight) for the tile's pixels, each written by exactly one thread.
// gp, gl1: image b's grad_photo and grad_l1 maps.
template <int TH, typename T, typename S, typename Block>
C10_HOST_DEVICE inline void backward_tile(const Block& blk, T* smem, const S* gp, const S* gl1,
                                          const S* x, const S* y, const S* w, S* grad_x,
                                          S* grad_y, S* grad_w, int64_t C, int64_t H, int64_t W,
                                          int k, T alpha, int64_t ty0, int64_t tx0) {
  const int p = k / 2;
  const int rows_in = TH + 4 * p, cols_in = kTileW + 4 * p;  // x, y: tile + 2p
  const int rows_q = TH + 2 * p, cols_q = kTileW + 2 * p;    // output pixels: tile + p
  constexpr int kPixels = TH * kTileW;
  T* xs = smem;
  T* ys = xs + rows_in * cols_in;
  T* hs = ys + rows_in * cols_in;  // 5 x rows_in x cols_q, then 4 x rows_q x kTileW (gh)
  T* gh = hs;
  const int hs_elems = 5 * rows_in * cols_q, gh_elems = 4 * rows_q * kTileW;
  T* f = hs + (hs_elems > gh_elems ? hs_elems : gh_elems);  // 4 x rows_q x cols_q
  T* pw = f + 4 * rows_q * cols_q;                               // kPixels
  const int f_plane = rows_q * cols_q, gh_plane = rows_q * kTileW;
  const T inv_area = T(1) / T(k * k), inv_c = T(1) / T(C);
  const int64_t HW = H * W;
  auto term_grad = [&](int64_t pix) {  // dL/d(photo term of one channel)
    return static_cast<T>(gp[pix]) * (w != nullptr ? static_cast<T>(w[pix]) : T(1)) * inv_c;
  };
  for (int i = blk.tid; i < kPixels; i += blk.threads) pw[i] = T(0);
  for (int64_t c = 0; c < C; ++c) {
    load_halo(blk, x + c * HW, y + c * HW, H, W, ty0 - 2 * p, tx0 - 2 * p, rows_in, cols_in, xs,
              ys);
    blk.sync();
    horizontal_sums(blk, xs, ys, rows_in, cols_in, cols_q, k, hs);
    blk.sync();
    // Adjoint coefficients of the output pixels (qy, qx) within p of the tile; 0 outside the
    // image, where there is no output.
    for (int i = blk.tid; i < f_plane; i += blk.threads) {
      const int vq = i / cols_q, uq = i % cols_q;
      const int64_t qy = ty0 - p + vq, qx = tx0 - p + uq;
      Coeffs<T> co{T(0), T(0), T(0), T(0)};
      if (qy >= 0 && qy < H && qx >= 0 && qx < W) {
        const int64_t pix = qy * W + qx;
        T s;
        co = ssim_coeffs(window_means(hs, rows_in, cols_q, vq, uq, k, inv_area), alpha,
                         term_grad(pix), inv_area, s);
        const int tv = vq - p, tu = uq - p;  // inside the tile: add to the weight gradient
        if (w != nullptr && tv >= 0 && tv < TH && tu >= 0 && tu < kTileW) {
          const int centre = (vq + p) * cols_in + uq + p;
          pw[tv * kTileW + tu] += photo_term(alpha, xs[centre] - ys[centre], s);
        }
      }
      f[i] = co.mx;
      f[f_plane + i] = co.my;
      f[2 * f_plane + i] = co.sq;
      f[3 * f_plane + i] = co.xy;
    }
    blk.sync();  // hs is dead from here on: gh reuses it
    // Row adjoint: for source column sx of the tile, the sum over the output columns within p,
    // each counted as often as its window reads sx (reflections included).
    for (int i = blk.tid; i < gh_plane; i += blk.threads) {
      const int vq = i / kTileW, u = i % kTileW;
      const int64_t sx = tx0 + u;
      T g[4] = {T(0), T(0), T(0), T(0)};
      for (int d = -p; sx < W && d <= p; ++d) {
        const int mult = reflect_multiplicity(sx, sx + d, W, p);
        if (mult == 0) continue;
        const int at = vq * cols_q + u + p + d;
        for (int j = 0; j < 4; ++j) g[j] += static_cast<T>(mult) * f[j * f_plane + at];
      }
      for (int j = 0; j < 4; ++j) gh[j * gh_plane + i] = g[j];
    }
    blk.sync();
    // Column adjoint, then the gradients of the tile's pixels.
    for (int i = blk.tid; i < kPixels; i += blk.threads) {
      const int v = i / kTileW, u = i % kTileW;
      const int64_t sy = ty0 + v, sx = tx0 + u;
      if (sy >= H || sx >= W) continue;
      T g[4] = {T(0), T(0), T(0), T(0)};
      for (int d = -p; d <= p; ++d) {
        const int mult = reflect_multiplicity(sy, sy + d, H, p);
        if (mult == 0) continue;
        const int at = (v + p + d) * kTileW + u;
        for (int j = 0; j < 4; ++j) g[j] += static_cast<T>(mult) * gh[j * gh_plane + at];
      }
      const int centre = (v + 2 * p) * cols_in + u + 2 * p;
      const T xv = xs[centre], yv = ys[centre];
      const int64_t pix = sy * W + sx;
      const T gd = diff_grad(alpha, xv - yv, term_grad(pix), static_cast<T>(gl1[pix]) * inv_c);
      grad_x[c * HW + pix] = static_cast<S>(g[0] + T(2) * xv * g[2] + yv * g[3] + gd);
      grad_y[c * HW + pix] = static_cast<S>(g[1] + T(2) * yv * g[2] + xv * g[3] - gd);
    }
    blk.sync();  // xs, ys, hs (gh) and f are overwritten by the next channel
  }
  if (w == nullptr) return;
  for (int i = blk.tid; i < kPixels; i += blk.threads) {
    const int64_t gy = ty0 + i / kTileW, gx = tx0 + i % kTileW;
    if (gy >= H || gx >= W) continue;
    const int64_t pix = gy * W + gx;
    grad_w[pix] = static_cast<S>(static_cast<T>(gp[pix]) * (pw[i] * inv_c));
  }
}

}  // namespace scdepth::photometric
