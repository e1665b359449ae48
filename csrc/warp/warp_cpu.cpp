// CPU kernels of inverse_warp. Forward and the depth/pose gradients run parallel over image
// rows; the source-gradient scatter runs parallel over channel planes, so no two threads
// write the same plane and the result is deterministic. float32 rows go through the AVX2
// kernels of warp_avx2.h where the CPU has AVX2 (8 pixels at a time, gathers included); the
// portable path projects each row in a tight loop the compiler vectorises, then samples and
// scatters pixel by pixel; it also finishes the last W mod 8 pixels of the AVX2 rows.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/launch.h"
#include "warp/warp.h"
#include "warp/warp_avx2.h"
#include "warp/warp_args.h"

namespace scdepth::warp {
namespace {

constexpr int64_t kGrainPixels = 8192;  // work per parallel_for chunk

int64_t row_grain(int64_t W) { return std::max<int64_t>(1, kGrainPixels / std::max<int64_t>(W, 1)); }

// project() for every pixel of one row, stored as structure of arrays. `front` is not
// stored but derived again from depth and z' (a stored bool stops gcc's vectoriser).
template <typename T, typename S>
class RowProjection {
 public:
  explicit RowProjection(int64_t W) : u_(W), v_(W), z_(W) {}

  void compute(const Params<T>& params, const S* depth_row, int64_t row) {
    const Params<T> p = params;  // a local copy: no aliasing with the stores below
    depth_ = depth_row;
    T* __restrict__ u = u_.data();
    T* __restrict__ v = v_.data();
    T* __restrict__ z = z_.data();
    const S* __restrict__ d = depth_row;
    const int W = static_cast<int>(u_.size());  // int: int64 -> float does not vectorise
    for (int i = 0; i < W; ++i) {
      const auto q = project(p, static_cast<T>(d[i]), T(i), T(row));
      u[i] = q.u;
      v[i] = q.v;
      z[i] = q.z;
    }
  }

  Projection<T> operator[](int64_t i) const {
    return {u_[i], v_[i], z_[i], in_front(static_cast<T>(depth_[i]), z_[i])};
  }

