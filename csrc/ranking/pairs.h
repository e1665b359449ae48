// Math of sample_dynamic_pairs shared by the CPU and the CUDA kernels: the order key of a
// score, one step of the radix select, where a pixel goes (A_b or S_b), the partner draw and
// the ordinal label. The two backends differ only in how they walk the pixels.
//
// Selection. Every score maps to an unsigned key whose integer order is the score order with
// NaN lowest and -0 == +0 (order_key). The k-th largest key T is found digit by digit, most
// significant 8 bits first: each pass histograms the digit of the keys that match the digits
// fixed so far ("candidates") and fixes the digit where the count from the top reaches the
// number still needed (select_digit). After sizeof(key) passes, T is known, and so is `ties`:
// how many pixels with key == T belong to A_b. A_b = {key > T} + the `ties` lowest-index
// pixels with key == T: exactly the first k of a stable descending sort.
//
// Partners. S_b is listed in index order; the partner of the i-th element of A_b is
// S_b[j] with j uniform in [0, N - k), drawn from the 32-bit words of
// at::Philox4_32(seed, subsequence = b * k + i, offset = 0), consumed in order: a word w is
// rejected while w >= 2^32 - (2^32 mod (N - k)) (at most 2^32 values remain, an exact multiple
// of N - k), then j = w mod (N - k). A word is rejected with probability < (N - k) / 2^32 < 1/2,
// so a partner takes 1 / (1 - that) words on average: 1.00005 words at KITTI size, 2 at the
// very worst; more than m words happen with probability < 2^-m.
#pragma once

#include <ATen/core/PhiloxRNGEngine.h>
#include <c10/macros/Macros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace scdepth::pairs {

constexpr int kDigitBits = 8;
constexpr int kBins = 1 << kDigitBits;  // histogram bins of one pass

// The unsigned key type of each score type, with its sign bit and the bits of +inf.
template <typename T>
struct KeyTraits;
template <>
struct KeyTraits<float> {
  using type = uint32_t;
  static constexpr type kSign = 0x80000000u, kInf = 0x7F800000u;
};
template <>
struct KeyTraits<double> {
  using type = uint64_t;
  static constexpr type kSign = 0x8000000000000000ull, kInf = 0x7FF0000000000000ull;
};
template <>
struct KeyTraits<c10::Half> {
  using type = uint16_t;
  static constexpr type kSign = 0x8000u, kInf = 0x7C00u;
};
template <>
struct KeyTraits<c10::BFloat16> {
  using type = uint16_t;
  static constexpr type kSign = 0x8000u, kInf = 0x7F80u;
};

template <typename T>
using key_t = typename KeyTraits<T>::type;

// Number of 8-bit passes of the radix select for score type T.
template <typename T>
constexpr int num_passes() {
  return static_cast<int>(sizeof(key_t<T>));
}

template <typename T>
C10_HOST_DEVICE inline key_t<T> bits_of(T x) {
  key_t<T> u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}
template <>
C10_HOST_DEVICE inline uint16_t bits_of(c10::Half x) {
  return x.x;
}
template <>
C10_HOST_DEVICE inline uint16_t bits_of(c10::BFloat16 x) {
  return x.x;
}

// Order-preserving key: NaN -> 0 (below -inf), -0 and +0 -> one key, otherwise the IEEE bits
// with negatives inverted and the sign bit set on non-negatives. Integer operations only, so
// no compiler flag can change it.
template <typename T>
C10_HOST_DEVICE inline key_t<T> order_key(T x) {
  using K = key_t<T>;
  constexpr K kSign = KeyTraits<T>::kSign, kInf = KeyTraits<T>::kInf;
  const K u = bits_of(x);
  const K mag = static_cast<K>(u & static_cast<K>(~kSign));
  if (mag > kInf) return K(0);  // NaN, either sign
  if (mag == 0) return kSign;   // -0 == +0
  return (u & kSign) ? static_cast<K>(~u) : static_cast<K>(u | kSign);
}

// Radix-select state after some passes: the digits fixed so far (the other bits are 0) and
// how many of the keys that match them are still to be selected (>= 1 while k >= 1).
struct SelectState {
  uint64_t prefix;
  int64_t need;
};

// Bit position of the digit histogrammed in pass p (0 = most significant).
template <typename T>
C10_HOST_DEVICE inline int digit_shift(int pass) {
  return kDigitBits * (num_passes<T>() - 1 - pass);
}

