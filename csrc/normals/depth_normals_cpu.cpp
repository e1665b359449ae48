// CPU kernels of depth_normals: parallel over (image, band of rows) tasks. A task walks its rows
// in order and keeps the last few depth rows lifted to points P (replicate-padded) and their
// differences U along x in a ring, so that each depth row is lifted once per band (the rows at
// a band's edges once more, by the band beside it). All arithmetic runs in row loops over plain
// arrays that gcc vectorises, built for baseline x86-64 and for AVX2, and calls depth_normals.h
// on the same operands as the CUDA kernels: both give the same bits.
//
// The backward is one pass over each band, without atomics: a depth row y needs the
// row-filtered dL/d(du), dL/d(dv) of the output rows y - 1, y, y + 1 (depth_normals.h, steps 1
// and 2 along x), which the band computes once each and keeps in a second ring; only dL/dd
// leaves the band. Every gradient element has one writer and is summed in one fixed order, and
// the rows that two bands both compute come out the same in each: deterministic, and the same
// at any thread count. (Two passes, step 1 for the whole batch into a buffer and then step 2,
// took more than twice as long on one thread at the KITTI size: 24 more bytes per pixel
// written and read back in float32, into a fresh allocation at every call.)
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/cpu_bands.h"
#include "common/cpu_simd.h"
#include "common/launch.h"
#include "normals/depth_normals.h"
#include "normals/depth_normals_args.h"

