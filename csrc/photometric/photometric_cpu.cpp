// CPU kernels of photometric_error: parallel over (image, band of rows) tasks. A task walks its
// rows once, keeping running sums of the five statistics over the k padded rows of every padded
// column (an add and a subtract per row step, vectorised along the row), and sums k of those
// column sums per output pixel. Nothing image-sized is allocated besides the outputs: each task
// works in a few rows of scratch.
//
// Backward gathers (single writer, no atomics): a task owns a band of source rows, recomputes
// the statistics of the output rows whose windows reach the band (p more on each side), turns
// them into the four adjoint coefficient rows of photometric.h, and sums each coefficient over
// the windows containing each source pixel: along the row with a k-tap stencil, then across the
// last k rows, kept in a ring. The reflection padding enters through reflect_multiplicity.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/launch.h"
#include "photometric/photometric.h"
#include "photometric/photometric_args.h"

namespace scdepth::photometric {
namespace {

// Rows per task: enough tasks for every thread, and a bound on how many steps a running sum
// takes before it is summed afresh (its rounding drift).
constexpr int64_t kMinBandRows = 8;
constexpr int64_t kMaxBandRows = 64;

struct Bands {
  int64_t rows;       // rows per band
  int64_t per_image;  // bands per image
  int64_t tasks;      // B * per_image
};

Bands make_bands(int64_t B, int64_t H) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t rows =
      std::clamp<int64_t>(ceil_div<int64_t>(B * H, 4 * threads), kMinBandRows, kMaxBandRows);
  const int64_t per_image = ceil_div<int64_t>(H, rows);
  return {rows, per_image, B * per_image};
}

// Running k-row sums of x, y, x², y², xy over the reflection-padded columns of one channel
// plane (x, y: contiguous H x W). Works in compute type T; reads the input type S.
template <typename T, typename S>
class WindowSums {
 public:
  WindowSums(int64_t H, int64_t W, int k)
      : H_(H), W_(W), k_(k), p_(k / 2), Wp_(W + 2 * (k / 2)), col_(5 * Wp_), add_(2 * Wp_),
        drop_(2 * Wp_) {}

  // The column sums of the window of output row q, summed afresh.
  void start(const S* x, const S* y, int64_t q) {
    std::fill(col_.begin(), col_.end(), T(0));
    for (int t = 0; t < k_; ++t) {
      pad_row(x, y, reflect(q + t - p_, H_), add_.data());
      step(nullptr);
    }
  }

  // From the window of output row q - 1 to that of row q: add padded row q + p, drop q - p - 1.
  void advance(const S* x, const S* y, int64_t q) {
    pad_row(x, y, reflect(q + p_, H_), add_.data());
    pad_row(x, y, reflect(q - p_ - 1, H_), drop_.data());
    step(drop_.data());
  }

  // out[j * W + u], j = E[x], E[y], E[x²], E[y²], E[xy]: the k x k window means of the row.
  void means(T* __restrict__ out) const {
    const T inv_area = T(1) / T(k_ * k_);
    for (int j = 0; j < 5; ++j) {
      const T* __restrict__ c = col_.data() + j * Wp_;
      T* __restrict__ o = out + j * W_;
      for (int64_t u = 0; u < W_; ++u) o[u] = c[u];
      for (int t = 1; t < k_; ++t) {
        for (int64_t u = 0; u < W_; ++u) o[u] += c[u + t];
      }
      for (int64_t u = 0; u < W_; ++u) o[u] *= inv_area;
    }
  }

 private:
  // Source row s of x and y, reflection-padded by p on both sides, into dst[0, 2 Wp).
  void pad_row(const S* x, const S* y, int64_t s, T* __restrict__ dst) const {
    const S* rows[2] = {x + s * W_, y + s * W_};
    for (int i = 0; i < 2; ++i) {
      const S* __restrict__ r = rows[i];
      T* __restrict__ d = dst + i * Wp_;
      for (int64_t u = 0; u < W_; ++u) d[p_ + u] = static_cast<T>(r[u]);
      for (int64_t j = 1; j <= p_; ++j) {
        d[p_ - j] = d[p_ + j];
        d[p_ + W_ - 1 + j] = d[p_ + W_ - 1 - j];
      }
    }
  }

