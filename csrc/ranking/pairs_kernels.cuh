// CUDA kernels of sample_dynamic_pairs (the plan is in pairs.h) and the order of their
// launches. Each image is cut into `tiles` contiguous tiles of `tile` pixels, one block each;
// the blocks of all images form one grid (batch folded into x). With P = 2, 4 or 8 digit passes (16-, 32-, 64-bit scores):
//   histogram, pass p = 0 .. P-1: the block derives the select state after p passes (warp 0
//     scans pass p-1's histogram), histograms digit p of its candidates in shared memory and
//     adds the nonzero bins to the image's histogram of pass p (integer atomics: exact, so
//     the result does not depend on their order);
//   count: derives the final state (threshold key T, ties) and counts key > T and key == T
//     in its tile;
//   emit: sums the counts of the tiles before its own, then walks its tile in chunks of
//     kThreads pixels, one block scan per chunk, writing A_b and S_b in index order;
//   partners: one thread per pair: Philox draw, partner, label.
// 4 + P launches. Scratch: histograms B*P*256 int32, states B*P, tile counts B*tiles*2 int64,
// S_b B*(N-k) int32. Everything is deterministic and equal to the CPU kernels' result.
//
// Written against CUDA only through cuda_runtime.h, so that tests/pairs_cuda_host.cpp can run
// them on the host, where tests/simt/cuda_runtime.h runs every block as kThreads threads with
// real barriers and warp exchanges: on machines without a GPU the tests check the kernels bit
// for bit against the CPU kernels, and for data races under ThreadSanitizer. pairs_cuda.cu
// launches them on the device.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include <c10/util/Exception.h>

#include "common/block_reduce.cuh"
#include "common/block_scan.cuh"
#include "common/launch.h"
#include "ranking/pairs.h"

namespace scdepth::pairs {

constexpr int kThreads = 256;                       // threads per block, every kernel
constexpr int64_t kMinTile = kThreads * 16;         // pixels per tile, at least
constexpr int64_t kMaxTiles = 1024;                 // tiles per image, at most
constexpr int64_t kMaxPartnerBlocks = int64_t(1) << 20;  // grid-stride beyond this
constexpr int kPerLane = kBins / kWarpSize;         // histogram bins per lane of warp 0
static_assert(kThreads >= kWarpSize && kThreads % kWarpSize == 0, "whole warps");
static_assert(kBins % kWarpSize == 0, "bins split evenly over a warp");
static_assert(kThreads < (1 << 16), "emit packs two per-chunk counts into 16 bits each");

struct Tiling {
  int64_t tile;   // pixels per tile
  int64_t tiles;  // tiles per image
};

inline Tiling make_tiling(int64_t B, int64_t N) {
  const int64_t per_tile = ceil_div(ceil_div(N, kMaxTiles), int64_t(kThreads)) * kThreads;
  const int64_t tile = std::max(kMinTile, per_tile);
  const int64_t tiles = ceil_div(N, tile);
  TORCH_CHECK_VALUE(B * tiles <= INT_MAX,
                    "sample_dynamic_pairs: batch too large for one launch (B = ", B,
                    ", H*W = ", N, ")");
  return {tile, tiles};
}

// The select state after `passes` passes (1 <= passes <= P), in every thread: warp 0 fixes
// the digit of pass `passes - 1` from that pass's histogram of image b and from the state
// before it (stored by the previous kernel, or the initial one); the block of tile 0 stores
// the result at states[b][passes - 1] for the next kernel. Contains __syncthreads: every
// thread of the block must call it, once per kernel.
template <typename scalar_t>
__device__ SelectState block_select_state(int passes, int64_t b, int64_t tile, int64_t k,
                                          const unsigned int* hist, SelectState* states) {
  constexpr int P = num_passes<scalar_t>();
  __shared__ SelectState result;
  if (threadIdx.x < kWarpSize) {
    const int pass = passes - 1, lane = threadIdx.x;
    const SelectState prev = pass == 0 ? SelectState{0, k} : states[b * P + pass - 1];
    const unsigned int* h = hist + (b * P + pass) * kBins;
    // Lane l holds digits 255 - (kPerLane l + j), j = 0 .. kPerLane-1: lanes in descending
    // digit order, so that an inclusive scan over lanes counts the candidates from the top.
    int64_t c[kPerLane], sum = 0;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
      c[j] = h[kBins - 1 - (lane * kPerLane + j)];
      sum += c[j];
    }
    int64_t incl = sum;
    for (int off = 1; off < kWarpSize; off *= 2) {
      const int64_t y = __shfl_up_sync(0xffffffffu, incl, off);
      if (lane >= off) incl += y;
    }
    if (lane == 0) result = prev;  // overwritten below; kept only if need > all candidates
    __syncwarp();
    // The one lane whose digits hold the crossing finds the digit as select_digit does.
    int64_t above = incl - sum;
    if (above < prev.need && prev.need <= incl) {
#pragma unroll
      for (int j = 0; j < kPerLane; ++j) {
        if (above + c[j] >= prev.need) {
          const int digit = kBins - 1 - (lane * kPerLane + j);
          result = SelectState{prev.prefix | (static_cast<uint64_t>(digit)
                                              << digit_shift<scalar_t>(pass)),
                               prev.need - above};
          break;
        }
        above += c[j];
      }
    }
  }
  __syncthreads();
  const SelectState s = result;
  if (tile == 0 && threadIdx.x == 0) states[b * P + passes - 1] = s;
  return s;
}

