// Blockwise attention with an online softmax (the FlashAttention recurrence)
// on the CPU: each task owns one (batch, head, query block) and streams key
// blocks through it, never holding more than a block of scores. The block
// products are loops whose inner dimension is contiguous (the key block is
// transposed once per block), built for AVX2+FMA and for plain x86-64 and
// chosen at load time.
#include "kernels/cpu/Kernels.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

using namespace weft::kernels::cpu;

namespace {
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyBlock = 256;

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

using Vector8 = float __attribute__((vector_size(32)));

inline Vector8 load8(const float *p) {
  Vector8 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline void store8(float *p, Vector8 v) { __builtin_memcpy(p, &v, sizeof(v)); }

/// scores[r][c] = scale · Σ_d queries[r][d] · keysT[d][c] for R rows and
/// columns [0, padded), padded a multiple of 16: a 16-column strip of R rows
/// stays in registers while d runs.
template <int R>
inline void scoreTile(const float *const *queries, const float *keysT,
                      float *scores, int64_t padded, int64_t depth,
                      float scale) {
  for (int64_t c0 = 0; c0 < padded; c0 += 16) {
    Vector8 acc[R][2] = {};
    for (int64_t d = 0; d < depth; ++d) {
      const Vector8 k0 = load8(keysT + d * kKeyBlock + c0);
      const Vector8 k1 = load8(keysT + d * kKeyBlock + c0 + 8);
      for (int r = 0; r < R; ++r) {
        const float q = queries[r][d];
        acc[r][0] += q * k0;
        acc[r][1] += q * k1;
      }
    }
    for (int r = 0; r < R; ++r) {
      store8(scores + r * kKeyBlock + c0, acc[r][0] * scale);
      store8(scores + r * kKeyBlock + c0 + 8, acc[r][1] * scale);
    }
  }
}

/// acc[r][e] += Σ_c probs[r][c] · values[c][e] for R rows; values' rows are
/// `stride` apart. Strips of 16 output columns stay in registers.
template <int R>
inline void valueTile(const float *probs, const float *values, int64_t stride,
                      int64_t cols, float *acc, int64_t width) {
  int64_t e0 = 0;
  for (; e0 + 16 <= width; e0 += 16) {
    Vector8 a[R][2];
    for (int r = 0; r < R; ++r) {
      a[r][0] = load8(acc + r * width + e0);
      a[r][1] = load8(acc + r * width + e0 + 8);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const Vector8 v0 = load8(values + c * stride + e0);
      const Vector8 v1 = load8(values + c * stride + e0 + 8);
      for (int r = 0; r < R; ++r) {
        const float p = probs[r * kKeyBlock + c];
        a[r][0] += p * v0;
        a[r][1] += p * v1;
      }
    }
    for (int r = 0; r < R; ++r) {
      store8(acc + r * width + e0, a[r][0]);
      store8(acc + r * width + e0 + 8, a[r][1]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t e = e0; e < width; ++e)
        acc[r * width + e] += probs[r * kKeyBlock + c] * values[c * stride + e];
}

/// Calls fn(std::integral_constant<int, R>, r0) over [0, rows) in tiles of
/// R = 6 rows (6 × 16 accumulators fill 12 of the 16 AVX registers), then 4,
/// then 1.
template <typename Fn> inline void forRowTiles(int64_t rows, Fn fn) {
  int64_t r0 = 0;
  for (; r0 + 6 <= rows; r0 += 6)
    fn(std::integral_constant<int, 6>(), r0);
  for (; r0 + 4 <= rows; r0 += 4)
    fn(std::integral_constant<int, 4>(), r0);
  for (; r0 < rows; ++r0)
    fn(std::integral_constant<int, 1>(), r0);
}

/// max(row[0..cols)) with eight independent lanes, so that it vectorises.
inline float rowMaximum(const float *row, int64_t cols) {
  float lanes[8];
  std::fill(lanes, lanes + 8, -std::numeric_limits<float>::infinity());
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8)
    for (int k = 0; k < 8; ++k)
      lanes[k] = std::max(lanes[k], row[c + k]);
  float result = *std::max_element(lanes, lanes + 8);
  for (; c < cols; ++c)
    result = std::max(result, row[c]);
  return result;
}
} // namespace

int64_t
weft::kernels::cpu::attentionWorkspacePerThread(const AttentionShape &s) {
  // scores, transposed key block, accumulator, running max and sum.
  return kQueryBlock * kKeyBlock + s.dqk * kKeyBlock + kQueryBlock * s.dv +
         2 * kQueryBlock;
}

namespace {
struct Task {
  const float *q, *k, *v;
  const uint8_t *mask;
  bool maskPerBatch;
  const float *slopes;
  float *out;
  AttentionShape s;
  AttentionKind kind;
  float scale;
};

/// One (batch, head, query block): rows [i0, i0 + rows) of head h.
__attribute__((target_clones("arch=x86-64-v3", "default"))) void
runTask(const Task &t, int64_t b, int64_t h, int64_t i0, int64_t rows,
        float *workspace) {
  const AttentionShape &s = t.s;
  const int64_t kh = h / (s.heads / s.kvHeads);
  const int64_t offset = s.skv - s.sq; // position of query 0
  const bool causal =
      t.kind == AttentionKind::Causal || t.kind == AttentionKind::Alibi;
  const float negInf = -std::numeric_limits<float>::infinity();
  float *scores = workspace;
  float *keysT = scores + kQueryBlock * kKeyBlock;
  float *acc = keysT + s.dqk * kKeyBlock;
  float *rowMax = acc + kQueryBlock * s.dv;
  float *rowSum = rowMax + kQueryBlock;
  std::fill(acc, acc + rows * s.dv, 0.0f);
  std::fill(rowMax, rowMax + rows, negInf);
  std::fill(rowSum, rowSum + rows, 0.0f);

  // Keys beyond the last query's position are never attended causally.
  const int64_t keyEnd = causal ? std::min(s.skv, offset + i0 + rows) : s.skv;
  const float *queries[kQueryBlock];
  for (int64_t r = 0; r < rows; ++r)
    queries[r] = t.q + ((b * s.sq + i0 + r) * s.heads + h) * s.dqk;
  for (int64_t j0 = 0; j0 < keyEnd; j0 += kKeyBlock) {
    const int64_t cols = std::min(kKeyBlock, keyEnd - j0);
    const int64_t padded = (cols + 15) / 16 * 16;
    for (int64_t d = 0; d < s.dqk; ++d)
      std::fill(keysT + d * kKeyBlock + cols, keysT + d * kKeyBlock + padded,
                0.0f);
    for (int64_t c = 0; c < cols; ++c) {
      const float *key = t.k + ((b * s.skv + j0 + c) * s.kvHeads + kh) * s.dqk;
      for (int64_t d = 0; d < s.dqk; ++d)
        keysT[d * kKeyBlock + c] = key[d];
    }
    forRowTiles(rows, [&](auto tile, int64_t r0) {
      scoreTile<decltype(tile)::value>(
          queries + r0, keysT, scores + r0 * kKeyBlock, padded, s.dqk, t.scale);
    });

    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      float *row = scores + r * kKeyBlock;
      if (t.kind == AttentionKind::Alibi)
        for (int64_t c = 0; c < cols; ++c)
          row[c] += t.slopes[h] * static_cast<float>(j0 + c - (offset + i));
      if (causal)
        for (int64_t c = std::max<int64_t>(0, offset + i + 1 - j0); c < cols;
             ++c)
          row[c] = negInf;
      if (t.kind == AttentionKind::Mask) {
        const uint8_t *m =
            t.mask + ((t.maskPerBatch ? b * s.sq : 0) + i) * s.skv + j0;
        for (int64_t c = 0; c < cols; ++c)
          row[c] = m[c] ? row[c] : negInf;
      }
      const float newMax = std::max(rowMax[r], rowMaximum(row, cols));
      if (newMax == negInf) { // nothing attended so far: contributes nothing
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
      for (int64_t e = 0; e < s.dv; ++e)
        accRow[e] *= correction;
    }

    const float *values = t.v + ((b * s.skv + j0) * s.kvHeads + kh) * s.dv;
    const int64_t stride = s.kvHeads * s.dv;
    forRowTiles(rows, [&](auto tile, int64_t r0) {
      valueTile<decltype(tile)::value>(scores + r0 * kKeyBlock, values, stride,
                                       cols, acc + r0 * s.dv, s.dv);
    });
  }
  for (int64_t r = 0; r < rows; ++r) {
    float *dst = t.out + ((b * s.sq + i0 + r) * s.heads + h) * s.dv;
    const float inv = rowSum[r] > 0 ? 1.0f / rowSum[r] : 0.0f;
    for (int64_t e = 0; e < s.dv; ++e)
      dst[e] = acc[r * s.dv + e] * inv;
  }
}
} // namespace

void weft::kernels::cpu::attention(const float *q, const float *k,
                                   const float *v, const uint8_t *mask,
                                   bool maskPerBatch, const float *slopes,
                                   float *out, const AttentionShape &s,
                                   AttentionKind kind, float scale,
                                   float *workspace, int threads) {
  const Task task{q, k, v, mask, maskPerBatch, slopes, out, s, kind, scale};
  const int64_t queryBlocks = (s.sq + kQueryBlock - 1) / kQueryBlock;
  const int64_t tasks = s.batch * s.heads * queryBlocks;
  const int64_t perThread = attentionWorkspacePerThread(s);
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int64_t index = 0; index < tasks; ++index) {
    // Latest query blocks first: under a causal mask they are the longest.
    const int64_t qb = queryBlocks - 1 - index % queryBlocks;
    const int64_t h = (index / queryBlocks) % s.heads;
    const int64_t b = index / (queryBlocks * s.heads);
    const int64_t i0 = qb * kQueryBlock;
    runTask(task, b, h, i0, std::min(kQueryBlock, s.sq - i0),
            workspace + omp_get_thread_num() * perThread);
  }
}
