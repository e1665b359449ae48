// CPU kernels of photometric_error: parallel over (image, band of rows) tasks. A task walks its
// rows once, keeping running sums of the five statistics over the k padded rows of every padded
// column (an add and a subtract per row step; a row with a NaN, an inf or a huge value is not
// subtracted, the next window is summed afresh instead), and sums k of those column sums per
// output pixel. Nothing image-sized is allocated besides the outputs: each task works in a few rows of
// scratch. All arithmetic runs in row loops over plain arrays that gcc vectorises.
//
// Backward gathers (single writer, no atomics): a task owns a band of source rows, recomputes
// the statistics of the output rows whose windows reach the band (p more on each side), turns
// them into the four adjoint coefficient rows of photometric.h, and sums each coefficient over
// the windows containing each source pixel: along the row with a k-tap stencil, then across
// rows with a sum over the last k rows, kept in a ring. Near the image edges the
// reflection padding enters through reflect_multiplicity. Recomputing the statistics rather
// than saving them moves fewer bytes and holds no memory between forward and backward (the
// figures are in photometric_cuda.cu); on the CPU it also keeps the peak memory of
// forward + backward to the outputs and the gradients.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "common/cpu_bands.h"
#include "common/cpu_simd.h"
#include "common/launch.h"
#include "photometric/photometric.h"
#include "photometric/photometric_args.h"