// Pass `pass`: histogram of digit `pass` of the candidates, added into hist[b][pass].
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    histogram_kernel(const scalar_t* __restrict__ score, int64_t N, Tiling tiling, int64_t k,
                     int pass, unsigned int* hist, SelectState* states) {
  constexpr int P = num_passes<scalar_t>();
  __shared__ unsigned int bins[kBins];
  const int64_t b = blockIdx.x / tiling.tiles, tile = blockIdx.x % tiling.tiles;
  for (int d = threadIdx.x; d < kBins; d += kThreads) bins[d] = 0;
  // `pass` is the same for the whole grid: every thread takes the same branch.
  const uint64_t prefix =
      pass == 0 ? 0 : block_select_state<scalar_t>(pass, b, tile, k, hist, states).prefix;
  __syncthreads();  // bins zeroed (pass 0 has no barrier above)
  const scalar_t* s = score + b * N;
  const int64_t begin = tile * tiling.tile, end = std::min(N, begin + tiling.tile);
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const auto key = order_key(s[i]);
    if (is_candidate<scalar_t>(key, prefix, pass)) {
      atomicAdd(&bins[digit_of<scalar_t>(key, pass)], 1u);
    }
  }
  __syncthreads();
  unsigned int* h = hist + (b * P + pass) * kBins;
  for (int d = threadIdx.x; d < kBins; d += kThreads) {
    if (bins[d] != 0) atomicAdd(&h[d], bins[d]);
  }
}

// Final state, then counts[b][tile] = (pixels with key > T, pixels with key == T).
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    count_kernel(const scalar_t* __restrict__ score, int64_t N, Tiling tiling, int64_t k,
                 const unsigned int* __restrict__ hist, SelectState* states,
                 int64_t* __restrict__ counts) {
  using K = key_t<scalar_t>;
  constexpr int P = num_passes<scalar_t>();
  const int64_t b = blockIdx.x / tiling.tiles, tile = blockIdx.x % tiling.tiles;
  const K threshold =
      static_cast<K>(block_select_state<scalar_t>(P, b, tile, k, hist, states).prefix);
  const scalar_t* s = score + b * N;
  const int64_t begin = tile * tiling.tile, end = std::min(N, begin + tiling.tile);
  int64_t v[2] = {0, 0};
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const K key = order_key(s[i]);
    v[0] += key > threshold;
    v[1] += key == threshold;
  }
  block_sum<kThreads>(v);
  if (threadIdx.x == 0) {
    counts[(b * tiling.tiles + tile) * 2] = v[0];
    counts[(b * tiling.tiles + tile) * 2 + 1] = v[1];
  }
}

