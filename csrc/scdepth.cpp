// The op catalogue: every schema of the scdepth library, in one place. Kernels are
// registered per backend in <op>/<op>_cpu.cpp and <op>/<op>_cuda.cu; autograd and fake
// (meta) kernels in scdepth/ops/*.py. Backward passes are ops of their own.
#include <torch/extension.h>

#include "host/host_cache.h"

TORCH_LIBRARY(scdepth, m) {
  // Inverse warp (csrc/warp): src [B,C,H,W], depth [B,1,H,W], pose [B,3,4], K [B,3,3]
  //   -> (warped [B,C,H,W], computed_depth [B,1,H,W], valid [B,1,H,W]). src_grad_from >= 0:
  //   the first channel of src whose gradient the backward computes (channels stacked from
  //   tensors that need none come first); the forward does not read it.
  m.def("inverse_warp(Tensor src, Tensor depth, Tensor pose, Tensor K, int src_grad_from=0) "
        "-> (Tensor, Tensor, Tensor)");
  // -> (grad_src: channels below src_grad_from are 0, an empty tensor when src_grad_from >= C;
  //   grad_depth; grad_pose).
  m.def("inverse_warp_backward(Tensor grad_warped, Tensor grad_computed_depth, Tensor src, "
        "Tensor depth, Tensor pose, Tensor K, int src_grad_from) -> (Tensor, Tensor, Tensor)");

  // Photometric error (csrc/photometric): tgt, warped [B,C,H,W], weight [B,1,H,W] or None,
  // alpha in [0, 1], window odd in [3, 11] -> (photo [B,1,H,W], l1 [B,1,H,W]).
  m.def("photometric_error(Tensor tgt, Tensor warped, Tensor? weight, float alpha, int window) "
        "-> (Tensor, Tensor)");
  // -> (grad_tgt, grad_warped, grad_weight, or an empty tensor when weight is None).
  m.def("photometric_error_backward(Tensor grad_photo, Tensor grad_l1, Tensor tgt, "
        "Tensor warped, Tensor? weight, float alpha, int window) -> (Tensor, Tensor, Tensor)");

  // Normal ranking error (csrc/normals): normal, pseudo_normal [B,3,H,W], valid [B,1,H,W] bool,
  //   points [S,4,B,M] int64 (pixel indices of each image), weight [S,B,M]
  //   -> (error [S,B,M], pair_weight [S,B,M], pair_slope [S,B,M,3] in the compute type: what
  //   the backward needs, d error / d (n_i . n_j) of each pair).
  m.def("normal_rank_error(Tensor normal, Tensor pseudo_normal, Tensor valid, Tensor points, "
        "Tensor weight) -> (Tensor, Tensor, Tensor)");
  // -> grad_normal [B,3,H,W].
  m.def("normal_rank_error_backward(Tensor grad_error, Tensor normal, Tensor points, "
        "Tensor pair_slope) -> Tensor");

  // Surface normals from depth (csrc/normals): depth [B,1,H,W], K [B,3,3] -> normal [B,3,H,W],
  //   the unit normals of the back-projected points' Sobel derivatives (SC-DepthV3).
  m.def("depth_normals(Tensor depth, Tensor K) -> Tensor");
  // -> grad_depth [B,1,H,W] (K gets no gradient).
  m.def("depth_normals_backward(Tensor grad_normal, Tensor depth, Tensor K) -> Tensor");

  // Dynamic pair sampling (csrc/ranking): score [B,1,H,W], pseudo_depth [B,1,H,W] ->
  //   (idx_a [B,k] int64, idx_b [B,k] int64, label [B,k] int8), k = floor(ratio*H*W).
  //   seed is a SymInt so that torch.compile keeps it symbolic (no graph per seed).
  m.def("sample_dynamic_pairs(Tensor score, Tensor pseudo_depth, float ratio, float tau, "
        "SymInt seed) -> (Tensor, Tensor, Tensor)");
}

// Importing scdepth._C loads this library and so runs the registrations above.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
#ifdef WITH_CUDA
  m.attr("with_cuda") = true;
#else
  m.attr("with_cuda") = false;
#endif
  namespace hc = scdepth::host_cache;
  m.def("host_cache_enable", &hc::enable, pybind11::arg("limit_factor"));
  m.def("host_cache_disable", &hc::disable);
  m.def("host_cache_empty", &hc::empty);
  m.def("host_cache_size_class", &hc::size_class, pybind11::arg("nbytes"));
  m.def("host_cache_stats", [] {
    const hc::Stats s = hc::stats();
    pybind11::dict d;
    d["enabled"] = s.enabled;
    d["in_use"] = s.in_use;
    d["cached"] = s.cached;
    d["peak"] = s.peak;
    d["hits"] = s.hits;
    d["misses"] = s.misses;
    d["evicted"] = s.evicted;
    return d;
  });
}