// Whether `key` matches the digits fixed by passes 0 .. pass-1 (all keys match in pass 0).
template <typename T>
C10_HOST_DEVICE inline bool is_candidate(key_t<T> key, uint64_t prefix, int pass) {
  if (pass == 0) return true;  // (a shift by the key's full width would be undefined)
  const int fixed_from = digit_shift<T>(pass) + kDigitBits;  // < key width for pass >= 1
  return ((static_cast<uint64_t>(key) ^ prefix) >> fixed_from) == 0;
}

template <typename T>
C10_HOST_DEVICE inline int digit_of(key_t<T> key, int pass) {
  return static_cast<int>((static_cast<uint64_t>(key) >> digit_shift<T>(pass)) & (kBins - 1));
}

// Fixes the digit of pass `pass` from the histogram of the candidates' digits: the digit d
// with above(d) < need <= above(d) + hist[d], where above(d) counts candidates with a larger
// digit. Sequential; the CUDA kernels find the same d with a warp scan.
template <typename T, typename Count>
C10_HOST_DEVICE inline SelectState select_digit(SelectState s, const Count* hist, int pass) {
  int64_t above = 0;
  for (int d = kBins - 1; d >= 0; --d) {
    const int64_t c = static_cast<int64_t>(hist[d]);
    if (above + c >= s.need) {
      s.prefix |= static_cast<uint64_t>(d) << digit_shift<T>(pass);
      s.need -= above;
      return s;
    }
    above += c;
  }
  return s;  // unreachable while need <= the number of candidates
}

// Pixel i with `gt_before` pixels of key > T and `eq_before` pixels of key == T before it:
// selected (in A_b) iff key > T, or key == T and fewer than `ties` ties precede it; its
// position in A_b (if selected) is the number of selected pixels before it, and otherwise its
// position in S_b is i minus that.
C10_HOST_DEVICE inline int64_t selected_before(int64_t gt_before, int64_t eq_before,
                                               int64_t ties) {
  return gt_before + (eq_before < ties ? eq_before : ties);
}

template <typename K>
C10_HOST_DEVICE inline bool is_selected(K key, K threshold, int64_t eq_before, int64_t ties) {
  return key > threshold || (key == threshold && eq_before < ties);
}

// Words w >= this are rejected so that w mod m is exactly uniform: 2^32 - (2^32 mod m).
C10_HOST_DEVICE inline uint64_t acceptance_limit(uint32_t m) {
  constexpr uint64_t kWords = uint64_t(1) << 32;
  return kWords - kWords % m;
}

// Uniform index in [0, m) from Philox4_32(seed, subsequence), 32-bit words in order.
// `limit` = acceptance_limit(m); m >= 1. Each 128-bit block of 4 words comes from an engine
// started at that block's offset and read by a loop of constant trip count: the engine's
// word buffer is then indexed by constants and stays in registers (one engine advanced by
// the rejection loop indexed it by its run-time state, which put the engine in a 48-byte
// stack frame of partner_kernel). Same words in the same order.
C10_HOST_DEVICE inline uint32_t draw_below(uint64_t seed, uint64_t subsequence, uint32_t m,
                                           uint64_t limit) {
  for (uint64_t block = 0;; ++block) {
    at::Philox4_32 rng(seed, subsequence, block);
    for (int j = 0; j < 4; ++j) {
      const uint32_t w = rng();
      if (w < limit) return w % m;  // rejected with probability < 1/2, see the top of this file
    }
  }
}

// Ordinal label of a pair from its pseudo depths, in float64 (exact for every input type):
// +1 if a >= (1 + tau) b, -1 if b >= (1 + tau) a, 0 otherwise, and 0 where either depth is
// not finite or <= 0. `one_plus_tau` = 1 + tau, rounded once in float64 on the host.
C10_HOST_DEVICE inline int8_t ordinal_label(double a, double b, double one_plus_tau) {
  // Branch-free: labels are random, branches on them would be mispredicted half the time.
  const bool valid = (a > 0.0) & (b > 0.0) & (a < INFINITY) & (b < INFINITY);  // false for NaN
  const bool farther = a >= one_plus_tau * b;
  const bool nearer = (b >= one_plus_tau * a) & !farther;  // +1 wins when both hold (tau = 0)
  return static_cast<int8_t>(valid * (static_cast<int>(farther) - static_cast<int>(nearer)));
}

}  // namespace scdepth::pairs
