// Row normalisations: RMSNorm (Llama) and LayerNorm (BLOOM, GPT).
#include "kernels/cpu/Kernels.h"

#include <cmath>

void weft::kernels::cpu::rmsNorm(const float *x, const float *w, float *y,
                                 int64_t rows, int64_t cols, float eps) {
#pragma omp parallel for
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x + r * cols;
    float *o = y + r * cols;
    float sum = 0.0f;
    for (int64_t c = 0; c < cols; ++c)
      sum += in[c] * in[c];
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(cols) + eps);
    for (int64_t c = 0; c < cols; ++c)
      o[c] = in[c] * inv * w[c];
  }
}

void weft::kernels::cpu::layerNorm(const float *x, const float *w,
                                   const float *bias, float *y, int64_t rows,
                                   int64_t cols, float eps) {
#pragma omp parallel for
  for (int64_t r = 0; r < rows; ++r) {
    const float *in = x + r * cols;
    float *o = y + r * cols;
    float mean = 0.0f;
    for (int64_t c = 0; c < cols; ++c)
      mean += in[c];
    mean /= static_cast<float>(cols);
    float var = 0.0f;
    for (int64_t c = 0; c < cols; ++c)
      var += (in[c] - mean) * (in[c] - mean);
    const float inv = 1.0f / std::sqrt(var / static_cast<float>(cols) + eps);
    for (int64_t c = 0; c < cols; ++c)
      o[c] = (in[c] - mean) * inv * w[c] + (bias ? bias[c] : 0.0f);
  }
}
