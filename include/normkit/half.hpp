//! @file
//! normkit/half.hpp — the two 2-byte storage types, bfloat16 and float16, and compute_t<T>
//! (the type statistics and lane arithmetic use: float for both). Conversions from float
//! round to nearest even and match PyTorch's c10::BFloat16 / c10::Half bit for bit: NaN
//! stays NaN, float16 overflows to inf and has subnormals. Reading one is exact (implicit
//! conversion to float); making one from a float is explicit, because it rounds.
#pragma once

#include <bit>
#include <cstdint>

#include "normkit/export.hpp"

namespace normkit {

/// bfloat16: float32's sign and 8-bit exponent with a 7-bit mantissa (the top half of a float).
struct NORMKIT_API bfloat16 {  // exported: it names exported instantiations
  uint16_t bits = 0;  ///< the raw pattern

  bfloat16() = default;
  /// Round to nearest even; NaN becomes the quiet NaN 0x7FC0 (as c10::BFloat16).
  explicit bfloat16(float f) : bits(round(f)) {}
  /// Exact.
  operator float() const { return std::bit_cast<float>(uint32_t(bits) << 16); }
  /// The value with this bit pattern.
  static bfloat16 from_bits(uint16_t b) {
    bfloat16 h;
    h.bits = b;
    return h;
  }
  /// The bit pattern float `f` rounds to.
  static uint16_t round(float f) {
    if (f != f) return 0x7FC0;
    const uint32_t u = std::bit_cast<uint32_t>(f);
    return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
};

/// float16 (IEEE binary16): 5-bit exponent, 10-bit mantissa, max 65504, subnormals to 2^-24.
struct NORMKIT_API float16 {
  uint16_t bits = 0;  ///< the raw pattern

  float16() = default;
  /// Round to nearest even; beyond the largest finite value: inf; NaN stays NaN.
  explicit float16(float f) : bits(round(f)) {}
  /// Exact.
  operator float() const { return widen(bits); }
  /// The value with this bit pattern.
  static float16 from_bits(uint16_t b) {
    float16 h;
    h.bits = b;
    return h;
  }
  /// The bit pattern float `f` rounds to (c10::Half's fp16_ieee_from_fp32_value): the
  /// hardware's float rounding does the work, after scaling into binary16's exponent range.
  static uint16_t round(float f) {
    const uint32_t w = std::bit_cast<uint32_t>(f), a = w & 0x7FFFFFFFu;
    float base = (std::bit_cast<float>(a) * 0x1.0p+112f) * 0x1.0p-110f;
    uint32_t e = a & 0x7F800000u;
    if (e < 0x38800000u) e = 0x38800000u;
    base = std::bit_cast<float>(e + 0x07800000u) + base;
    const uint32_t b = std::bit_cast<uint32_t>(base);
    const uint32_t nonsign = ((b >> 13) & 0x7C00u) + (b & 0x0FFFu);
    return uint16_t(((w >> 16) & 0x8000u) | (a > 0x7F800000u ? 0x7E00u : nonsign));
  }
  /// The float with binary16 pattern `h` (c10::Half's fp16_ieee_to_fp32_value).
  static float widen(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000u) << 16, m = h & 0x7FFFu;
    const float v = m < 0x400u ? std::bit_cast<float>(m | 0x3F000000u) - 0.5f
                               : std::bit_cast<float>((m << 13) + 0x70000000u) * 0x1.0p-112f;
    return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(v));
  }
};

/// The type a storage type computes in: float for bfloat16 and float16, T itself otherwise.
template <class T>
struct compute_type {
  using type = T;  ///< T
};
/// bfloat16 computes in float.
template <>
struct compute_type<bfloat16> {
  using type = float;  ///< float
};
/// float16 computes in float.
template <>
struct compute_type<float16> {
  using type = float;  ///< float
};
/// float for bfloat16 / float16, T for float / double.
template <class T>
using compute_t = typename compute_type<T>::type;

/// True for the 2-byte storage types.
template <class T>
inline constexpr bool is_half_v = sizeof(T) == 2;

}  // namespace normkit
