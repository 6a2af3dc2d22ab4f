// Hand-written CPU kernels: the library calls of CPU plans and the numeric
// reference for every other backend. All tensors are dense and row-major;
// floats are fp32 unless a kernel says bf16 (stored as uint16_t, computed in
// fp32); indices are int64, predicates one byte per element. Each kernel
// writes every element of its output and reads nothing outside its inputs.
#ifndef WEFT_KERNELS_CPU_KERNELS_H
#define WEFT_KERNELS_CPU_KERNELS_H

#include <cstddef>
#include <cstdint>

namespace weft::kernels::cpu {

/// bf16 is the upper half of an fp32.
inline float bf16ToFloat(uint16_t bits) {
  return __builtin_bit_cast(float, static_cast<uint32_t>(bits) << 16);
}

/// fp32 → bf16, rounding to nearest even; NaN stays NaN.
inline uint16_t floatToBf16(float value) {
  uint32_t word = __builtin_bit_cast(uint32_t, value);
  if ((word & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>(word >> 16 | 0x40);
  word += 0x7fffu + (word >> 16 & 1);
  return static_cast<uint16_t>(word >> 16);
}

/// An element of a kernel templated over f32 and bf16 (uint16_t), as fp32;
/// and an fp32 result as such an element (bf16: rounded to nearest even).
inline float toFloat(float x) { return x; }
inline float toFloat(uint16_t bits) { return bf16ToFloat(bits); }
template <typename T> T fromFloat(float x) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 2, "f32 or bf16 elements");
  if constexpr (sizeof(T) == 2)
    return floatToBf16(x);
  else
    return x;
}

/// IEEE half → fp32.
float f16ToFloat(uint16_t bits);

void bf16ToF32(const uint16_t *x, float *y, int64_t n);
void f32ToBf16(const float *x, uint16_t *y, int64_t n);

/// y[r, o] = sum_i x[r, i] * w[o, i] + bias[o] (bias may be null): a
/// torch.nn.Linear over `rows` rows.
void linear(const float *x, const float *w, const float *bias, float *y,
            int64_t rows, int64_t in, int64_t out);

/// Floats of workspace `linearBf16` needs.
int64_t linearBf16Workspace(int64_t rows, int64_t in, int64_t out);

/// `linear` over bf16 x, w, bias (may be null) and y, computed in fp32: tiles
/// of x and w are widened into `workspace` for the fp32 GEMM and each result
/// is rounded once. The weights stay bf16 in memory.
void linearBf16(const uint16_t *x, const uint16_t *w, const uint16_t *bias,
                uint16_t *y, int64_t rows, int64_t in, int64_t out,
                float *workspace);

/// Batched matrix product: for each of `batch` batches,
/// c = acc + op(a) · op(b) with op transposing when asked; a is [M, K] ([K, M]
/// transposed), b is [K, N] ([N, K] transposed), acc (null: zero) and c
/// [M, N], and c may be acc. `bBatchStride` is 0 when one b serves every
/// batch.
void matmul(const float *a, const float *b, const float *acc, float *c,
            int64_t batch, int64_t m, int64_t n, int64_t k, bool transposeA,
            bool transposeB, int64_t bBatchStride);

/// Floats of workspace `matmulBf16` needs.
int64_t matmulBf16Workspace(int64_t m, int64_t n, int64_t k);

/// `matmul` over bf16 a, b, acc and c, computed in fp32: tiles of op(a),
/// op(b) and acc are widened into `workspace` for the fp32 GEMM and each
/// result is rounded once — what widening a, b and acc, `matmul` and rounding
/// c compute.
void matmulBf16(const uint16_t *a, const uint16_t *b, const uint16_t *acc,
                uint16_t *c, int64_t batch, int64_t m, int64_t n, int64_t k,
                bool transposeA, bool transposeB, int64_t bBatchStride,
                float *workspace);

enum class AttentionKind { Full, Causal, Alibi, Mask };

struct AttentionShape {
  int64_t batch, sq, skv, heads, kvHeads, dqk, dv;
};

/// Floats of workspace `attention` needs with `threads` threads: the keys
/// and values packed once per call (O(Skv · d)) and, per thread, one block of
/// scores and accumulators (independent of the sequence length); bf16
/// attention also widens each task's query rows.
int64_t attentionWorkspace(const AttentionShape &shape, int threads,
                           bool bf16 = false);

/// Scaled dot-product attention computed block by block with an online
/// softmax: memory O(blocks), never an Sq×Skv matrix. q [B, Sq, Hq, Dqk],
/// k [B, Skv, Hkv, Dqk], v [B, Skv, Hkv, Dv], out [B, Sq, Hq, Dv]. Query head h
/// reads kv head h / (Hq / Hkv). The queries are the last Sq of Skv positions.
/// `mask` ([B, Sq, Skv] when maskPerBatch, else [Sq, Skv]; nonzero attends) is
/// read for kind Mask, `slopes` [Hq] for Alibi. A `window` W > 0 limits a
/// Causal or Alibi query at position p to keys p − W < j ≤ p (0: no window).
/// A query that attends to no key gets zeros. `workspace` holds
/// attentionWorkspace(shape, threads) floats. `lse` (may be null) gets each
/// query row's log-sum-exp of its scores, [B, Hq, Sq] (+∞ for a row that
/// attends no key): what attentionBackward reads instead of recomputing it.
void attention(const float *q, const float *k, const float *v,
               const uint8_t *mask, bool maskPerBatch, const float *slopes,
               float *out, const AttentionShape &shape, AttentionKind kind,
               float scale, int64_t window, float *workspace, int threads,
               float *lse = nullptr);

/// The same with q, k, v and out in bf16: keys, values and queries are
/// widened to f32 as they are packed, the output rounded once (nearest even).
/// `workspace` holds attentionWorkspace(shape, threads, true) floats.
void attentionBf16(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                   const uint8_t *mask, bool maskPerBatch, const float *slopes,
                   uint16_t *out, const AttentionShape &shape,
                   AttentionKind kind, float scale, int64_t window,
                   float *workspace, int threads, float *lse = nullptr);

/// Floats of workspace `attentionBackward` needs with `threads` threads:
/// two per query row and head, and one score row per thread;
/// `attentionBackwardBf16` also widens its operands and gradients there.
int64_t attentionBackwardWorkspace(const AttentionShape &shape, int threads,
                                   bool bf16 = false);

/// The gradients dq, dk, dv of `attention` (f32) given its inputs, its
/// output `out` and the output's gradient `dout`, with the same masks,
/// slopes, scale and window; dk and dv sum over each kv head's query heads.
/// The probabilities are recomputed, never stored: memory O(rows + threads ·
/// Skv). The result does not depend on `threads`. `lse` (may be null) is
/// each row's log-sum-exp as `attention` returned it; without it the
/// backward computes it first (a pass over every score).
void attentionBackward(const float *q, const float *k, const float *v,
                       const float *out, const float *dout, const uint8_t *mask,
                       bool maskPerBatch, const float *slopes, float *dq,
                       float *dk, float *dv, const AttentionShape &shape,
                       AttentionKind kind, float scale, int64_t window,
                       float *workspace, int threads,
                       const float *lse = nullptr);

/// The same with q, k, v, out, dout, dq, dk and dv in bf16: the operands
/// widened into the workspace, the f32 backward, each gradient rounded once
/// (nearest even). `workspace` holds attentionBackwardWorkspace(shape,
/// threads, true) floats.
void attentionBackwardBf16(const uint16_t *q, const uint16_t *k,
                           const uint16_t *v, const uint16_t *out,
                           const uint16_t *dout, const uint8_t *mask,
                           bool maskPerBatch, const float *slopes, uint16_t *dq,
                           uint16_t *dk, uint16_t *dv,
                           const AttentionShape &shape, AttentionKind kind,
                           float scale, int64_t window, float *workspace,
                           int threads, const float *lse = nullptr);

/// y = x / sqrt(mean(x², row) + eps) * w over rows of `cols`.
void rmsNorm(const float *x, const float *w, float *y, int64_t rows,
             int64_t cols, float eps);

/// y = (x − mean) / sqrt(var + eps) * w + bias (bias may be null).
void layerNorm(const float *x, const float *w, const float *bias, float *y,
               int64_t rows, int64_t cols, float eps);

/// Rotary embedding of x [B, S, H, D] at positions [B, S]; see weft.rope. The
/// D/2 inverse frequencies are `frequencies` when given, else theta^(−2j/D).
void rope(const float *x, const int64_t *positions, float *y, int64_t batch,
          int64_t seq, int64_t heads, int64_t headDim, double theta,
          bool interleaved, const double *frequencies = nullptr);
/// `rope` of bf16 x into bf16 y: each element widened as it is read, each
/// result rounded once (nearest even) — the numbers of widening x, `rope`
/// and rounding y.
void ropeBf16(const uint16_t *x, const int64_t *positions, uint16_t *y,
              int64_t batch, int64_t seq, int64_t heads, int64_t headDim,
              double theta, bool interleaved,
              const double *frequencies = nullptr);

/// Softmax (or log-softmax) along the middle dimension of x viewed as
/// [outer, dim, inner].
void softmax(const float *x, float *y, int64_t outer, int64_t dim,
             int64_t inner, bool logarithm);

/// out[a, i, b] = table[a, indices[i], b] with table viewed as
/// [outer, size, inner] and `count` indices, for elements of any type
/// (`innerBytes` bytes per [a, i]). Returns the first index outside
/// [0, size), or -1 when all are valid (then out is fully written).
int64_t gather(const void *table, const int64_t *indices, void *out,
               int64_t outer, int64_t size, int64_t innerBytes, int64_t count);

/// A copy of a `shape` box between two strided views (strides in elements;
/// a stride of 0 repeats an element, which is how broadcasts read).
struct StridedCopy {
  static constexpr int kMaxRank = 8;
  int rank;
  int64_t elementBytes;
  int64_t shape[kMaxRank];
  int64_t srcOffset, srcStrides[kMaxRank];
  int64_t dstOffset, dstStrides[kMaxRank];
};

/// dst[dstOffset + Σ i_d · dstStrides[d]] = src[srcOffset + Σ i_d ·
/// srcStrides[d]] for every index i of the box: transpose, slice and
/// broadcast are such copies into a dense result.
void copyStrided(const void *src, void *dst, const StridedCopy &copy);

/// Concatenation: row o of the output is row o of each input in turn, input
/// k's rows `rowBytes[k]` long (the inputs viewed as [outer, rest]).
void concat(const void *const *inputs, const int64_t *rowBytes, int count,
            void *out, int64_t outer);

enum class ReduceKind { Sum, Max, Min, Mean };

/// y = x reduced over the dimensions d with reduced[d] ≠ 0, y dense over the
/// kept ones in order. Sums accumulate in double; NaN propagates through
/// max and min.
void reduce(const float *x, float *y, const int64_t *shape,
            const uint8_t *reduced, int rank, ReduceKind kind);

/// out = base, then out[a, indices[i], b] += updates[a, i, b] with base viewed
/// as [outer, size, inner] and `count` indices; repeated indices accumulate.
/// out may be base. Returns the first index outside [0, size), or -1 (then
/// out is fully written).
int64_t scatterAdd(const float *base, const int64_t *indices,
                   const float *updates, float *out, int64_t outer,
                   int64_t size, int64_t inner, int64_t count);

/// Top-k routing per token over `numExperts` logits: softmax (in double),
/// the k most probable experts highest first (ties to the lower index), their
/// probabilities divided by their sum under `normalize`.
void moeGate(const float *logits, float *weights, int64_t *experts,
             int64_t tokens, int64_t numExperts, int64_t k, bool normalize);

/// Copies row t of x into rows[slot(t, j)] for each of token t's k experts,
/// slots grouped by expert in expert order and in (token, j) order within one;
/// offsets [numExperts + 1] get each expert's first slot. Rows are
/// `rowBytes` long (any element type). Returns the first (token, j) pair whose
/// expert is outside [0, numExperts), or -1.
int64_t moeDispatch(const void *x, const int64_t *experts, void *rows,
                    int64_t *offsets, int64_t tokens, int64_t k,
                    int64_t numExperts, int64_t rowBytes);

/// `linear` (no bias) of rows [offsets[g], offsets[g + 1]) of x by weights[g],
/// for each of `groups` groups.
void groupedLinear(const float *x, const int64_t *offsets,
                   const float *const *weights, float *y, int64_t groups,
                   int64_t in, int64_t out);

/// groupedLinear over bf16 as linearBf16 computes it; `workspace` holds
/// linearBf16Workspace(rows, in, out) floats.
void groupedLinearBf16(const uint16_t *x, const int64_t *offsets,
                       const uint16_t *const *weights, uint16_t *y,
                       int64_t groups, int64_t in, int64_t out,
                       float *workspace);

/// y[t] = Σ_j weights[t, j] · rows[slot(t, j)] with moeDispatch's slots.
/// Returns the first pair whose expert is outside [0, numExperts), or -1.
int64_t moeCombine(const float *rows, const float *weights,
                   const int64_t *experts, float *y, int64_t tokens, int64_t k,
                   int64_t numExperts, int64_t hidden);

enum class LossReduction { Mean, Sum, None };

/// Cross-entropy of logits [tokens, vocab] against labels [tokens]; labels
/// equal to ignoreIndex contribute nothing. Writes one value (Mean, Sum) or
/// `tokens` values (None). Returns the first token whose label is neither in
/// [0, vocab) nor ignoreIndex, or -1.
int64_t crossEntropy(const float *logits, const int64_t *labels, float *out,
                     int64_t tokens, int64_t vocab, int64_t ignoreIndex,
                     LossReduction reduction);

/// crossEntropy of bf16 logits, each widened as it is read (the numbers of
/// widening the logits first).
int64_t crossEntropyBf16(const uint16_t *logits, const int64_t *labels,
                         float *out, int64_t tokens, int64_t vocab,
                         int64_t ignoreIndex, LossReduction reduction);

/// One AdamW step's hyperparameters, as torch.optim.AdamW takes them
/// (`step` counts from 1), and the factor gradients are scaled by first
/// (global-norm clipping: min(1, max_norm / (norm + 1e-6)); else 1).
struct AdamWStep {
  double lr, beta1, beta2, eps, weightDecay;
  int64_t step;
  float gradScale = 1.0f;
  /// Applied before gradScale: 1/K for the mean of K accumulated gradients.
  float gradMultiplier = 1.0f;
};

/// AdamW on `n` parameters in place, as torch.optim.AdamW (fp32, not
/// amsgrad) computes it, operation for operation: decoupled weight decay,
/// then the moments `m` and `v`, then the bias-corrected step on `master`
/// (the fp32 weights). When `param` is not null the updated weights are also
/// rounded into it (bf16 parameters with fp32 master weights).
void adamwUpdate(const AdamWStep &step, float *master, float *m, float *v,
                 const float *grad, uint16_t *param, int64_t n);
/// `adamwUpdate` with bf16 gradients (widened exactly).
void adamwUpdateBf16Grad(const AdamWStep &step, float *master, float *m,
                         float *v, const uint16_t *grad, uint16_t *param,
                         int64_t n);

/// Σ (x·scale)² accumulated in double (x·scale rounded to f32 first), the
/// same whatever the thread count: the squared global gradient norm is its
/// sum over every gradient.
double sumOfSquares(const float *x, int64_t n, float scale = 1.0f);
double sumOfSquaresBf16(const uint16_t *x, int64_t n, float scale = 1.0f);

} // namespace weft::kernels::cpu

#endif // WEFT_KERNELS_CPU_KERNELS_H
