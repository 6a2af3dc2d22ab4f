// Cross-entropy with an ignore index and a token-weighted mean.
#include "kernels/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

using namespace weft::kernels::cpu;

namespace {
template <typename T>
int64_t crossEntropyOf(const T *logits, const int64_t *labels, float *out,
                       int64_t tokens, int64_t vocab, int64_t ignoreIndex,
                       LossReduction reduction) {
  for (int64_t t = 0; t < tokens; ++t)
    if (labels[t] != ignoreIndex && (labels[t] < 0 || labels[t] >= vocab))
      return t;
  std::vector<double> losses(tokens, 0.0);
#pragma omp parallel for
  for (int64_t t = 0; t < tokens; ++t) {
    if (labels[t] == ignoreIndex)
      continue;
    const T *row = logits + t * vocab;
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < vocab; ++c)
      max = std::max(max, toFloat(row[c]));
    double sum = 0.0;
    for (int64_t c = 0; c < vocab; ++c)
      sum += std::exp(static_cast<double>(toFloat(row[c]) - max));
    losses[t] = std::log(sum) + max - toFloat(row[labels[t]]);
  }
  if (reduction == LossReduction::None) {
    for (int64_t t = 0; t < tokens; ++t)
      out[t] = static_cast<float>(losses[t]);
    return -1;
  }
  double total = 0.0;
  int64_t counted = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    total += losses[t];
    counted += labels[t] != ignoreIndex;
  }
  if (reduction == LossReduction::Mean)
    total = counted ? total / counted : 0.0;
  out[0] = static_cast<float>(total);
  return -1;
}
} // namespace

int64_t weft::kernels::cpu::crossEntropy(const float *logits,
                                         const int64_t *labels, float *out,
                                         int64_t tokens, int64_t vocab,
                                         int64_t ignoreIndex,
                                         LossReduction reduction) {
  return crossEntropyOf(logits, labels, out, tokens, vocab, ignoreIndex,
                        reduction);
}

int64_t weft::kernels::cpu::crossEntropyBf16(const uint16_t *logits,
                                             const int64_t *labels, float *out,
                                             int64_t tokens, int64_t vocab,
                                             int64_t ignoreIndex,
                                             LossReduction reduction) {
  return crossEntropyOf(logits, labels, out, tokens, vocab, ignoreIndex,
                        reduction);
}
