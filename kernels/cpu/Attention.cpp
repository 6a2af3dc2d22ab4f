// Blockwise attention with an online softmax (the FlashAttention recurrence)
// on the CPU. Each task owns one (batch, kv head, query block) with every
// query head of that kv head's group, and streams key blocks through it,
// never holding more than a block of scores. Each key and value block is
// packed once per task into 16-column panels, so that the block products
// stream contiguous memory while their results stay in registers; under a
// causal mask a row tile stops at its last attended column. Built for
// AVX2+FMA and for plain x86-64, chosen at load time.
#include "kernels/cpu/ExpNonPositive.h"
#include "kernels/cpu/Kernels.h"
#include "kernels/cpu/TargetClones.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

using namespace weft::kernels::cpu;

namespace {
constexpr int64_t kTaskRows = 128;
constexpr int64_t kKeyBlock = 256;

using Vector8 = float __attribute__((vector_size(32)));

inline Vector8 load8(const float *p) {
  Vector8 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

inline void store8(float *p, Vector8 v) { __builtin_memcpy(p, &v, sizeof(v)); }

/// scores[r][c] = scale · Σ_d queries[r][d] · keys[d][c] for R rows and
/// columns [0, padded), padded a multiple of 16. `keys` is packed in panels of
/// 16 columns ([padded / 16][depth][16]), so that each strip streams
/// contiguously while its R × 16 results stay in registers.
template <int R>
inline void scoreTile(const float *const *queries, const float *keys,
                      float *scores, int64_t padded, int64_t depth,
                      float scale) {
  for (int64_t c0 = 0; c0 < padded; c0 += 16) {
    const float *panel = keys + c0 * depth;
    Vector8 acc[R][2] = {};
    for (int64_t d = 0; d < depth; ++d) {
      const Vector8 k0 = load8(panel + d * 16);
      const Vector8 k1 = load8(panel + d * 16 + 8);
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

/// acc[r][e] += Σ_c probs[r][c] · values[c][e] for R rows, c in [0, cols),
/// e in [0, width), width a multiple of 16. `values` is packed in panels of 16
/// columns ([width / 16][kKeyBlock][16]).
template <int R>
inline void valueTile(const float *probs, const float *values, int64_t cols,
                      float *acc, int64_t width) {
  for (int64_t e0 = 0; e0 < width; e0 += 16) {
    const float *panel = values + e0 * kKeyBlock;
    Vector8 a[R][2];
    for (int r = 0; r < R; ++r) {
      a[r][0] = load8(acc + r * width + e0);
      a[r][1] = load8(acc + r * width + e0 + 8);
    }
    for (int64_t c = 0; c < cols; ++c) {
      const Vector8 v0 = load8(panel + c * 16);
      const Vector8 v1 = load8(panel + c * 16 + 8);
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

/// Replaces row[0..cols) by e^(row − maximum) and returns their sum, with
/// eight independent partial sums so that it vectorises.
inline float exponentiateRow(float *row, int64_t cols, float maximum) {
  float lanes[8] = {};
  int64_t c = 0;
  for (; c + 8 <= cols; c += 8)
    for (int k = 0; k < 8; ++k) {
      row[c + k] = expNonPositive(row[c + k] - maximum);
      lanes[k] += row[c + k];
    }
  float result = 0.0f;
  for (; c < cols; ++c) {
    row[c] = expNonPositive(row[c] - maximum);
    result += row[c];
  }
  for (int k = 0; k < 8; ++k)
    result += lanes[k];
  return result;
}

int64_t roundUp16(int64_t n) { return (n + 15) / 16 * 16; }
} // namespace

namespace {
/// Query rows per head in one task: a task covers every query head that
/// shares a kv head, so that each key and value block it streams serves
/// kTaskRows rows.
int64_t headRows(const AttentionShape &s) {
  return std::max<int64_t>(1, kTaskRows / (s.heads / s.kvHeads));
}

int64_t keyBlocks(const AttentionShape &s) {
  return (s.skv + kKeyBlock - 1) / kKeyBlock;
}

/// Floats of one packed key block and of one packed value block.
int64_t packedKeyFloats(const AttentionShape &s) { return s.dqk * kKeyBlock; }
int64_t packedValueFloats(const AttentionShape &s) {
  return roundUp16(s.dv) * kKeyBlock;
}

int64_t packedFloats(const AttentionShape &s) {
  return s.batch * s.kvHeads * keyBlocks(s) *
         (packedKeyFloats(s) + packedValueFloats(s));
}

int64_t perThreadFloats(const AttentionShape &s, bool bf16) {
  const int64_t rows = headRows(s) * (s.heads / s.kvHeads);
  // scores, accumulator, running max and sum (and bf16's widened queries).
  return rows * kKeyBlock + rows * roundUp16(s.dv) + 2 * rows +
         (bf16 ? rows * s.dqk : 0);
}
} // namespace

int64_t weft::kernels::cpu::attentionWorkspace(const AttentionShape &s,
                                               int threads, bool bf16) {
  return packedFloats(s) + threads * perThreadFloats(s, bf16);
}

namespace {
struct Task {
  const void *q, *k, *v; // float, or bf16 bits when bf16
  const uint8_t *mask;
  bool maskPerBatch;
  const float *slopes;
  void *out;
  bool bf16;
  AttentionShape s;
  AttentionKind kind;
  float scale;
  int64_t window; // 0: none
  float *packed;  // every key block, then every value block
  float *lse;     // [B, Hq, Sq] or null

  /// Element `index` of q, k or v as f32.
  float read(const void *base, int64_t index) const {
    return bf16 ? bf16ToFloat(static_cast<const uint16_t *>(base)[index])
                : static_cast<const float *>(base)[index];
  }

  int64_t blockIndex(int64_t b, int64_t kh, int64_t j0) const {
    return (b * s.kvHeads + kh) * keyBlocks(s) + j0 / kKeyBlock;
  }
  float *keyBlock(int64_t b, int64_t kh, int64_t j0) const {
    return packed + blockIndex(b, kh, j0) * packedKeyFloats(s);
  }
  float *valueBlock(int64_t b, int64_t kh, int64_t j0) const {
    return packed + s.batch * s.kvHeads * keyBlocks(s) * packedKeyFloats(s) +
           blockIndex(b, kh, j0) * packedValueFloats(s);
  }
};

/// Packs keys [j0, j0 + cols) of kv head kh into 16-column panels
/// ([roundUp16(cols) / 16][dqk][16], zeros beyond cols) and their values
/// into [roundUp16(dv) / 16][kKeyBlock][16] (zeros beyond dv).
void packBlock(const Task &t, int64_t b, int64_t kh, int64_t j0) {
  const AttentionShape &s = t.s;
  const int64_t cols = std::min(kKeyBlock, s.skv - j0);
  float *keys = t.keyBlock(b, kh, j0);
  for (int64_t c0 = 0; c0 < roundUp16(cols); c0 += 16) {
    float *panel = keys + c0 * s.dqk;
    for (int64_t c = c0; c < c0 + 16; ++c) {
      if (c >= cols) {
        for (int64_t d = 0; d < s.dqk; ++d)
          panel[d * 16 + c - c0] = 0.0f;
        continue;
      }
      const int64_t key = ((b * s.skv + j0 + c) * s.kvHeads + kh) * s.dqk;
      for (int64_t d = 0; d < s.dqk; ++d)
        panel[d * 16 + c - c0] = t.read(t.k, key + d);
    }
  }
  float *values = t.valueBlock(b, kh, j0);
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t value = ((b * s.skv + j0 + c) * s.kvHeads + kh) * s.dv;
    for (int64_t e0 = 0; e0 < s.dv; e0 += 16) {
      float *dst = values + e0 * kKeyBlock + c * 16;
      if (e0 + 16 <= s.dv && !t.bf16) {
        const float *from = static_cast<const float *>(t.v) + value + e0;
        store8(dst, load8(from));
        store8(dst + 8, load8(from + 8));
        continue;
      }
      for (int64_t e = 0; e < 16; ++e)
        dst[e] = e0 + e < s.dv ? t.read(t.v, value + e0 + e) : 0.0f;
    }
  }
}

/// One (batch, kv head, query block): rows [i0, i0 + rows) of every query
/// head reading kv head kh. Row g · rows + r of the workspace is query i0 + r
/// of head kh · group + g.
WEFT_CLONES void runTask(const Task &t, int64_t b, int64_t kh, int64_t i0,
                         int64_t rows, float *workspace) {
  const AttentionShape &s = t.s;
  const int64_t group = s.heads / s.kvHeads;
  const int64_t taskRows = group * rows;
  const int64_t width = roundUp16(s.dv);
  const int64_t offset = s.skv - s.sq; // position of query 0
  const bool causal =
      t.kind == AttentionKind::Causal || t.kind == AttentionKind::Alibi;
  const float negInf = -std::numeric_limits<float>::infinity();
  float *scores = workspace;
  float *acc = scores + headRows(s) * group * kKeyBlock;
  float *rowMax = acc + headRows(s) * group * width;
  float *rowSum = rowMax + headRows(s) * group;
  float *wideQueries = rowSum + headRows(s) * group; // bf16 only
  std::fill(acc, acc + taskRows * width, 0.0f);
  std::fill(rowMax, rowMax + taskRows, negInf);
  std::fill(rowSum, rowSum + taskRows, 0.0f);

  // Query rows: f32 ones where they are, bf16 ones widened here first
  // (row g · rows + r is query i0 + r of head kh · group + g).
  int64_t qStride = s.heads * s.dqk;
  auto queryRows = [&](int64_t g) {
    return static_cast<const float *>(t.q) +
           ((b * s.sq + i0) * s.heads + kh * group + g) * s.dqk;
  };
  if (t.bf16) {
    const auto *q = static_cast<const uint16_t *>(t.q);
    for (int64_t g = 0; g < group; ++g)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t d = 0; d < s.dqk; ++d)
          wideQueries[(g * rows + r) * s.dqk + d] = bf16ToFloat(
              q[((b * s.sq + i0 + r) * s.heads + kh * group + g) * s.dqk + d]);
    qStride = s.dqk;
  }
  // Keys beyond the last query's position are never attended causally, nor
  // keys a window before the first query's.
  const int64_t keyEnd = causal ? std::min(s.skv, offset + i0 + rows) : s.skv;
  const int64_t keyBegin =
      causal && t.window > 0
          ? std::max<int64_t>(0, offset + i0 - t.window + 1) / kKeyBlock *
                kKeyBlock
          : 0;
  for (int64_t j0 = keyBegin; j0 < keyEnd; j0 += kKeyBlock) {
    const int64_t cols = std::min(kKeyBlock, keyEnd - j0);
    const float *keys = t.keyBlock(b, kh, j0);
    const float *values = t.valueBlock(b, kh, j0);
    // Columns a tile of rows [r0, r0 + R) can attend: under a causal mask
    // the last row's.
    auto tileColumns = [&](int64_t r0, int64_t tileRows) {
      return causal ? std::clamp<int64_t>(offset + i0 + r0 + tileRows - j0, 0,
                                          cols)
                    : cols;
    };
    for (int64_t g = 0; g < group; ++g) {
      const float *q = t.bf16 ? wideQueries + g * rows * s.dqk : queryRows(g);
      forRowTiles(rows, [&](auto tile, int64_t r0) {
        constexpr int R = decltype(tile)::value;
        const int64_t limit = tileColumns(r0, R);
        if (limit == 0)
          return;
        const float *queries[R];
        for (int r = 0; r < R; ++r)
          queries[r] = q + (r0 + r) * qStride;
        scoreTile<R>(queries, keys, scores + (g * rows + r0) * kKeyBlock,
                     roundUp16(limit), s.dqk, t.scale);
      });
    }

    for (int64_t row = 0; row < taskRows; ++row) {
      const int64_t h = kh * group + row / rows;
      const int64_t i = i0 + row % rows;
      float *scoreRow = scores + row * kKeyBlock;
      if (t.kind == AttentionKind::Alibi)
        for (int64_t c = 0; c < cols; ++c)
          scoreRow[c] +=
              t.slopes[h] * static_cast<float>(j0 + c - (offset + i));
      if (causal)
        for (int64_t c = std::max<int64_t>(0, offset + i + 1 - j0); c < cols;
             ++c)
          scoreRow[c] = negInf;
      if (causal && t.window > 0)
        for (int64_t c = 0;
             c < std::min<int64_t>(cols, offset + i - t.window + 1 - j0); ++c)
          scoreRow[c] = negInf;
      if (t.kind == AttentionKind::Mask) {
        const uint8_t *m =
            t.mask + ((t.maskPerBatch ? b * s.sq : 0) + i) * s.skv + j0;
        for (int64_t c = 0; c < cols; ++c)
          scoreRow[c] = m[c] ? scoreRow[c] : negInf;
      }
      const float newMax = std::max(rowMax[row], rowMaximum(scoreRow, cols));
      if (newMax == negInf) { // nothing attended so far: contributes nothing
        std::fill(scoreRow, scoreRow + cols, 0.0f);
        continue;
      }
      const float correction = expNonPositive(rowMax[row] - newMax);
      const float sum = exponentiateRow(scoreRow, cols, newMax);
      rowSum[row] = rowSum[row] * correction + sum;
      rowMax[row] = newMax;
      float *accRow = acc + row * width;
      for (int64_t e = 0; e < width; ++e)
        accRow[e] *= correction;
    }

    for (int64_t g = 0; g < group; ++g)
      forRowTiles(rows, [&](auto tile, int64_t r0) {
        constexpr int R = decltype(tile)::value;
        const int64_t row = g * rows + r0;
        valueTile<R>(scores + row * kKeyBlock, values, tileColumns(r0, R),
                     acc + row * width, width);
      });
  }
  for (int64_t row = 0; row < taskRows; ++row) {
    const int64_t h = kh * group + row / rows;
    const int64_t dst = ((b * s.sq + i0 + row % rows) * s.heads + h) * s.dv;
    const float inv = rowSum[row] > 0 ? 1.0f / rowSum[row] : 0.0f;
    if (t.lse) // +∞ when nothing was attended: every probability 0
      t.lse[(b * s.heads + h) * s.sq + i0 + row % rows] =
          rowSum[row] > 0 ? rowMax[row] + std::log(rowSum[row])
                          : std::numeric_limits<float>::infinity();
    for (int64_t e = 0; e < s.dv; ++e) {
      const float value = acc[row * width + e] * inv;
      if (t.bf16)
        static_cast<uint16_t *>(t.out)[dst + e] = floatToBf16(value);
      else
        static_cast<float *>(t.out)[dst + e] = value;
    }
  }
}
} // namespace

namespace {
void runAttention(const Task &task, int threads) {
  const AttentionShape &s = task.s;
  float *perThread = task.packed + packedFloats(s);
  const int64_t blockRows = headRows(s);
  const int64_t queryBlocks = (s.sq + blockRows - 1) / blockRows;
  const int64_t tasks = s.batch * s.kvHeads * queryBlocks;
#pragma omp parallel num_threads(threads)
  {
#pragma omp for
    for (int64_t index = 0; index < s.batch * s.kvHeads * keyBlocks(s); ++index)
      packBlock(task, index / (s.kvHeads * keyBlocks(s)),
                index / keyBlocks(s) % s.kvHeads,
                index % keyBlocks(s) * kKeyBlock);
#pragma omp for schedule(dynamic)
    for (int64_t index = 0; index < tasks; ++index) {
      // Latest query blocks first: under a causal mask they are the longest.
      const int64_t qb = queryBlocks - 1 - index % queryBlocks;
      const int64_t kh = (index / queryBlocks) % s.kvHeads;
      const int64_t b = index / (queryBlocks * s.kvHeads);
      const int64_t i0 = qb * blockRows;
      runTask(task, b, kh, i0, std::min(blockRows, s.sq - i0),
              perThread + omp_get_thread_num() * perThreadFloats(s, task.bf16));
    }
  }
}
} // namespace

void weft::kernels::cpu::attention(const float *q, const float *k,
                                   const float *v, const uint8_t *mask,
                                   bool maskPerBatch, const float *slopes,
                                   float *out, const AttentionShape &s,
                                   AttentionKind kind, float scale,
                                   int64_t window, float *workspace,
                                   int threads, float *lse) {
  runAttention({q, k, v, mask, maskPerBatch, slopes, out, false, s, kind, scale,
                window, workspace, lse},
               threads);
}

void weft::kernels::cpu::attentionBf16(const uint16_t *q, const uint16_t *k,
                                       const uint16_t *v, const uint8_t *mask,
                                       bool maskPerBatch, const float *slopes,
                                       uint16_t *out, const AttentionShape &s,
                                       AttentionKind kind, float scale,
                                       int64_t window, float *workspace,
                                       int threads, float *lse) {
  runAttention({q, k, v, mask, maskPerBatch, slopes, out, true, s, kind, scale,
                window, workspace, lse},
               threads);
}