namespace scdepth::photometric {
namespace {

// Rows per task: enough tasks for every thread, and a bound on how many steps a running sum
// takes before it is summed afresh (its rounding drift).
constexpr int64_t kMinBandRows = 8;
constexpr int64_t kMaxBandRows = 64;

Bands make_bands(int64_t B, int64_t H) {
  return scdepth::make_bands(B, H, kMinBandRows, kMaxBandRows);
}

// ---- Row loops. gcc honours __restrict__ on parameters (not on local pointers into one
// buffer), so every vectorised loop is a function of its own.

// o[u] = scale * (c[u] + c[u + stride] + ... + c[u + (K - 1) stride]), u in [0, n): K taps
// along a row (stride 1) or K rows in one pass (stride = the row length).
template <int K, typename T>
SCDEPTH_CPU_CLONES
void box_taps(const T* __restrict__ c, int64_t stride, T* __restrict__ o, int64_t n, T scale) {
  for (int64_t u = 0; u < n; ++u) {
    T acc = c[u];
#pragma GCC unroll 16
    for (int t = 1; t < K; ++t) acc += c[u + t * stride];
    o[u] = acc * scale;
  }
}

template <typename T>
void box_taps(int k, const T* c, int64_t stride, T* o, int64_t n, T scale) {
  switch (k) {
    case 3: return box_taps<3>(c, stride, o, n, scale);
    case 5: return box_taps<5>(c, stride, o, n, scale);
    case 7: return box_taps<7>(c, stride, o, n, scale);
    case 9: return box_taps<9>(c, stride, o, n, scale);
    default: return box_taps<kMaxWindow>(c, stride, o, n, scale);  // k is checked: 11
  }
}

// Column sums += products of padded rows (xa, ya), minus those of (xd, yd) when sliding.
template <typename T>
SCDEPTH_CPU_CLONES
void add_products(int64_t n, const T* __restrict__ xa, const T* __restrict__ ya,
                  T* __restrict__ sx, T* __restrict__ sy, T* __restrict__ sxx,
                  T* __restrict__ syy, T* __restrict__ sxy) {
  for (int64_t i = 0; i < n; ++i) {
    sx[i] += xa[i];
    sy[i] += ya[i];
    sxx[i] += xa[i] * xa[i];
    syy[i] += ya[i] * ya[i];
    sxy[i] += xa[i] * ya[i];
  }
}

template <typename T>
SCDEPTH_CPU_CLONES
void slide_products(int64_t n, const T* __restrict__ xa, const T* __restrict__ ya,
                    const T* __restrict__ xd, const T* __restrict__ yd, T* __restrict__ sx,
                    T* __restrict__ sy, T* __restrict__ sxx, T* __restrict__ syy,
                    T* __restrict__ sxy) {
  for (int64_t i = 0; i < n; ++i) {
    sx[i] += xa[i] - xd[i];
    sy[i] += ya[i] - yd[i];
    sxx[i] += xa[i] * xa[i] - xd[i] * xd[i];
    syy[i] += ya[i] * ya[i] - yd[i] * yd[i];
    sxy[i] += xa[i] * ya[i] - xd[i] * yd[i];
  }
}

// dst += a * src.
template <typename T>
SCDEPTH_CPU_CLONES
void axpy(int64_t n, T a, const T* __restrict__ src, T* __restrict__ dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] += a * src[i];
}

// A row of the input in compute type T: the row itself when the types agree, else converted
// into buf.
template <typename T, typename S>
const T* as_compute(const S* row, int64_t W, T* buf) {
  if constexpr (std::is_same_v<T, S>) {
    return row;
  } else {
    for (int64_t u = 0; u < W; ++u) buf[u] = static_cast<T>(row[u]);
    return buf;
  }
}

template <typename T, typename A>
SCDEPTH_CPU_CLONES
const T* convert(int64_t n, const A* __restrict__ src, T* __restrict__ dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<T>(src[i]);
  return dst;
}

// Moments of column u from the 5 x W rows of WindowSums::means.
template <typename T>
inline Moments<T> moments_at(const T* m, int64_t W, int64_t u) {
  return {m[u], m[W + u], m[2 * W + u], m[3 * W + u], m[4 * W + u]};
}

// Adds one channel's photo_term and |x - y| along a row.
template <typename T>
SCDEPTH_CPU_CLONES
void photo_row(const T* __restrict__ m, const T* __restrict__ x, const T* __restrict__ y,
               int64_t W, T alpha, T* __restrict__ acc_photo, T* __restrict__ acc_l1) {
  for (int64_t u = 0; u < W; ++u) {
    const T d = x[u] - y[u];
    acc_photo[u] += photo_term(alpha, d, ssim(moments_at(m, W, u)));
    acc_l1[u] += d < T(0) ? -d : d;
  }
}

// photo = weight * acc_photo / C, l1 = acc_l1 / C.
template <typename T, typename S>
SCDEPTH_CPU_CLONES
void output_row(const T* __restrict__ acc_photo, const T* __restrict__ acc_l1,
                const S* __restrict__ w, T inv_c, int64_t W, S* __restrict__ photo,
                S* __restrict__ l1) {
  for (int64_t u = 0; u < W; ++u) {
    const T wt = w != nullptr ? static_cast<T>(w[u]) : T(1);
    photo[u] = static_cast<S>(wt * (acc_photo[u] * inv_c));
    l1[u] = static_cast<S>(acc_l1[u] * inv_c);
  }
}

// g_term[u] = dL/d(photo term of one channel) = grad_photo * weight / C along a row.
template <typename T, typename S>
SCDEPTH_CPU_CLONES
void term_grad_row(const S* __restrict__ gp, const S* __restrict__ w, T inv_c, int64_t W,
                   T* __restrict__ out) {
  if (w != nullptr) {
    for (int64_t u = 0; u < W; ++u) out[u] = static_cast<T>(gp[u]) * static_cast<T>(w[u]) * inv_c;
  } else {
    for (int64_t u = 0; u < W; ++u) out[u] = static_cast<T>(gp[u]) * inv_c;
  }
}

// The four adjoint coefficient rows of one channel (see ssim_coeffs) and SSIM.
template <typename T>
SCDEPTH_CPU_CLONES
void coeff_row(const T* __restrict__ m, const T* __restrict__ g_term, int64_t W, T alpha,
               T inv_area, T* __restrict__ f_mx, T* __restrict__ f_my, T* __restrict__ f_sq,
               T* __restrict__ f_xy, T* __restrict__ s) {
  for (int64_t u = 0; u < W; ++u) {
    const Coeffs<T> co = ssim_coeffs(moments_at(m, W, u), alpha, g_term[u], inv_area, s[u]);
    f_mx[u] = co.mx;
    f_my[u] = co.my;
    f_sq[u] = co.sq;
    f_xy[u] = co.xy;
  }
}

template <typename T>
SCDEPTH_CPU_CLONES
void photo_term_row(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ s,
                    int64_t W, T alpha, T* __restrict__ acc) {
  for (int64_t u = 0; u < W; ++u) acc[u] += photo_term(alpha, x[u] - y[u], s[u]);
}

// Gradients of one source row of one channel from the gathered coefficients g (4 x W rows:
// mx, my, sq, xy) and the L1 terms.
template <typename T, typename S>
SCDEPTH_CPU_CLONES
void grad_row(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ g,
              const T* __restrict__ g_term, const S* __restrict__ g_l1, T alpha, T inv_c,
              int64_t W, S* __restrict__ gx, S* __restrict__ gy) {
  for (int64_t u = 0; u < W; ++u) {
    const T xv = x[u], yv = y[u];
    const T gd = diff_grad(alpha, xv - yv, g_term[u], static_cast<T>(g_l1[u]) * inv_c);
    const T sq = g[2 * W + u], xy = g[3 * W + u];
    gx[u] = static_cast<S>(g[u] + T(2) * xv * sq + yv * xy + gd);
    gy[u] = static_cast<S>(g[W + u] + T(2) * yv * sq + xv * xy - gd);
  }
}

// grad_weight = grad_photo * (sum over channels of photo_term) / C.
template <typename T, typename S>
SCDEPTH_CPU_CLONES
void weight_grad_row(const S* __restrict__ gp, const T* __restrict__ acc, T inv_c, int64_t W,
                     S* __restrict__ out) {
  for (int64_t u = 0; u < W; ++u) out[u] = static_cast<S>(static_cast<T>(gp[u]) * (acc[u] * inv_c));
}

// ---- Window statistics.

// Whether every value of a row is finite and at most kTameMax in magnitude, so that the row can
// leave a running sum by subtraction. A NaN or inf would stay in the sums (inf - inf is NaN) and
// spoil every later row of the band, and a huge value would take with it the small terms added
// while it was in the window ((1e30² + s) - 1e30² = 0); such a row makes the next window be
// summed afresh, so that only the windows that contain it see it, as in the reference. Below
// kTameMax the drift of a float64 running sum of squares over a band is < 1e-8, far below
// SSIM's C2, and 16-bit inputs keep exact squares in their float32 sums.
constexpr double kTameMax = 1024.0;

template <typename S>
SCDEPTH_CPU_CLONES
bool tame(const S* __restrict__ v, int64_t n) {
  using T = at::opmath_type<S>;
  // |=, not &&, and an integer as wide as T: the form gcc vectorises for float rows.
  using I = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
  const T bound = static_cast<T>(kTameMax);
  I wild = 0;
  for (int64_t i = 0; i < n; ++i) wild |= static_cast<I>(!(std::abs(static_cast<T>(v[i])) <= bound));
  return wild == 0;  // a NaN is not <= bound: wild
}

// The type of the running column sums. A running sum keeps the rounding error of every row it
// has added and dropped, and σ² = E[x²] - μ² turns an absolute error of E[x²] into an error of
// SSIM relative to C2 = 9e-4 (flat image regions). Float32 inputs are therefore summed in
// float64, where their squares and products are exact and the drift over a band is ~1e-16;
// the window means are still computed in float32 from the column sums rounded once, like the
// reference's. 16-bit inputs (11 or 8 significant bits, whose squares are exact in float32)
// are summed in float32, float64 inputs in float64.
template <typename S>
using SumType = std::conditional_t<std::is_same_v<S, float>, double, at::opmath_type<S>>;

// Running k-row sums of x, y, x², y², xy over the reflection-padded columns of one channel
// plane (x, y: contiguous H x W). Sums in Acc, gives means in compute type T; reads type S.
template <typename T, typename S, typename Acc = SumType<S>>
class WindowSums {
 public:
  WindowSums(int64_t H, int64_t W, int k)
      : H_(H), W_(W), k_(k), p_(k / 2), Wp_(W + 2 * (k / 2)), col_(5 * Wp_), add_(2 * Wp_),
        drop_(2 * Wp_), rounded_(std::is_same_v<Acc, T> ? 0 : 5 * Wp_) {}

