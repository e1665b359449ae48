// A host stand-in for the CUDA that csrc's kernels use, so that tests can run the kernels on
// machines without a GPU (tests/pairs_cuda_host.cpp). simt::launch runs a grid one block at a
// time on blockDim.x std::threads: __syncthreads and __syncwarp are barriers of
// the block's and the warp's threads, a warp shuffle exchanges values through one slot per
// thread between two warp barriers, atomicAdd is std::atomic_ref, and __shared__ variables
// are static (one block runs at a time). A barrier that some thread never reaches (a
// __syncthreads in divergent code) ends the process with a message instead of hanging.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};
using cudaStream_t = void*;

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace simt {

constexpr int kWarp = 32;

// A reusable barrier of `count` threads that gives up after 20 s.
class Barrier {
 public:
  explicit Barrier(int count) : count_(count) {}
  void wait(const char* what) {
    std::unique_lock<std::mutex> lock(m_);
    const long generation = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    if (!cv_.wait_for(lock, std::chrono::seconds(20), [&] { return generation_ != generation; })) {
      std::fprintf(stderr, "simt: %s of block %u not reached by every thread\n", what,
                   blockIdx.x);
      std::_Exit(3);
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int count_, arrived_ = 0;
  long generation_ = 0;
};

struct Block {
  explicit Block(int threads) : all(threads), slots(threads) {
    for (int w = 0; w < threads / kWarp; ++w) warps.push_back(std::make_unique<Barrier>(kWarp));
  }
  Barrier all;
  std::vector<std::unique_ptr<Barrier>> warps;
  std::vector<uint64_t> slots;  // one exchange slot per thread
};

inline thread_local Block* block = nullptr;

// The value of `src_lane`'s v, in every lane of the calling warp (all 32 lanes must call).
template <typename T>
T exchange(T v, unsigned int src_lane) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>);
  const unsigned int warp = threadIdx.x / kWarp;
  Barrier& barrier = *block->warps[warp];
  std::memcpy(&block->slots[threadIdx.x], &v, sizeof(T));
  barrier.wait("a warp shuffle");
  T out;
  std::memcpy(&out, &block->slots[warp * kWarp + src_lane], sizeof(T));
  barrier.wait("a warp shuffle");  // every lane has read before the slots are reused
  return out;
}

// kernel(args...) on `grid` blocks of `threads` threads: one thread per threadIdx, which runs
// the blocks one after another, with a barrier between blocks (their __shared__ variables are
// the same statics).
template <typename Kernel, typename... Args>
void launch(unsigned int grid, unsigned int threads, Kernel kernel, Args... args) {
  if (threads % kWarp != 0) {
    std::fprintf(stderr, "simt: blocks of whole warps only\n");
    std::_Exit(3);
  }
  Block blk(static_cast<int>(threads));
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (unsigned int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      block = &blk;
      threadIdx = {t, 0, 0};
      blockDim = {threads, 1, 1};
      gridDim = {grid, 1, 1};
      for (unsigned int b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        kernel(args...);
        blk.all.wait("the end of a block");
      }
    });
  }
  for (auto& th : pool) th.join();
}

}  // namespace simt

inline void __syncthreads() { simt::block->all.wait("__syncthreads"); }
inline void __syncwarp(unsigned int = 0xffffffffu) {
  simt::block->warps[threadIdx.x / simt::kWarp]->wait("__syncwarp");
}

// Lanes below delta keep their own value, as on a GPU.
template <typename T>
T __shfl_up_sync(unsigned int, T v, unsigned int delta) {
  const unsigned int lane = threadIdx.x % simt::kWarp;
  return simt::exchange(v, lane >= delta ? lane - delta : lane);
}

template <typename T>
T __shfl_down_sync(unsigned int, T v, unsigned int delta) {
  const unsigned int lane = threadIdx.x % simt::kWarp;
  return simt::exchange(v, lane + delta < simt::kWarp ? lane + delta : lane);
}

template <typename T>
T atomicAdd(T* address, T v) {
  return std::atomic_ref<T>(*address).fetch_add(v);
}