namespace scdepth::depth_normals {
namespace {

// Rows per task: enough tasks for every thread, and few rows recomputed at the bands' edges.
constexpr int64_t kMinBandRows = 16;
constexpr int64_t kMaxBandRows = 128;

Bands make_bands(int64_t B, int64_t H) {
  return scdepth::make_bands(B, H, kMinBandRows, kMaxBandRows);
}

// ---- Row loops. gcc honours __restrict__ on parameters (not on local pointers into one
// buffer), so every vectorised loop is a function of its own. A row of 3-vectors is stored as
// 3 planes, component k at [k * stride]; padded rows (stride W + 2) hold column x at x + 1.
// The loops index with the bare column x (offsets go into the pointers or into int64 strides):
// under -fwrapv, which Python's build flags set, gcc vectorises no loop that reads at int
// x + 1 or k * W + x, whose wrap-around it cannot rule out.

// Element x of a row of 3-vectors stored as 3 planes `stride` apart. The helpers of the row
// loops are always inlined: a call left in a loop stops its vectorisation.
template <typename T>
C10_ALWAYS_INLINE Vec3<T> load3(const T* row, int64_t stride, int x) {
  return {row[x], row[stride + x], row[2 * stride + x]};
}

template <typename T>
C10_ALWAYS_INLINE void store3(T* row, int64_t stride, int x, const Vec3<T>& v) {
  row[x] = v.x;
  row[stride + x] = v.y;
  row[2 * stride + x] = v.z;
}

// P of depth row y, replicate-padded.
template <typename T, typename S>
SCDEPTH_CPU_CLONES
void points_row(int W, const S* __restrict__ depth, const T* __restrict__ Kinv_, int y,
                T* __restrict__ P) {
  T Kinv[9];
  for (int k = 0; k < 9; ++k) Kinv[k] = Kinv_[k];
  const int64_t s = int64_t(W) + 2;
  for (int x = 0; x < W; ++x) {
    store3(P + 1, s, x, point(Kinv, static_cast<T>(depth[x]), T(x), T(y)));
  }
  for (int64_t k = 0; k < 3; ++k) {
    P[k * s] = P[k * s + 1];
    P[k * s + W + 1] = P[k * s + W];
  }
}

// U = P(x + 1) - P(x - 1) along a padded row of P (3 planes of W).
template <typename T>
SCDEPTH_CPU_CLONES
void differences_row(int W, const T* __restrict__ P, T* __restrict__ U) {
  const int64_t s = int64_t(W) + 2;
  for (int x = 0; x < W; ++x) store3(U, W, x, load3(P + 2, s, x) - load3(P, s, x));
}

// The rows that du and dv of output row y read: U of depth rows y - 1, y, y + 1 and the padded
// P of rows y - 1 and y + 1, the rows clamped to the image.
template <typename T>
struct Stencil {
  const T *Ua, *Um, *Uc, *Pa, *Pc;
};

// du, dv at column x from a Stencil's rows (the same operands as derivatives() gathers):
// V at columns x - 1, x, x + 1 sits at x, x + 1, x + 2 of the padded rows.
template <typename T>
C10_ALWAYS_INLINE Derivatives<T> row_derivatives(const T* Ua, const T* Um, const T* Uc,
                                                 const T* Pa, const T* Pc, int W, int x) {
  const int64_t s = int64_t(W) + 2;
  const Vec3<T> V0 = load3(Pc, s, x) - load3(Pa, s, x);
  const Vec3<T> V1 = load3(Pc + 1, s, x) - load3(Pa + 1, s, x);
  const Vec3<T> V2 = load3(Pc + 2, s, x) - load3(Pa + 2, s, x);
  return {smooth(load3(Ua, W, x), load3(Um, W, x), load3(Uc, W, x)), smooth(V0, V1, V2)};
}

template <typename T, typename S>
SCDEPTH_CPU_CLONES
void normal_row(int W, const T* __restrict__ Ua, const T* __restrict__ Um,
                const T* __restrict__ Uc, const T* __restrict__ Pa, const T* __restrict__ Pc,
                int64_t HW, S* __restrict__ out) {
  for (int x = 0; x < W; ++x) {
    const Vec3<T> n = unit_normal(row_derivatives(Ua, Um, Uc, Pa, Pc, W, x));
    out[x] = static_cast<S>(n.x);
    out[HW + x] = static_cast<S>(n.y);
    out[2 * HW + x] = static_cast<S>(n.z);
  }
}

// Step 1 of output row y: dL/d(du) and dL/d(dv) (3 padded planes each; the pads stay 0) from
// the incoming gradient g (3 planes of the batch's [B, 3, H, W], HW apart). Two output
// pointers: gcc checks at run time that the planes of one pointer do not overlap, and six
// planes of one would need more checks than it makes.
template <typename T, typename S>
SCDEPTH_CPU_CLONES
void grad_row(int W, const T* __restrict__ Ua, const T* __restrict__ Um,
              const T* __restrict__ Uc, const T* __restrict__ Pa, const T* __restrict__ Pc,
              const S* __restrict__ g, int64_t HW, T* __restrict__ Gu, T* __restrict__ Gv) {
  const int64_t s = int64_t(W) + 2;
  for (int x = 0; x < W; ++x) {
    const Vec3<T> gn = {static_cast<T>(g[x]), static_cast<T>(g[HW + x]),
                        static_cast<T>(g[2 * HW + x])};
    const auto d = normal_grad(row_derivatives(Ua, Um, Uc, Pa, Pc, W, x), gn);
    store3(Gu + 1, s, x, d.du);
    store3(Gv + 1, s, x, d.dv);
  }
}

// Step 2 along a row: the row_filter of (Gu, Gv) (padded) into (Fu, Fv) (3 planes of W each),
// with the column weights cw (6 planes of W: the smoothing weights of c = -1, 0, +1, then the
// difference weights).
template <typename T>
SCDEPTH_CPU_CLONES
void filter_row(int W, const T* __restrict__ Gu, const T* __restrict__ Gv,
                const T* __restrict__ cw, T* __restrict__ Fu, T* __restrict__ Fv) {
  const int64_t w = W, s = w + 2;
  for (int x = 0; x < W; ++x) {
    const GatherWeights<T> cols = {{cw[x], cw[w + x], cw[2 * w + x]},
                                   {cw[3 * w + x], cw[4 * w + x], cw[5 * w + x]}};
    const Derivatives<T> g[3] = {{load3(Gu, s, x), load3(Gv, s, x)},
                                 {load3(Gu + 1, s, x), load3(Gv + 1, s, x)},
                                 {load3(Gu + 2, s, x), load3(Gv + 2, s, x)}};
    const auto f = row_filter(cols, g);
    store3(Fu, W, x, f.du);
    store3(Fv, W, x, f.dv);
  }
}

// dL/dd of depth row y from the filtered rows of outputs y - 1, y, y + 1 (F0, F1, F2: 6 planes
// of W each; zeros for rows outside the image).
template <typename T, typename S>
SCDEPTH_CPU_CLONES
void depth_grad_row(int W, const T* __restrict__ F0, const T* __restrict__ F1,
                    const T* __restrict__ F2, const GatherWeights<T> rows,
                    const T* __restrict__ Kinv_, int y, S* __restrict__ out) {
  T Kinv[9];
  for (int k = 0; k < 9; ++k) Kinv[k] = Kinv_[k];
  const int64_t v = 3 * int64_t(W);  // dL/d(dv)'s planes follow dL/d(du)'s
  for (int x = 0; x < W; ++x) {
    const Derivatives<T> f[3] = {{load3(F0, W, x), load3(F0 + v, W, x)},
                                 {load3(F1, W, x), load3(F1 + v, W, x)},
                                 {load3(F2, W, x), load3(F2 + v, W, x)}};
    out[x] = static_cast<S>(depth_grad(combine(rows, f), Kinv, T(x), T(y)));
  }
}

// ---- Rings of rows

// The depth rows of one image lifted to P and U, the last kRing kept; a row is computed on its
// first use. Three consecutive rows never share a slot.
template <typename T, typename S>
class PointRows {
 public:
  PointRows(const S* depth, const T* Kinv, int64_t H, int W)
      : depth_(depth), Kinv_(Kinv), H_(H), W_(W),
        row_(3 * (int64_t(W) + 2) + 3 * int64_t(W)) {
    buf_.resize(kRing * row_);
    std::fill(key_, key_ + kRing, int64_t(-1));
  }

