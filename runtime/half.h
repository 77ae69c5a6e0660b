#pragma once
// IEEE half and bfloat16 storage types with conversion to and from float.
// Arithmetic always happens in float: these types only store.
#include <bit>
#include <cstdint>
#include <cstring>

namespace weft {

struct bf16 {
  uint16_t bits = 0;
  bf16() = default;
  explicit bf16(float f) {
    uint32_t u = std::bit_cast<uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays NaN (quiet)
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);
      return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    bits = static_cast<uint16_t>(u >> 16);
  }
  explicit operator float() const { return std::bit_cast<float>(uint32_t(bits) << 16); }
};

struct f16 {
  uint16_t bits = 0;
  f16() = default;
  explicit f16(float f) { bits = float_to_half(f); }
  explicit operator float() const { return half_to_float(bits); }

  static uint16_t float_to_half(float f) {
    uint32_t x = std::bit_cast<uint32_t>(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t mant = x & 0x007fffffu;
    int32_t exp = int32_t((x >> 23) & 0xff);
    if (exp == 0xff) return uint16_t(sign | 0x7c00u | (mant ? 0x200u : 0u));
    exp = exp - 127 + 15;
    if (exp >= 0x1f) return uint16_t(sign | 0x7c00u);  // overflow -> inf
    if (exp <= 0) {                                     // subnormal or zero
      if (exp < -10) return uint16_t(sign);
      mant |= 0x00800000u;
      uint32_t shift = uint32_t(14 - exp);
      uint32_t half_mant = mant >> shift;
      uint32_t rem = mant & ((1u << shift) - 1);
      uint32_t halfway = 1u << (shift - 1);
      if (rem > halfway || (rem == halfway && (half_mant & 1u))) half_mant++;
      return uint16_t(sign | half_mant);
    }
    uint32_t h = sign | (uint32_t(exp) << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;  // may carry into exponent: correct
    return uint16_t(h);
  }
  static float half_to_float(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ffu;
    uint32_t out;
    if (exp == 0x1f) {
      out = sign | 0x7f800000u | (mant << 13);
    } else if (exp == 0) {
      if (mant == 0) {
        out = sign;
      } else {  // subnormal: normalise
        int e = -1;
        do {
          mant <<= 1;
          e++;
        } while ((mant & 0x400u) == 0);
        out = sign | (uint32_t(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
      }
    } else {
      out = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    return std::bit_cast<float>(out);
  }
};

}  // namespace weft
