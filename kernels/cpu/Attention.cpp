// Blockwise attention with an online softmax (the FlashAttention recurrence)
// on the CPU: each task owns one (batch, head, query block), streams key
// blocks through two small GEMMs and never holds more than a block of scores.
// OpenBLAS (OpenMP build) runs the GEMMs single-threaded inside our tasks.
#include "kernels/cpu/Kernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

using namespace weft::kernels::cpu;

namespace {
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyBlock = 256;

/// e^x for x ≤ 0 (scores minus their running maximum), within 2 ulp, written
/// without calls or branches so that the loops over a block vectorise;
/// exactly 0 below −87 (masked scores are −∞).
inline float expNonPositive(float x) {
  const float clamped = x < -87.0f ? -87.0f : x;
  // e^x = 2^n · e^r with n = round(x / ln 2), |r| ≤ ln(2) / 2.
  // Round to nearest by adding and removing 1.5 · 2^23 (no SSE4.1 needed).
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, 4);
  return x < -87.0f ? 0.0f : p * scale;
}
} // namespace

int64_t
weft::kernels::cpu::attentionWorkspacePerThread(const AttentionShape &s) {
  // scores, accumulator, running max and sum.
  return kQueryBlock * kKeyBlock + kQueryBlock * s.dv + 2 * kQueryBlock;
}

void weft::kernels::cpu::attention(const float *q, const float *k,
                                   const float *v, const uint8_t *mask,
                                   bool maskPerBatch, const float *slopes,
                                   float *out, const AttentionShape &s,
                                   AttentionKind kind, float scale,
                                   float *workspace, int threads) {
  const int64_t groups = s.heads / s.kvHeads;
  const int64_t offset = s.skv - s.sq; // position of query 0
  const int64_t queryBlocks = (s.sq + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = s.batch * s.heads * queryBlocks;
  const int64_t perThread = attentionWorkspacePerThread(s);
  const bool causal =
      kind == AttentionKind::Causal || kind == AttentionKind::Alibi;
  const float negInf = -std::numeric_limits<float>::infinity();

#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t qb = task % queryBlocks;
    const int64_t h = (task / queryBlocks) % s.heads;
    const int64_t b = task / (queryBlocks * s.heads);
    const int64_t kh = h / groups;
    const int64_t i0 = qb * kQueryBlock;
    const int64_t rows = std::min(kQueryBlock, s.sq - i0);

    float *scores = workspace + omp_get_thread_num() * perThread;
    float *acc = scores + kQueryBlock * kKeyBlock;
    float *rowMax = acc + kQueryBlock * s.dv;
    float *rowSum = rowMax + kQueryBlock;
    std::fill(acc, acc + rows * s.dv, 0.0f);
    std::fill(rowMax, rowMax + rows, negInf);
    std::fill(rowSum, rowSum + rows, 0.0f);

    const float *qBlock = q + ((b * s.sq + i0) * s.heads + h) * s.dqk;
    // Keys beyond the last query's position are never attended causally.
    const int64_t keyEnd = causal ? std::min(s.skv, offset + i0 + rows) : s.skv;
    for (int64_t j0 = 0; j0 < keyEnd; j0 += kKeyBlock) {
      const int64_t cols = std::min(kKeyBlock, keyEnd - j0);
      const float *kBlock = k + ((b * s.skv + j0) * s.kvHeads + kh) * s.dqk;
      const float *vBlock = v + ((b * s.skv + j0) * s.kvHeads + kh) * s.dv;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, s.dqk,
                  scale, qBlock, s.heads * s.dqk, kBlock, s.kvHeads * s.dqk,
                  0.0f, scores, kKeyBlock);
      for (int64_t r = 0; r < rows; ++r) {
        float *row = scores + r * kKeyBlock;
        const int64_t i = i0 + r;
        if (kind == AttentionKind::Alibi)
          for (int64_t c = 0; c < cols; ++c)
            row[c] += slopes[h] * static_cast<float>(j0 + c - (offset + i));
        if (causal)
          for (int64_t c = std::max<int64_t>(0, offset + i + 1 - j0); c < cols;
               ++c)
            row[c] = negInf;
        if (kind == AttentionKind::Mask) {
          const uint8_t *m =
              mask + ((maskPerBatch ? b * s.sq : 0) + i) * s.skv + j0;
          for (int64_t c = 0; c < cols; ++c)
            if (!m[c])
              row[c] = negInf;
        }
        float blockMax = negInf;
        for (int64_t c = 0; c < cols; ++c)
          blockMax = std::max(blockMax, row[c]);
        const float newMax = std::max(rowMax[r], blockMax);
        if (newMax == negInf) { // nothing attended so far
          std::fill(row, row + cols, 0.0f);
          continue;
        }
        const float correction = expNonPositive(rowMax[r] - newMax);
        float sum = 0.0f;
        for (int64_t c = 0; c < cols; ++c)
          row[c] = expNonPositive(row[c] - newMax);
        for (int64_t c = 0; c < cols; ++c)
          sum += row[c];
        rowSum[r] = rowSum[r] * correction + sum;
        rowMax[r] = newMax;
        float *accRow = acc + r * s.dv;
        for (int64_t d = 0; d < s.dv; ++d)
          accRow[d] *= correction;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s.dv, cols,
                  1.0f, scores, kKeyBlock, vBlock, s.kvHeads * s.dv, 1.0f, acc,
                  s.dv);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float *dst = out + ((b * s.sq + i0 + r) * s.heads + h) * s.dv;
      const float inv = rowSum[r] > 0 ? 1.0f / rowSum[r] : 0.0f;
      for (int64_t d = 0; d < s.dv; ++d)
        dst[d] = acc[r * s.dv + d] * inv;
    }
  }
}
