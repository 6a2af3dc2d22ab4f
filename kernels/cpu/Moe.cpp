// Mixture-of-experts routing: top-k gating, dispatch of token rows to
// experts (a stable counting sort), per-expert linears and the weighted
// combine.
#include "kernels/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

using namespace weft::kernels::cpu;

void weft::kernels::cpu::moeGate(const float *logits, float *weights,
                                 int64_t *experts, int64_t tokens,
                                 int64_t numExperts, int64_t k,
                                 bool normalize) {
#pragma omp parallel for if (tokens * numExperts > (1 << 14))
  for (int64_t t = 0; t < tokens; ++t) {
    const float *row = logits + t * numExperts;
    const float max = *std::max_element(row, row + numExperts);
    double sum = 0;
    for (int64_t e = 0; e < numExperts; ++e)
      sum += std::exp(double(row[e]) - max);
    // The k largest logits are the k largest probabilities; ties go to the
    // lower expert.
    std::vector<int64_t> order(numExperts);
    for (int64_t e = 0; e < numExperts; ++e)
      order[e] = e;
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) {
                        return row[a] > row[b] || (row[a] == row[b] && a < b);
                      });
    double chosen = 0;
    for (int64_t j = 0; j < k; ++j)
      chosen += std::exp(double(row[order[j]]) - max) / sum;
    for (int64_t j = 0; j < k; ++j) {
      const double p = std::exp(double(row[order[j]]) - max) / sum;
      weights[t * k + j] = static_cast<float>(normalize ? p / chosen : p);
      experts[t * k + j] = order[j];
    }
  }
}

namespace {
/// Row of each (token, slot) pair in dispatch order: grouped by expert, in
/// pair order within an expert. Fills offsets [numExperts + 1]. Returns the
/// first pair whose expert is outside [0, numExperts), or -1.
int64_t dispatchSlots(const int64_t *experts, int64_t pairs, int64_t numExperts,
                      int64_t *offsets, std::vector<int64_t> &slot) {
  for (int64_t p = 0; p < pairs; ++p)
    if (experts[p] < 0 || experts[p] >= numExperts)
      return p;
  std::fill(offsets, offsets + numExperts + 1, 0);
  for (int64_t p = 0; p < pairs; ++p)
    ++offsets[experts[p] + 1];
  for (int64_t e = 0; e < numExperts; ++e)
    offsets[e + 1] += offsets[e];
  std::vector<int64_t> next(offsets, offsets + numExperts);
  slot.resize(pairs);
  for (int64_t p = 0; p < pairs; ++p)
    slot[p] = next[experts[p]]++;
  return -1;
}
} // namespace

int64_t weft::kernels::cpu::moeDispatch(const void *x, const int64_t *experts,
                                        void *rows, int64_t *offsets,
                                        int64_t tokens, int64_t k,
                                        int64_t numExperts, int64_t rowBytes) {
  std::vector<int64_t> slot;
  if (int64_t bad =
          dispatchSlots(experts, tokens * k, numExperts, offsets, slot);
      bad >= 0)
    return bad;
#pragma omp parallel for if (tokens * k * rowBytes > (1 << 16))
  for (int64_t p = 0; p < tokens * k; ++p)
    std::memcpy(static_cast<char *>(rows) + slot[p] * rowBytes,
                static_cast<const char *>(x) + p / k * rowBytes, rowBytes);
  return -1;
}

void weft::kernels::cpu::groupedLinear(const float *x, const int64_t *offsets,
                                       const float *const *weights, float *y,
                                       int64_t groups, int64_t in,
                                       int64_t out) {
  for (int64_t g = 0; g < groups; ++g)
    if (offsets[g + 1] > offsets[g])
      linear(x + offsets[g] * in, weights[g], nullptr, y + offsets[g] * out,
             offsets[g + 1] - offsets[g], in, out);
}

void weft::kernels::cpu::groupedLinearBf16(
    const uint16_t *x, const int64_t *offsets, const uint16_t *const *weights,
    uint16_t *y, int64_t groups, int64_t in, int64_t out, float *workspace) {
  for (int64_t g = 0; g < groups; ++g)
    if (offsets[g + 1] > offsets[g])
      linearBf16(x + offsets[g] * in, weights[g], nullptr, y + offsets[g] * out,
                 offsets[g + 1] - offsets[g], in, out, workspace);
}

int64_t weft::kernels::cpu::moeCombine(const float *rows, const float *weights,
                                       const int64_t *experts, float *y,
                                       int64_t tokens, int64_t k,
                                       int64_t numExperts, int64_t hidden) {
  std::vector<int64_t> slot, offsets(numExperts + 1);
  if (int64_t bad =
          dispatchSlots(experts, tokens * k, numExperts, offsets.data(), slot);
      bad >= 0)
    return bad;
#pragma omp parallel for if (tokens * k * hidden > (1 << 15))
  for (int64_t t = 0; t < tokens; ++t) {
    float *out = y + t * hidden;
    std::fill(out, out + hidden, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      const float w = weights[t * k + j];
      const float *row = rows + slot[t * k + j] * hidden;
      for (int64_t h = 0; h < hidden; ++h)
        out[h] += w * row[h];
    }
  }
  return -1;
}