  Stencil<T> stencil(int64_t y) {
    const T* a = get(clamp_index(y - 1, H_));
    const T* m = get(y);
    const T* c = get(clamp_index(y + 1, H_));
    const int64_t u = 3 * (int64_t(W_) + 2);  // U follows P in a slot
    return {a + u, m + u, c + u, a, c};
  }

 private:
  static constexpr int kRing = 4;

  const T* get(int64_t y) {
    T* slot = buf_.data() + (y % kRing) * row_;
    if (key_[y % kRing] != y) {
      points_row(W_, depth_ + y * W_, Kinv_, static_cast<int>(y), slot);
      differences_row(W_, slot, slot + 3 * (int64_t(W_) + 2));
      key_[y % kRing] = y;
    }
    return slot;
  }

  const S* depth_;
  const T* Kinv_;
  int64_t H_;
  int W_;
  int64_t row_;
  std::vector<T> buf_;
  int64_t key_[kRing];
};

// The column weights of step 2 (6 planes of W: gather_weights(x, W).smooth, then .diff).
template <typename T>
std::vector<T> column_weights(int W) {
  std::vector<T> cw(6 * int64_t(W));
  for (int x = 0; x < W; ++x) {
    const auto w = gather_weights<T>(x, W);
    for (int64_t c = 0; c < 3; ++c) {
      cw[c * W + x] = w.smooth[c];
      cw[(3 + c) * W + x] = w.diff[c];
    }
  }
  return cw;
}

// Steps 1 and 2 along x of the output rows of one image (6 planes of W: row_filter's du
// part, then its dv part) from its points and the incoming gradient (3 planes of the batch,
// HW apart), the last kRing kept; zeros for rows outside the image. Three consecutive rows
// never share a slot.
template <typename T, typename S>
class FilteredRows {
 public:
  FilteredRows(PointRows<T, S>& points, const S* grad, int64_t HW, const T* cw, int64_t H, int W)
      : points_(points), grad_(grad), HW_(HW), cw_(cw), H_(H), W_(W),
        G_(6 * (int64_t(W) + 2), T(0)), zeros_(6 * int64_t(W), T(0)),
        buf_(kRing * 6 * int64_t(W)) {
    std::fill(key_, key_ + kRing, int64_t(-1));
  }

  const T* get(int64_t r) {
    if (r < 0 || r >= H_) return zeros_.data();
    T* slot = buf_.data() + (r % kRing) * 6 * int64_t(W_);
    if (key_[r % kRing] != r) {
      const auto st = points_.stencil(r);
      T* Gv = G_.data() + 3 * (int64_t(W_) + 2);  // the pads of G_ stay 0
      grad_row(W_, st.Ua, st.Um, st.Uc, st.Pa, st.Pc, grad_ + r * W_, HW_, G_.data(), Gv);
      filter_row(W_, G_.data(), Gv, cw_, slot, slot + 3 * int64_t(W_));
      key_[r % kRing] = r;
    }
    return slot;
  }