  // The column sums of the window of output row q, summed afresh.
  void start(const S* x, const S* y, int64_t q) {
    std::fill(col_.begin(), col_.end(), Acc(0));
    Acc* c = col_.data();
    const Acc* a = add_.data();
    for (int t = 0; t < k_; ++t) {
      pad_row(x, y, reflect(q + t - p_, H_), add_.data());
      add_products(Wp_, a, a + Wp_, c, c + Wp_, c + 2 * Wp_, c + 3 * Wp_, c + 4 * Wp_);
    }
  }

  // From the window of output row q - 1 to that of row q: add padded row q + p, drop q - p - 1
  // (or sum afresh when row q - p - 1 may not leave by subtraction, see tame()).
  void advance(const S* x, const S* y, int64_t q) {
    const int64_t s = reflect(q - p_ - 1, H_);
    if (!tame(x + s * W_, W_) || !tame(y + s * W_, W_)) {
      start(x, y, q);
      return;
    }
    pad_row(x, y, s, drop_.data());
    pad_row(x, y, reflect(q + p_, H_), add_.data());
    Acc* c = col_.data();
    const Acc *a = add_.data(), *d = drop_.data();
    slide_products(Wp_, a, a + Wp_, d, d + Wp_, c, c + Wp_, c + 2 * Wp_, c + 3 * Wp_,
                   c + 4 * Wp_);
  }

