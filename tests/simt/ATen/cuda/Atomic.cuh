// Host stand-in for ATen's CUDA atomics (see tests/simt/cuda_runtime.h).
#pragma once

#include <atomic>

template <typename T>
inline void gpuAtomicAdd(T* address, T v) {
  std::atomic_ref<T>(*address).fetch_add(v);
}
