// Rotary position embedding, as transformers' apply_rotary_pos_emb computes
// it: angles in fp32 from fp32 inverse frequencies.
#include "kernels/cpu/Kernels.h"

#include <cmath>
#include <vector>

namespace {
/// The rotation over elements T (f32, or bf16 widened as read and each
/// result rounded once).
template <typename T>
void rotate(const T *x, const int64_t *positions, T *y, int64_t batch,
            int64_t seq, int64_t heads, int64_t headDim, double theta,
            bool interleaved, const double *frequencies) {
  using weft::kernels::cpu::fromFloat;
  using weft::kernels::cpu::toFloat;
  const int64_t half = headDim / 2;
  std::vector<float> invFreq(half);
  for (int64_t j = 0; j < half; ++j)
    invFreq[j] = static_cast<float>(
        frequencies
            ? frequencies[j]
            : 1.0 / std::pow(theta, static_cast<double>(2 * j) / headDim));
#pragma omp parallel for
  for (int64_t t = 0; t < batch * seq; ++t) {
    const float p = static_cast<float>(positions[t]);
    for (int64_t j = 0; j < half; ++j) {
      const float angle = p * invFreq[j];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        const T *in = x + (t * heads + h) * headDim;
        T *o = y + (t * heads + h) * headDim;
        const int64_t a = interleaved ? 2 * j : j;
        const int64_t b = interleaved ? 2 * j + 1 : j + half;
        const float xa = toFloat(in[a]), xb = toFloat(in[b]);
        o[a] = fromFloat<T>(xa * c - xb * s);
        o[b] = fromFloat<T>(xb * c + xa * s);
      }
    }
  }
}
} // namespace

void weft::kernels::cpu::rope(const float *x, const int64_t *positions,
                              float *y, int64_t batch, int64_t seq,
                              int64_t heads, int64_t headDim, double theta,
                              bool interleaved, const double *frequencies) {
  rotate(x, positions, y, batch, seq, heads, headDim, theta, interleaved,
         frequencies);
}

void weft::kernels::cpu::ropeBf16(const uint16_t *x, const int64_t *positions,
                                  uint16_t *y, int64_t batch, int64_t seq,
                                  int64_t heads, int64_t headDim, double theta,
                                  bool interleaved, const double *frequencies) {
  rotate(x, positions, y, batch, seq, heads, headDim, theta, interleaved,
         frequencies);
}