  // out[j * W + u], j = E[x], E[y], E[x²], E[y²], E[xy]: the k x k window means of the row.
  void means(T* out) {
    const T inv_area = T(1) / T(k_ * k_);
    const T* c = nullptr;
    if constexpr (std::is_same_v<Acc, T>) {
      c = col_.data();
    } else {
      c = convert(static_cast<int64_t>(col_.size()), col_.data(), rounded_.data());
    }
    for (int j = 0; j < 5; ++j) box_taps(k_, c + j * Wp_, 1, out + j * W_, W_, inv_area);
  }

 private:
  // Source row s of x and y, reflection-padded by p on both sides, into dst[0, 2 Wp).
  void pad_row(const S* x, const S* y, int64_t s, Acc* dst) const {
    const S* rows[2] = {x + s * W_, y + s * W_};
    for (int i = 0; i < 2; ++i) {
      Acc* d = dst + i * Wp_;
      const Acc* r = as_compute(rows[i] + 0, W_, d + p_);
      if (r != d + p_) std::copy(r, r + W_, d + p_);
      for (int64_t j = 1; j <= p_; ++j) {
        d[p_ - j] = d[p_ + j];
        d[p_ + W_ - 1 + j] = d[p_ + W_ - 1 - j];
      }
    }
  }

