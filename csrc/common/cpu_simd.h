// Vector paths of the CPU kernels.
//
// Whether a CPU kernel may take its AVX2 path: the CPU has AVX2, and the environment
// variable SCDEPTH_CPU_SIMD is not "0". It is read at every call, so that the tests can run
// both paths in one process, and a user can rule the vector path out when in doubt.
#pragma once

#include <cstdlib>
#include <cstring>

namespace scdepth {

inline bool cpu_avx2_enabled() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has_avx2 = __builtin_cpu_supports("avx2");
  const char* env = std::getenv("SCDEPTH_CPU_SIMD");
  return has_avx2 && !(env != nullptr && std::strcmp(env, "0") == 0);
#else
  return false;
#endif
}

}  // namespace scdepth

// CPU row loops compiled twice, for baseline x86-64 and for AVX2, the loader choosing the
// one the CPU runs (GCC's target_clones). Only for element-wise loops, which give the same
// bits at any vector width (no fused multiply-add in either), so no switch is needed.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SCDEPTH_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SCDEPTH_CPU_CLONES
#endif
