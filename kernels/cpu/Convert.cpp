// Conversions between fp32 and the 16-bit float formats.
#include "kernels/cpu/Kernels.h"

void weft::kernels::cpu::bf16ToF32(const uint16_t *x, float *y, int64_t n) {
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i)
    y[i] = bf16ToFloat(x[i]);
}

void weft::kernels::cpu::f32ToBf16(const float *x, uint16_t *y, int64_t n) {
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i)
    y[i] = floatToBf16(x[i]);
}

float weft::kernels::cpu::f16ToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1f,
           mantissa = h & 0x3ff, word;
  if (exponent == 0) {
    if (mantissa == 0) {
      word = sign;
    } else { // subnormal: normalise
      exponent = 127 - 15 + 1;
      while (!(mantissa & 0x400)) {
        mantissa <<= 1;
        --exponent;
      }
      word = sign | exponent << 23 | (mantissa & 0x3ff) << 13;
    }
  } else if (exponent == 31) {
    word = sign | 0x7f800000u | mantissa << 13;
  } else {
    word = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
  }
  return __builtin_bit_cast(float, word);
}