 private:
  std::vector<T> u_, v_, z_;
  const S* depth_ = nullptr;
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_cpu(const at::Tensor& src_,
                                                           const at::Tensor& depth_,
                                                           const at::Tensor& pose_,
                                                           const at::Tensor& K_,
                                                           int64_t src_grad_from) {
  check_args(src_, depth_, pose_, K_, src_grad_from);
  const auto src = src_.contiguous(), depth = depth_.contiguous();
  const auto pose = pose_.contiguous(), K = K_.contiguous();
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const int64_t HW = H * W;
  auto warped = at::empty({B, C, H, W}, src.options());
  auto computed_depth = at::empty({B, 1, H, W}, src.options());
  auto valid = at::empty({B, 1, H, W}, src.options());
  if (B * HW == 0) return {warped, computed_depth, valid};

  SCDEPTH_DISPATCH_FLOATING(src.scalar_type(), "inverse_warp_cpu", [&] {
    using T = at::opmath_type<scalar_t>;
    const scalar_t* s = src.const_data_ptr<scalar_t>();
    const scalar_t* d = depth.const_data_ptr<scalar_t>();
    const scalar_t* P = pose.const_data_ptr<scalar_t>();
    const scalar_t* Kp = K.const_data_ptr<scalar_t>();
    scalar_t* out = warped.mutable_data_ptr<scalar_t>();
    scalar_t* zo = computed_depth.mutable_data_ptr<scalar_t>();
    scalar_t* va = valid.mutable_data_ptr<scalar_t>();
    const bool vector_rows = avx2::usable<scalar_t>(HW);
    at::parallel_for(0, B * H, row_grain(W), [&](int64_t begin, int64_t end) {
      RowProjection<T, scalar_t> proj(W);
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / H, v = row % H, first = b * HW + v * W;
        const auto params = make_params<T>(Kp + 9 * b, P + 12 * b);
        const int64_t done =
            vector_rows ? avx2::forward_row(params, s + b * C * HW, C, HW, int(H), int(W),
                                            d + first, int(v), out + b * C * HW + v * W,
                                            zo + first, va + first)
                        : 0;
        if (done == W) continue;
        proj.compute(params, d + first, v);
        for (int64_t u = done; u < W; ++u) {
          const auto q = proj[u];
          zo[first + u] = static_cast<scalar_t>(q.z);
          va[first + u] = static_cast<scalar_t>(inside(q, H, W) ? 1 : 0);
          const auto c = corners(q, H, W);
          for (int64_t ch = 0; ch < C; ++ch) {
            const int64_t plane = (b * C + ch) * HW;
            out[plane + v * W + u] = static_cast<scalar_t>(c.any ? sample(s + plane, c) : T(0));
          }
        }
      }
    });
  });
  return {warped, computed_depth, valid};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_cpu(
    const at::Tensor& grad_warped_, const at::Tensor& grad_z_, const at::Tensor& src_,
    const at::Tensor& depth_, const at::Tensor& pose_, const at::Tensor& K_,
    int64_t src_grad_from) {
  check_backward_args(grad_warped_, grad_z_, src_, depth_, pose_, K_, src_grad_from);
  const auto gw = grad_warped_.contiguous(), gz = grad_z_.contiguous();
  const auto src = src_.contiguous(), depth = depth_.contiguous();
  const auto pose = pose_.contiguous(), K = K_.contiguous();
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const int64_t HW = H * W;
  const bool need_src_grad = src_grad_from < C;
  const auto acc = src.options().dtype(at::toOpMathType(src.scalar_type()));
  auto grad_depth = at::empty({B, 1, H, W}, depth.options());
  // Pose gradient: one partial sum per image row, summed afterwards (deterministic).
  auto pose_rows = at::zeros({B, H, 12}, acc);
  // The source gradient is accumulated in the compute type, then cast.
  auto grad_src = need_src_grad ? at::zeros({B, C, H, W}, acc) : at::empty({0}, src.options());
  if (B * HW > 0) {
    SCDEPTH_DISPATCH_FLOATING(src.scalar_type(), "inverse_warp_backward_cpu", [&] {
      using T = at::opmath_type<scalar_t>;
      const scalar_t* g = gw.const_data_ptr<scalar_t>();
      const scalar_t* gzp = gz.const_data_ptr<scalar_t>();
      const scalar_t* s = src.const_data_ptr<scalar_t>();
      const scalar_t* d = depth.const_data_ptr<scalar_t>();
      const scalar_t* P = pose.const_data_ptr<scalar_t>();
      const scalar_t* Kp = K.const_data_ptr<scalar_t>();
      scalar_t* gd = grad_depth.mutable_data_ptr<scalar_t>();
      T* prow = pose_rows.mutable_data_ptr<T>();
      T* gs = need_src_grad ? grad_src.mutable_data_ptr<T>() : nullptr;
      const bool vector_rows = avx2::usable<scalar_t>(HW);
      // One row of image b: depth and pose gradients (pose summed into pose_rows), and, when
      // `scatter`, the source gradient of channels src_grad_from and up.
      auto row_backward = [&](RowProjection<T, scalar_t>& proj, int64_t b, int64_t v,
                              bool scatter) {
        const int64_t first = b * HW + v * W;
        const auto p = make_params<T>(Kp + 9 * b, P + 12 * b);
        T gpose[12] = {};
        T* gs_b = scatter ? gs + b * C * HW : nullptr;
        const int64_t done =
            vector_rows ? avx2::backward_row(p, s + b * C * HW, g + b * C * HW + v * W, C, HW,
                                             int(H), int(W), d + first, gzp + first, int(v),
                                             gd + first, gpose, gs_b, src_grad_from)
                        : 0;
        if (done < W) proj.compute(p, d + first, v);
        for (int64_t u = done; u < W; ++u) {
          const auto q = proj[u];
          T gu = T(0), gv = T(0);
          const auto c = corners(q, H, W);
          for (int64_t ch = 0; c.any && ch < C; ++ch) {
            const int64_t plane = (b * C + ch) * HW;
            const T go = static_cast<T>(g[plane + v * W + u]);
            sample_grad_uv(s + plane, c, go, gu, gv);
            if (scatter && ch >= src_grad_from) {
              for (int k = 0; k < 4; ++k) {
                if (c.in[k]) gs[plane + c.off[k]] += c.w[k] * go;
              }
            }
          }
          gd[first + u] = static_cast<scalar_t>(backprop_pixel(
              p, q, static_cast<T>(d[first + u]), T(u), T(v), gu, gv,
              static_cast<T>(gzp[first + u]), gpose));
        }
        std::copy(gpose, gpose + 12, prow + 12 * (b * H + v));
      };
      if (B >= at::get_num_threads()) {
        // Enough images for every thread: one pass, an image per task, so that the scatter
        // into the source gradient has a single writer.
        at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
          RowProjection<T, scalar_t> proj(W);
          for (int64_t b = begin; b < end; ++b) {
            for (int64_t v = 0; v < H; ++v) row_backward(proj, b, v, need_src_grad);
          }
        });
        return;
      }
      // Few images: rows in parallel for depth and pose, then the channel planes that need a
      // source gradient in parallel (each plane has a single writer).
      at::parallel_for(0, B * H, row_grain(W), [&](int64_t begin, int64_t end) {
        RowProjection<T, scalar_t> proj(W);
        for (int64_t row = begin; row < end; ++row) row_backward(proj, row / H, row % H, false);
      });
      if (!need_src_grad) return;
      const int64_t planes = C - src_grad_from;  // per image
      at::parallel_for(0, B * planes, 1, [&](int64_t begin, int64_t end) {
        RowProjection<T, scalar_t> proj(W);
        for (int64_t i = begin; i < end; ++i) {
          const int64_t b = i / planes, bc = b * C + src_grad_from + i % planes;
          const auto p = make_params<T>(Kp + 9 * b, P + 12 * b);
          T* plane = gs + bc * HW;
          for (int64_t v = 0; v < H; ++v) {
            proj.compute(p, d + b * HW + v * W, v);
            for (int64_t u = 0; u < W; ++u) {
              const T go = static_cast<T>(g[bc * HW + v * W + u]);
              const auto c = corners(proj[u], H, W);
              if (go == T(0) || !c.any) continue;
              for (int k = 0; k < 4; ++k) {
                if (c.in[k]) plane[c.off[k]] += c.w[k] * go;
              }
            }
          }
        }
      });
    });
  }
  auto grad_pose = pose_rows.sum(1).view({B, 3, 4}).to(src.scalar_type());
  return {grad_src.to(src.scalar_type()), grad_depth, grad_pose};
}

}  // namespace

TORCH_LIBRARY_IMPL(scdepth, CPU, m) {
  m.impl("inverse_warp", &forward_cpu);
  m.impl("inverse_warp_backward", &backward_cpu);
}

}  // namespace scdepth::warp