  // Adds the products of the padded rows in add_, minus those in `drop` when given.
  void step(const T* drop) {
    T* __restrict__ c = col_.data();
    const T* __restrict__ xa = add_.data();
    const T* __restrict__ ya = xa + Wp_;
    const int64_t n = Wp_;
    if (drop == nullptr) {
      for (int64_t i = 0; i < n; ++i) {
        c[i] += xa[i];
        c[n + i] += ya[i];
        c[2 * n + i] += xa[i] * xa[i];
        c[3 * n + i] += ya[i] * ya[i];
        c[4 * n + i] += xa[i] * ya[i];
      }
      return;
    }
    const T* __restrict__ xd = drop;
    const T* __restrict__ yd = drop + Wp_;
    for (int64_t i = 0; i < n; ++i) {
      c[i] += xa[i] - xd[i];
      c[n + i] += ya[i] - yd[i];
      c[2 * n + i] += xa[i] * xa[i] - xd[i] * xd[i];
      c[3 * n + i] += ya[i] * ya[i] - yd[i] * yd[i];
      c[4 * n + i] += xa[i] * ya[i] - xd[i] * yd[i];
    }
  }

  int64_t H_, W_;
  int k_;
  int64_t p_, Wp_;
  std::vector<T> col_;         // 5 x Wp column sums
  std::vector<T> add_, drop_;  // padded x and y rows
};

// g_term[u] = dL/d(photo term of one channel) = grad_photo * weight / C along a row.
template <typename T, typename S>
void term_grad_row(const S* __restrict__ gp, const S* __restrict__ w, T inv_c, int64_t W,
                   T* __restrict__ out) {
  if (w != nullptr) {
    for (int64_t u = 0; u < W; ++u) out[u] = static_cast<T>(gp[u]) * static_cast<T>(w[u]) * inv_c;
  } else {
    for (int64_t u = 0; u < W; ++u) out[u] = static_cast<T>(gp[u]) * inv_c;
  }
}

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
    std::vector<T> m(5 * W), acc(2 * W);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / bands.per_image;
      const int64_t r0 = (task % bands.per_image) * bands.rows;
      const int64_t r1 = std::min(H, r0 + bands.rows);
      for (int64_t q = r0; q < r1; ++q) {
        T* __restrict__ acc_photo = acc.data();
        T* __restrict__ acc_l1 = acc.data() + W;
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
          const T* __restrict__ mm = m.data();
          const scalar_t* __restrict__ xr = xc + q * W;
          const scalar_t* __restrict__ yr = yc + q * W;
          for (int64_t u = 0; u < W; ++u) {
            const Moments<T> mo{mm[u], mm[W + u], mm[2 * W + u], mm[3 * W + u], mm[4 * W + u]};
            const T d = static_cast<T>(xr[u]) - static_cast<T>(yr[u]);
            acc_photo[u] += photo_term(alpha, d, ssim(mo));
            acc_l1[u] += d < T(0) ? -d : d;
          }
        }
        const int64_t row = b * HW + q * W;
        for (int64_t u = 0; u < W; ++u) {
          const T wt = w != nullptr ? static_cast<T>(w[row + u]) : T(1);
          out_photo[row + u] = static_cast<scalar_t>(wt * (acc_photo[u] * inv_c));
          out_l1[row + u] = static_cast<scalar_t>(acc_l1[u] * inv_c);
        }
      }
    }
  });
}