// A_b into idx_a[b] and S_b into stat[b], both in index order.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    emit_kernel(const scalar_t* __restrict__ score, int64_t N, Tiling tiling, int64_t k,
                const SelectState* __restrict__ states, const int64_t* __restrict__ counts,
                int64_t* __restrict__ idx_a, int32_t* __restrict__ stat) {
  using K = key_t<scalar_t>;
  constexpr int P = num_passes<scalar_t>();
  __shared__ int64_t tiles_before[2];
  const int64_t b = blockIdx.x / tiling.tiles, tile = blockIdx.x % tiling.tiles;
  const SelectState st = states[b * P + P - 1];
  const K threshold = static_cast<K>(st.prefix);
  const int64_t ties = st.need, M = N - k;
  int64_t v[2] = {0, 0};  // counts of the tiles before this one (at most kMaxTiles)
  for (int64_t t = threadIdx.x; t < tile; t += kThreads) {
    v[0] += counts[(b * tiling.tiles + t) * 2];
    v[1] += counts[(b * tiling.tiles + t) * 2 + 1];
  }
  block_sum<kThreads>(v);
  if (threadIdx.x == 0) {
    tiles_before[0] = v[0];
    tiles_before[1] = v[1];
  }
  __syncthreads();
  int64_t gt_run = tiles_before[0], eq_run = tiles_before[1];
  const scalar_t* s = score + b * N;
  const int64_t begin = tile * tiling.tile, end = std::min(N, begin + tiling.tile);
  // The trip count depends on the tile only: every thread reaches the scan's barriers.
  for (int64_t chunk = begin; chunk < end; chunk += kThreads) {
    const int64_t i = chunk + threadIdx.x;
    const bool inside = i < end;
    const K key = inside ? order_key(s[i]) : K(0);
    const unsigned int gt = inside && key > threshold, eq = inside && key == threshold;
    unsigned int total;
    const unsigned int ex = block_exclusive_scan<kThreads>(gt | (eq << 16), total);
    if (inside) {
      const int64_t gt_before = gt_run + (ex & 0xFFFFu), eq_before = eq_run + (ex >> 16);
      const int64_t pos = selected_before(gt_before, eq_before, ties);
      if (is_selected(key, threshold, eq_before, ties)) {
        idx_a[b * k + pos] = i;
      } else {
        stat[b * M + (i - pos)] = static_cast<int32_t>(i);
      }
    }
    gt_run += total & 0xFFFFu;
    eq_run += total >> 16;
  }
}

// Pair e = b * k + i: partner of idx_a[b][i] drawn from S_b with Philox subsequence e.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    partner_kernel(const scalar_t* __restrict__ pd, const int64_t* __restrict__ idx_a,
                   const int32_t* __restrict__ stat, int64_t* __restrict__ idx_b,
                   int8_t* __restrict__ label, int64_t pairs, int64_t k, int64_t N,
                   uint32_t M, uint64_t limit, uint64_t seed, double one_plus_tau) {
  using T = at::opmath_type<scalar_t>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; e < pairs;
       e += stride) {
    const int64_t b = e / k;
    const int64_t partner = stat[b * M + draw_below(seed, static_cast<uint64_t>(e), M, limit)];
    idx_b[e] = partner;
    const T da = static_cast<T>(pd[b * N + idx_a[e]]), db = static_cast<T>(pd[b * N + partner]);
    label[e] = ordinal_label(static_cast<double>(da), static_cast<double>(db), one_plus_tau);
  }
}

// The launches of one call, each as launch(blocks, kernel, args...) of kThreads threads:
// A_b into idx_a and S_b into stat. hist must be zero, B * P * kBins; states B * P;
// counts B * tiles * 2.
template <typename scalar_t, typename Launch>
void launch_select(Launch&& launch, const scalar_t* score, int64_t B, int64_t N, int64_t k,
                   Tiling tiling, unsigned int* hist, SelectState* states, int64_t* counts,
                   int64_t* idx_a, int32_t* stat) {
  const auto blocks = static_cast<unsigned int>(B * tiling.tiles);
  for (int pass = 0; pass < num_passes<scalar_t>(); ++pass) {
    launch(blocks, histogram_kernel<scalar_t>, score, N, tiling, k, pass, hist, states);
  }
  launch(blocks, count_kernel<scalar_t>, score, N, tiling, k, hist, states, counts);
  launch(blocks, emit_kernel<scalar_t>, score, N, tiling, k, states, counts, idx_a, stat);
}

// Partners and labels of the B * k pairs.
template <typename scalar_t, typename Launch>
void launch_partners(Launch&& launch, const scalar_t* pd, const int64_t* idx_a,
                     const int32_t* stat, int64_t* idx_b, int8_t* label, int64_t B, int64_t N,
                     int64_t k, uint64_t seed, double tau) {
  const int64_t pairs = B * k;
  const auto blocks =
      static_cast<unsigned int>(std::min(ceil_div(pairs, int64_t(kThreads)), kMaxPartnerBlocks));
  const auto m32 = static_cast<uint32_t>(N - k);
  launch(blocks, partner_kernel<scalar_t>, pd, idx_a, stat, idx_b, label, pairs, k, N, m32,
         acceptance_limit(m32), seed, 1.0 + tau);
}

}  // namespace scdepth::pairs