 private:
  static constexpr int kRing = 4;

  PointRows<T, S>& points_;
  const S* grad_;
  int64_t HW_;
  const T* cw_;
  int64_t H_;
  int W_;
  std::vector<T> G_, zeros_, buf_;
  int64_t key_[kRing];
};

template <typename F>
void for_bands(int64_t B, int64_t H, const F& f) {
  const Bands bands = make_bands(B, H);
  at::parallel_for(0, bands.tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / bands.per_image;
      const int64_t y0 = (task % bands.per_image) * bands.rows;
      f(b, y0, std::min(H, y0 + bands.rows));
    }
  });
}

at::Tensor forward_cpu(const at::Tensor& depth_, const at::Tensor& K_) {
  check_args(depth_, K_);
  const auto depth = depth_.contiguous(), K = K_.contiguous();
  const int64_t B = depth.size(0), H = depth.size(2), HW = H * depth.size(3);
  const int W = static_cast<int>(depth.size(3));
  auto normal = at::empty({B, 3, H, W}, depth.options());
  if (B * HW == 0) return normal;
  SCDEPTH_DISPATCH_FLOATING(depth.scalar_type(), "depth_normals_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* d = depth.const_data_ptr<scalar_t>();
    const scalar_t* Kp = K.const_data_ptr<scalar_t>();
    scalar_t* out = normal.mutable_data_ptr<scalar_t>();
    for_bands(B, H, [&](int64_t b, int64_t y0, int64_t y1) {
      T Kinv[9];
      invert_intrinsics(Kp + 9 * b, Kinv);
      PointRows<T, scalar_t> rows(d + b * HW, Kinv, H, W);
      for (int64_t y = y0; y < y1; ++y) {
        const auto st = rows.stencil(y);
        normal_row(W, st.Ua, st.Um, st.Uc, st.Pa, st.Pc, HW, out + b * 3 * HW + y * W);
      }
    });
  });
  return normal;
}

at::Tensor backward_cpu(const at::Tensor& grad_normal_, const at::Tensor& depth_,
                        const at::Tensor& K_) {
  check_backward_args(grad_normal_, depth_, K_);
  const auto grad_normal = grad_normal_.contiguous(), depth = depth_.contiguous();
  const auto K = K_.contiguous();
  const int64_t B = depth.size(0), H = depth.size(2), HW = H * depth.size(3);
  const int W = static_cast<int>(depth.size(3));
  auto grad_depth = at::empty(depth.sizes(), depth.options());
  if (B * HW == 0) return grad_depth;
  SCDEPTH_DISPATCH_FLOATING(depth.scalar_type(), "depth_normals_backward_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* d = depth.const_data_ptr<scalar_t>();
    const scalar_t* g = grad_normal.const_data_ptr<scalar_t>();
    const scalar_t* Kp = K.const_data_ptr<scalar_t>();
    scalar_t* out = grad_depth.mutable_data_ptr<scalar_t>();
    const std::vector<T> cw = column_weights<T>(W);
    for_bands(B, H, [&](int64_t b, int64_t y0, int64_t y1) {
      T Kinv[9];
      invert_intrinsics(Kp + 9 * b, Kinv);
      PointRows<T, scalar_t> rows(d + b * HW, Kinv, H, W);
      FilteredRows<T, scalar_t> filtered(rows, g + b * 3 * HW, HW, cw.data(), H, W);
      for (int64_t y = y0; y < y1; ++y) {
        const T* F0 = filtered.get(y - 1);
        const T* F1 = filtered.get(y);
        const T* F2 = filtered.get(y + 1);
        depth_grad_row(W, F0, F1, F2, gather_weights<T>(y, H), Kinv, static_cast<int>(y),
                       out + b * HW + y * W);
      }
    });
  });
  return grad_depth;
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CPU, m) {
  m.impl("depth_normals", &forward_cpu);
  m.impl("depth_normals_backward", &backward_cpu);
}

}  // namespace scdepth::depth_normals