// The adjoint of the padded box filter along one row, for the four coefficient rows of one
// output row: f[j * L + (k - 1) + u] holds coefficient j at output column u, zero-padded by
// k - 1 on both sides (L = W + 2(k - 1)); g[j * W + s] = sum over the windows containing
// source column s, each counted as often as its taps read s.
template <typename T>
void adjoint_row(const T* __restrict__ f, T* __restrict__ g, int64_t W, int k) {
  const int64_t p = k / 2, L = W + 2 * (k - 1);
  for (int j = 0; j < 4; ++j) {
    const T* __restrict__ fj = f + j * L;
    T* __restrict__ gj = g + j * W;
    // Columns whose windows are not reflected: the k outputs centred within p of s.
    for (int64_t s = 0; s < W; ++s) gj[s] = fj[s + p];
    for (int t = 1; t < k; ++t) {
      for (int64_t s = 0; s < W; ++s) gj[s] += fj[s + p + t];
    }
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
  const int64_t HW = H * W, p = k / 2, L = W + 2 * (k - 1);
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
    std::vector<T> m(5 * W), gterm(W), srow(W), gv(4 * W);
    std::vector<T> f(4 * L, T(0));     // coefficient rows, zero-padded (the pads stay 0)
    std::vector<T> ring(k * 4 * W);    // adjoint rows of the last k output rows
    std::vector<T> pw(w != nullptr ? bands.rows * W : 0);  // sum over channels of photo_term
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / bands.per_image;
      const int64_t s0 = (task % bands.per_image) * bands.rows;
      const int64_t s1 = std::min(H, s0 + bands.rows);
      // Output rows whose windows read the band (those read through the reflection are
      // among them: reflect_multiplicity is 0 beyond p).
      const int64_t q0 = std::max<int64_t>(0, s0 - p), q1 = std::min(H, s1 + p);
      std::fill(pw.begin(), pw.end(), T(0));
      for (int64_t c = 0; c < C; ++c) {
        const int64_t plane = (b * C + c) * HW;
        const scalar_t* xc = x + plane;
        const scalar_t* yc = y + plane;
        // Source row s: gather the ring's adjoint rows over the windows containing it, then
        // combine with x and y and add the L1 gradient.
        auto finish_row = [&](int64_t s) {
          std::fill(gv.begin(), gv.end(), T(0));
          for (int64_t d = -p; d <= p; ++d) {
            const int64_t q = s + d;
            const int mult = q >= 0 && q < H ? reflect_multiplicity(s, q, H, p) : 0;
            if (mult == 0) continue;
            const T mt = static_cast<T>(mult);
            const T* __restrict__ src = ring.data() + (q % k) * 4 * W;
            T* __restrict__ dst = gv.data();
            for (int64_t i = 0; i < 4 * W; ++i) dst[i] += mt * src[i];
          }
          const int64_t row = s * W;
          term_grad_row(gph + b * HW + row, w != nullptr ? w + b * HW + row : nullptr, inv_c, W,
                        gterm.data());
          const scalar_t* __restrict__ xr = xc + row;
          const scalar_t* __restrict__ yr = yc + row;
          const scalar_t* __restrict__ g1 = gl1 + b * HW + row;
          const T* __restrict__ gt = gterm.data();
          const T* __restrict__ g = gv.data();
          scalar_t* __restrict__ gx = gx_out + plane + row;
          scalar_t* __restrict__ gy = gy_out + plane + row;
          for (int64_t u = 0; u < W; ++u) {
            const T xv = static_cast<T>(xr[u]), yv = static_cast<T>(yr[u]);
            const T gd = diff_grad(alpha, xv - yv, gt[u], static_cast<T>(g1[u]) * inv_c);
            gx[u] = static_cast<scalar_t>(g[u] + T(2) * xv * g[2 * W + u] + yv * g[3 * W + u] + gd);
            gy[u] = static_cast<scalar_t>(g[W + u] + T(2) * yv * g[2 * W + u] + xv * g[3 * W + u] -
                                          gd);
          }
        };
        for (int64_t q = q0; q < q1; ++q) {
          if (q == q0) {
            sums.start(xc, yc, q);
          } else {
            sums.advance(xc, yc, q);
          }
          sums.means(m.data());
          const int64_t row = q * W;
          term_grad_row(gph + b * HW + row, w != nullptr ? w + b * HW + row : nullptr, inv_c, W,
                        gterm.data());
          const T* __restrict__ mm = m.data();
          const T* __restrict__ gt = gterm.data();
          T* __restrict__ fr = f.data() + (k - 1);
          T* __restrict__ sr = srow.data();
          for (int64_t u = 0; u < W; ++u) {
            const Moments<T> mo{mm[u], mm[W + u], mm[2 * W + u], mm[3 * W + u], mm[4 * W + u]};
            const Coeffs<T> co = ssim_coeffs(mo, alpha, gt[u], inv_area, sr[u]);
            fr[u] = co.mx;
            fr[L + u] = co.my;
            fr[2 * L + u] = co.sq;
            fr[3 * L + u] = co.xy;
          }
          if (w != nullptr && q >= s0 && q < s1) {
            const scalar_t* __restrict__ xr = xc + row;
            const scalar_t* __restrict__ yr = yc + row;
            T* __restrict__ acc = pw.data() + (q - s0) * W;
            for (int64_t u = 0; u < W; ++u) {
              acc[u] += photo_term(alpha, static_cast<T>(xr[u]) - static_cast<T>(yr[u]), sr[u]);
            }
          }
          adjoint_row(f.data(), ring.data() + (q % k) * 4 * W, W, static_cast<int>(k));
          // Row q - p has now seen every window that contains it.
          if (q - p >= s0 && q - p < s1) finish_row(q - p);
        }
        // The last p rows of the image, whose windows end at row H - 1.
        for (int64_t s = std::max(s0, q1 - p); s < s1; ++s) finish_row(s);
      }
      if (w != nullptr) {
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t row = b * HW + s * W;
          const T* __restrict__ acc = pw.data() + (s - s0) * W;
          for (int64_t u = 0; u < W; ++u) {
            gw_out[row + u] =
                static_cast<scalar_t>(static_cast<T>(gph[row + u]) * (acc[u] * inv_c));
          }
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
