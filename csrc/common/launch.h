// Dispatch helpers shared by the kernels.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

// float16, bfloat16, float32, float64. Kernels compute in at::opmath_type<scalar_t>:
// float for the 16-bit types, the type itself otherwise.
#define SCDEPTH_DISPATCH_FLOATING(TYPE, NAME, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, TYPE, NAME, __VA_ARGS__)

namespace scdepth {

// ceil(a / b) for positive b.
template <typename T>
constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

}  // namespace scdepth