  int64_t H_, W_;
  int k_;
  int64_t p_, Wp_;
  std::vector<Acc> col_;         // 5 x Wp column sums
  std::vector<Acc> add_, drop_;  // padded x and y rows
  std::vector<T> rounded_;       // col_ in T, when Acc is wider
};

// ---- Forward.

template <typename scalar_t>
void forward_impl(const at::Tensor& tgt, const at::Tensor& warped, const at::Tensor& weight,
                  double alpha_, int64_t k, at::Tensor& photo, at::Tensor& l1) {
  using T = at::opmath_type<scalar_t>;
  const int64_t B = tgt.size(0), C = tgt.size(1), H = tgt.size(2), W = tgt.size(3);
  const int64_t HW = H * W;
  const T alpha = static_cast<T>(alpha_), inv_c = T(1) / T(C);
  const scalar_t* x = tgt.const_data_ptr<scalar_t>();
  const scalar_t* y = warped.const_data_ptr<scalar_t>();
  const scalar_t* w = weight.defined() ? weight.const_data_ptr<scalar_t>() : nullptr;
  scalar_t* out_photo = photo.mutable_data_ptr<scalar_t>();
  scalar_t* out_l1 = l1.mutable_data_ptr<scalar_t>();
  const Bands bands = make_bands(B, H);
  at::parallel_for(0, bands.tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<WindowSums<T, scalar_t>> sums(C, WindowSums<T, scalar_t>(H, W, k));
    std::vector<T> m(5 * W), acc(2 * W), xbuf(W), ybuf(W);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / bands.per_image;
      const int64_t r0 = (task % bands.per_image) * bands.rows;
      const int64_t r1 = std::min(H, r0 + bands.rows);
      for (int64_t q = r0; q < r1; ++q) {
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* xc = x + (b * C + c) * HW;
          const scalar_t* yc = y + (b * C + c) * HW;
          if (q == r0) {
            sums[c].start(xc, yc, q);
          } else {
            sums[c].advance(xc, yc, q);
          }
          sums[c].means(m.data());
          photo_row(m.data(), as_compute(xc + q * W, W, xbuf.data()),
                    as_compute(yc + q * W, W, ybuf.data()), W, alpha, acc.data(),
                    acc.data() + W);
        }
        const int64_t row = b * HW + q * W;
        output_row(acc.data(), acc.data() + W, w != nullptr ? w + row : nullptr, inv_c, W,
                   out_photo + row, out_l1 + row);
      }
    }
  });
}

// ---- Backward.

// The adjoint of the padded box filter along one row, for the four coefficient rows of one
// output row: f[j * L + (k - 1) + u] holds coefficient j at output column u, zero-padded by
// k - 1 on both sides (L = W + 2(k - 1)); g[j * W + s] = sum over the windows containing
// source column s, each counted as often as its taps read s.
template <typename T>
SCDEPTH_CPU_CLONES
void adjoint_row(const T* f, T* g, int64_t W, int k) {
  const int64_t p = k / 2, L = W + 2 * (k - 1);
  for (int j = 0; j < 4; ++j) {
    const T* fj = f + j * L;
    T* gj = g + j * W;
    // The k output columns centred within p of s (those outside the image hold 0).
    box_taps(k, fj + p, 1, gj, W, T(1));
    // Within p of an edge (s <= p, s >= W - 1 - p) a window may also read s through the
    // reflection: there the general sum, with each window's tap count.
    auto edge = [&](int64_t s) {
      T acc = T(0);
      for (int64_t d = -p; d <= p; ++d) {
        acc += static_cast<T>(reflect_multiplicity(s, s + d, W, p)) * fj[k - 1 + s + d];
      }
      gj[s] = acc;
    };
    const int64_t head = std::min(W, p + 1);
    for (int64_t s = 0; s < head; ++s) edge(s);
    for (int64_t s = std::max(head, W - 1 - p); s < W; ++s) edge(s);
  }
}

