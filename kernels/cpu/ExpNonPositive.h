// e^x for the non-positive arguments of a softmax, shared by attention's
// forward and backward kernels. Internal to kernels/cpu.
#ifndef WEFT_KERNELS_CPU_EXPNONPOSITIVE_H
#define WEFT_KERNELS_CPU_EXPNONPOSITIVE_H

#include <algorithm>
#include <cstdint>

namespace weft::kernels::cpu {

/// e^x for x ≤ 0 (scores minus their running maximum), within 2 ulp, and
/// exactly 0 below −87 (masked scores are −∞). Written without calls or
/// branches so that the loops over a block vectorise (with
/// -fno-trapping-math).
inline float expNonPositive(float x) {
  const float clamped = std::max(x, -87.0f);
  // e^x = 2^n · e^r with n = round(x / ln 2), |r| ≤ ln(2) / 2; adding and
  // removing 1.5 · 2^23 rounds to nearest without SSE4.1.
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float scale =
      __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);
  return p * scale * (x >= -87.0f ? 1.0f : 0.0f);
}

} // namespace weft::kernels::cpu

#endif // WEFT_KERNELS_CPU_EXPNONPOSITIVE_H