template <typename scalar_t>
void backward_impl(const at::Tensor& grad_photo, const at::Tensor& grad_l1, const at::Tensor& tgt,
                   const at::Tensor& warped, const at::Tensor& weight, double alpha_, int64_t k,
                   at::Tensor& grad_tgt, at::Tensor& grad_warped, at::Tensor& grad_weight) {
  using T = at::opmath_type<scalar_t>;
  const int64_t B = tgt.size(0), C = tgt.size(1), H = tgt.size(2), W = tgt.size(3);
  const int64_t HW = H * W, p = k / 2, L = W + 2 * (k - 1), W4 = 4 * W;
  const int64_t ring_rows = k;  // rows q - 2p .. q: those of the windows containing row q - p
  const T alpha = static_cast<T>(alpha_), inv_c = T(1) / T(C);
  const T inv_area = T(1) / T(k * k);
  const scalar_t* x = tgt.const_data_ptr<scalar_t>();
  const scalar_t* y = warped.const_data_ptr<scalar_t>();
  const scalar_t* w = weight.defined() ? weight.const_data_ptr<scalar_t>() : nullptr;
  const scalar_t* gph = grad_photo.const_data_ptr<scalar_t>();
  const scalar_t* gl1 = grad_l1.const_data_ptr<scalar_t>();
  scalar_t* gx_out = grad_tgt.mutable_data_ptr<scalar_t>();
  scalar_t* gy_out = grad_warped.mutable_data_ptr<scalar_t>();
  scalar_t* gw_out = w != nullptr ? grad_weight.mutable_data_ptr<scalar_t>() : nullptr;
  const Bands bands = make_bands(B, H);
  at::parallel_for(0, bands.tasks, 1, [&](int64_t begin, int64_t end) {
    WindowSums<T, scalar_t> sums(H, W, static_cast<int>(k));
    std::vector<T> m(5 * W), srow(W), xbuf(W), ybuf(W);
    std::vector<T> f(4 * L, T(0));           // coefficient rows, zero-padded (pads stay 0)
    std::vector<T> ring(ring_rows * W4);     // row adjoints of the last k output rows
    std::vector<T> run(W4), gv(W4);          // window sum; gathered coefficients
    std::vector<T> gterm(bands.rows * W);    // dL/d photo_term per band row (as term_grad_row)
    std::vector<T> pw(w != nullptr ? bands.rows * W : 0);  // sum over channels of photo_term
    std::vector<T> gterm_q(W);
    auto ring_row = [&](int64_t q) { return ring.data() + (q % ring_rows) * W4; };
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / bands.per_image;
      const int64_t s0 = (task % bands.per_image) * bands.rows;
      const int64_t s1 = std::min(H, s0 + bands.rows);
      // Output rows whose windows read the band (those read through the reflection are
      // among them: reflect_multiplicity is 0 beyond p).
      const int64_t q0 = std::max<int64_t>(0, s0 - p), q1 = std::min(H, s1 + p);
      const int64_t img = b * HW;
      for (int64_t s = s0; s < s1; ++s) {
        term_grad_row(gph + img + s * W, w != nullptr ? w + img + s * W : nullptr, inv_c, W,
                      gterm.data() + (s - s0) * W);
      }
      std::fill(pw.begin(), pw.end(), T(0));
      for (int64_t c = 0; c < C; ++c) {
        const int64_t plane = (b * C + c) * HW;
        const scalar_t* xc = x + plane;
        const scalar_t* yc = y + plane;
        // Source row s, once the ring holds every output row whose window contains it.
        // run = plain sum of the row adjoints of rows s - p .. s + p inside the image (away
        // from the top and bottom: the whole ring), summed afresh for every row: a running sum
        // would keep a NaN or the rounding of a huge value for the rest of the band. Rows
        // within p of the top or bottom add the reflected windows.
        auto finish_row = [&](int64_t s) {
          if (s - p >= 0 && s + p < H) {
            box_taps(static_cast<int>(k), ring.data(), W4, run.data(), W4, T(1));
          } else {
            std::fill(run.begin(), run.end(), T(0));
            for (int64_t q = std::max<int64_t>(0, s - p); q <= std::min(H - 1, s + p); ++q) {
              axpy(W4, T(1), ring_row(q), run.data());
            }
          }
          const T* g = run.data();
          if (s <= p || s >= H - 1 - p) {
            std::copy(run.begin(), run.end(), gv.begin());
            for (int64_t q = std::max<int64_t>(0, s - p); q <= std::min(H - 1, s + p); ++q) {
              const int extra = reflect_multiplicity(s, q, H, p) - 1;
              if (extra > 0) axpy(W4, static_cast<T>(extra), ring_row(q), gv.data());
            }
            g = gv.data();
          }
          const int64_t row = s * W;
          grad_row(as_compute(xc + row, W, xbuf.data()), as_compute(yc + row, W, ybuf.data()), g,
                   gterm.data() + (s - s0) * W, gl1 + img + row, alpha, inv_c, W,
                   gx_out + plane + row, gy_out + plane + row);
        };
        for (int64_t q = q0; q < q1; ++q) {
          if (q == q0) {
            sums.start(xc, yc, q);
          } else {
            sums.advance(xc, yc, q);
          }
          sums.means(m.data());
          const int64_t row = q * W;
          const T* gt = gterm.data() + (q - s0) * W;
          if (q < s0 || q >= s1) {  // a halo row: its term gradient is not stored
            term_grad_row(gph + img + row, w != nullptr ? w + img + row : nullptr, inv_c, W,
                          gterm_q.data());
            gt = gterm_q.data();
          }
          T* fr = f.data() + (k - 1);
          coeff_row(m.data(), gt, W, alpha, inv_area, fr, fr + L, fr + 2 * L, fr + 3 * L,
                    srow.data());
          if (w != nullptr && q >= s0 && q < s1) {
            photo_term_row(as_compute(xc + row, W, xbuf.data()),
                           as_compute(yc + row, W, ybuf.data()), srow.data(), W, alpha,
                           pw.data() + (q - s0) * W);
          }
          adjoint_row(f.data(), ring_row(q), W, static_cast<int>(k));
          // Row q - p has now seen every window that contains it.
          if (q - p >= s0 && q - p < s1) finish_row(q - p);
        }
        // The last p rows of the image, whose windows end at row H - 1.
        for (int64_t s = std::max(s0, q1 - p); s < s1; ++s) finish_row(s);
      }
      if (w != nullptr) {
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t row = img + s * W;
          weight_grad_row(gph + row, pw.data() + (s - s0) * W, inv_c, W, gw_out + row);
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> forward_cpu(const at::Tensor& tgt_, const at::Tensor& warped_,
                                               const std::optional<at::Tensor>& weight_,
                                               double alpha, int64_t window) {
  check_args(tgt_, warped_, weight_, alpha, window);
  const auto tgt = tgt_.contiguous(), warped = warped_.contiguous();
  const auto weight = weight_.has_value() && weight_->defined() ? weight_->contiguous()
                                                                 : at::Tensor();
  const int64_t B = tgt.size(0), H = tgt.size(2), W = tgt.size(3);
  auto photo = at::empty({B, 1, H, W}, tgt.options());
  auto l1 = at::empty({B, 1, H, W}, tgt.options());
  if (B == 0) return {photo, l1};
  SCDEPTH_DISPATCH_FLOATING(tgt.scalar_type(), "photometric_error_cpu", [&] {
    forward_impl<scalar_t>(tgt, warped, weight, alpha, window, photo, l1);
  });
  return {photo, l1};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(
    const at::Tensor& grad_photo_, const at::Tensor& grad_l1_, const at::Tensor& tgt_,
    const at::Tensor& warped_, const std::optional<at::Tensor>& weight_, double alpha,
    int64_t window) {
  check_backward_args(grad_photo_, grad_l1_, tgt_, warped_, weight_, alpha, window);
  const auto grad_photo = grad_photo_.contiguous(), grad_l1 = grad_l1_.contiguous();
  const auto tgt = tgt_.contiguous(), warped = warped_.contiguous();
  const bool has_weight = weight_.has_value() && weight_->defined();
  const auto weight = has_weight ? weight_->contiguous() : at::Tensor();
  auto grad_tgt = at::empty(tgt.sizes(), tgt.options());
  auto grad_warped = at::empty(tgt.sizes(), tgt.options());
  auto grad_weight = has_weight ? at::empty(weight.sizes(), tgt.options())
                                : at::empty({0}, tgt.options());
  if (tgt.size(0) == 0) return {grad_tgt, grad_warped, grad_weight};
  SCDEPTH_DISPATCH_FLOATING(tgt.scalar_type(), "photometric_error_backward_cpu", [&] {
    backward_impl<scalar_t>(grad_photo, grad_l1, tgt, warped, weight, alpha, window, grad_tgt,
                            grad_warped, grad_weight);
  });
  return {grad_tgt, grad_warped, grad_weight};
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CPU, m) {
  m.impl("photometric_error", &forward_cpu);
  m.impl("photometric_error_backward", &backward_cpu);
}

}  // namespace scdepth::photometric
