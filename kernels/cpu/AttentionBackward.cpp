// Attention's backward pass on the CPU, FlashAttention-2's recurrence without
// its Sq×Skv matrices: the probabilities are recomputed a block of 64 × 64
// at a time from q, k and each query row's log-sum-exp instead of stored, and
// every block product is a small GEMM (OpenBLAS, one thread per block). Three
// passes, each parallel over work no other thread writes, so the result does
// not depend on the thread count:
//   1. per query block: each row's log-sum-exp L_i (unless the forward gave
//      it) and δ_i = dout_i · out_i;
//   2. per (batch, kv head, key block): dv_j = Σ_i p_ij dout_i and
//      dk_j = scale Σ_i ds_ij q_i over every query head of the group;
//   3. per (batch, head, query block): dq_i = scale Σ_j ds_ij k_j;
// with p_ij = e^(s_ij − L_i) and ds_ij = p_ij (dout_i · v_j − δ_i).
// When the (batch, kv head) pairs keep every thread busy, passes 2 and 3 are
// one: a task takes a pair's key blocks in order and adds each ds block's
// dq share as it goes — the same products added to each dq_i in the same
// order (key blocks ascending), so the same bits, without recomputing every
// score and ds block a second time.
#include "kernels/cpu/ExpNonPositive.h"
#include "kernels/cpu/Kernels.h"
#include "kernels/cpu/TargetClones.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

using namespace weft::kernels::cpu;

namespace {
constexpr int64_t kBlock = 64;

struct Problem {
  const float *q, *k, *v, *out, *dout;
  const uint8_t *mask;
  bool maskPerBatch;
  const float *slopes;
  float *dq, *dk, *dv;
  AttentionShape s;
  AttentionKind kind;
  float scale;
  int64_t window;
  const float *lse; // [batch, heads, sq]: the forward's, or lseOut
  float *lseOut;    // where pass 1 computes it; null when given
  float *delta;     // [batch, heads, sq]

  int64_t group() const { return s.heads / s.kvHeads; }
  int64_t offset() const { return s.skv - s.sq; } // position of query 0
  bool causal() const {
    return kind == AttentionKind::Causal || kind == AttentionKind::Alibi;
  }
  // Row-major views: q and dout rows of head h are heads · d apart.
  int64_t qIndex(int64_t b, int64_t i, int64_t h) const {
    return ((b * s.sq + i) * s.heads + h) * s.dqk;
  }
  int64_t oIndex(int64_t b, int64_t i, int64_t h) const {
    return ((b * s.sq + i) * s.heads + h) * s.dv;
  }
  int64_t kIndex(int64_t b, int64_t j, int64_t kh) const {
    return ((b * s.skv + j) * s.kvHeads + kh) * s.dqk;
  }
  int64_t vIndex(int64_t b, int64_t j, int64_t kh) const {
    return ((b * s.skv + j) * s.kvHeads + kh) * s.dv;
  }
  int64_t rowStat(int64_t b, int64_t h, int64_t i) const {
    return (b * s.heads + h) * s.sq + i;
  }
  /// The keys [begin, end) query i may attend before the mask; both ends
  /// grow with i.
  std::pair<int64_t, int64_t> keyRange(int64_t i) const {
    if (!causal())
      return {0, s.skv};
    const int64_t position = offset() + i;
    return {window > 0 ? std::max<int64_t>(0, position - window + 1) : 0,
            std::min(s.skv, position + 1)};
  }
  /// Whether any query of [i0, i1) may attend any key of [j0, j1).
  bool blocksMeet(int64_t i0, int64_t i1, int64_t j0, int64_t j1) const {
    return keyRange(i0).first < j1 && keyRange(i1 - 1).second > j0;
  }

  /// scores[r][c] = scale · q_{i0+r} · k_{j0+c} (+ the ALiBi bias), −∞ where
  /// query i0 + r does not attend key j0 + c; a rows × cols block with a
  /// row stride of kBlock.
  void scores(int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t j0,
              int64_t cols, float *out) const {
    const int64_t kh = h / group();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, s.dqk,
                scale, q + qIndex(b, i0, h), s.heads * s.dqk,
                k + kIndex(b, j0, kh), s.kvHeads * s.dqk, 0.0f, out, kBlock);
    const float negInf = -std::numeric_limits<float>::infinity();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      float *row = out + r * kBlock;
      auto [begin, end] = keyRange(i);
      // The keys outside [begin, end) are a prefix and a suffix of the block.
      std::fill(row, row + std::clamp<int64_t>(begin - j0, 0, cols), negInf);
      std::fill(row + std::clamp<int64_t>(end - j0, 0, cols), row + cols,
                negInf);
      if (kind == AttentionKind::Alibi)
        for (int64_t c = 0; c < cols; ++c)
          row[c] += slopes[h] * static_cast<float>(j0 + c - (offset() + i));
      if (kind == AttentionKind::Mask) {
        const uint8_t *m =
            mask + ((maskPerBatch ? b * s.sq : 0) + i) * s.skv + j0;
        for (int64_t c = 0; c < cols; ++c)
          row[c] = m[c] ? row[c] : negInf;
      }
    }
  }

  /// The block's probabilities in `p` (scores in, e^(s − L) out) and
  /// ds = p ∘ (dout · vᵀ − δ) in `ds`.
  void probabilitiesAndScoreGradients(int64_t b, int64_t h, int64_t i0,
                                      int64_t rows, int64_t j0, int64_t cols,
                                      float *p, float *ds) const {
    for (int64_t r = 0; r < rows; ++r) {
      const float l = lse[rowStat(b, h, i0 + r)];
      float *row = p + r * kBlock;
      for (int64_t c = 0; c < cols; ++c)
        row[c] = expNonPositive(row[c] - l);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, cols, s.dv, 1.0f,
                dout + oIndex(b, i0, h), s.heads * s.dv,
                v + vIndex(b, j0, h / group()), s.kvHeads * s.dv, 0.0f, ds,
                kBlock);
    for (int64_t r = 0; r < rows; ++r) {
      const float d = delta[rowStat(b, h, i0 + r)];
      for (int64_t c = 0; c < cols; ++c)
        ds[r * kBlock + c] = p[r * kBlock + c] * (ds[r * kBlock + c] - d);
    }
  }
};

/// The largest of x[0, n) (−∞ for none): eight running maxima, so that the
/// loop vectorises (a single one is a serial chain; scores hold no NaN).
float rowMax(const float *x, int64_t n) {
  constexpr int kLanes = 8;
  float lanes[kLanes];
  std::fill_n(lanes, kLanes, -std::numeric_limits<float>::infinity());
  int64_t c = 0;
  for (; c + kLanes <= n; c += kLanes)
    for (int l = 0; l < kLanes; ++l)
      lanes[l] = lanes[l] > x[c + l] ? lanes[l] : x[c + l];
  for (; c < n; ++c)
    lanes[0] = lanes[0] > x[c] ? lanes[0] : x[c];
  return *std::max_element(lanes, lanes + kLanes);
}

/// Pass 1 over query rows [i0, i0 + rows) of head h.
WEFT_CLONES void rowStatistics(const Problem &p, int64_t b, int64_t h,
                               int64_t i0, int64_t rows, float *scores) {
  const AttentionShape &s = p.s;
  const float negInf = -std::numeric_limits<float>::infinity();
  float max[kBlock], sum[kBlock];
  std::fill_n(max, rows, negInf);
  std::fill_n(sum, rows, 0.0f);
  for (int64_t j0 = 0; p.lseOut && j0 < s.skv; j0 += kBlock) {
    const int64_t cols = std::min(kBlock, s.skv - j0);
    if (!p.blocksMeet(i0, i0 + rows, j0, j0 + cols))
      continue;
    p.scores(b, h, i0, rows, j0, cols, scores);
    for (int64_t r = 0; r < rows; ++r) {
      const float *row = scores + r * kBlock;
      const float blockMax = rowMax(row, cols);
      const float newMax = std::max(max[r], blockMax);
      if (newMax == negInf)
        continue;
      float blockSum = 0.0f;
      for (int64_t c = 0; c < cols; ++c)
        blockSum += expNonPositive(row[c] - newMax);
      sum[r] = sum[r] * expNonPositive(max[r] - newMax) + blockSum;
      max[r] = newMax;
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    // A query that attends nothing has output 0 and passes no gradient: an
    // infinite L makes each of its probabilities 0.
    if (p.lseOut)
      p.lseOut[p.rowStat(b, h, i0 + r)] =
          max[r] == negInf ? std::numeric_limits<float>::infinity()
                           : max[r] + std::log(sum[r]);
    const float *o = p.out + p.oIndex(b, i0 + r, h);
    const float *g = p.dout + p.oIndex(b, i0 + r, h);
    float dot = 0.0f;
    for (int64_t e = 0; e < s.dv; ++e)
      dot += o[e] * g[e];
    p.delta[p.rowStat(b, h, i0 + r)] = dot;
  }
}

/// Pass 2: dk and dv of keys [j0, j0 + cols) of kv head kh; with
/// `addQueries`, also each query block's dq += scale · ds k_j (pass 3's
/// product, into p.dq).
WEFT_CLONES void keyBlockGradients(const Problem &p, int64_t b, int64_t kh,
                                   int64_t j0, int64_t cols, float *probs,
                                   float *ds, float *dk, float *dv,
                                   bool addQueries) {
  const AttentionShape &s = p.s;
  std::fill_n(dk, cols * s.dqk, 0.0f);
  std::fill_n(dv, cols * s.dv, 0.0f);
  for (int64_t h = kh * p.group(); h < (kh + 1) * p.group(); ++h)
    for (int64_t i0 = 0; i0 < s.sq; i0 += kBlock) {
      const int64_t rows = std::min(kBlock, s.sq - i0);
      if (!p.blocksMeet(i0, i0 + rows, j0, j0 + cols))
        continue;
      p.scores(b, h, i0, rows, j0, cols, probs);
      p.probabilitiesAndScoreGradients(b, h, i0, rows, j0, cols, probs, ds);
      // dv += pᵀ dout, dk += scale · dsᵀ q
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, s.dv, rows,
                  1.0f, probs, kBlock, p.dout + p.oIndex(b, i0, h),
                  s.heads * s.dv, 1.0f, dv, s.dv);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, s.dqk, rows,
                  p.scale, ds, kBlock, p.q + p.qIndex(b, i0, h),
                  s.heads * s.dqk, 1.0f, dk, s.dqk);
      if (addQueries)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s.dqk,
                    cols, p.scale, ds, kBlock, p.k + p.kIndex(b, j0, kh),
                    s.kvHeads * s.dqk, 1.0f, p.dq + p.qIndex(b, i0, h),
                    s.heads * s.dqk);
    }
  for (int64_t c = 0; c < cols; ++c) {
    std::copy_n(dk + c * s.dqk, s.dqk, p.dk + p.kIndex(b, j0 + c, kh));
    std::copy_n(dv + c * s.dv, s.dv, p.dv + p.vIndex(b, j0 + c, kh));
  }
}

/// Pass 3: dq of query rows [i0, i0 + rows) of head h.
WEFT_CLONES void queryBlockGradient(const Problem &p, int64_t b, int64_t h,
                                    int64_t i0, int64_t rows, float *probs,
                                    float *ds, float *dq) {
  const AttentionShape &s = p.s;
  std::fill_n(dq, rows * s.dqk, 0.0f);
  for (int64_t j0 = 0; j0 < s.skv; j0 += kBlock) {
    const int64_t cols = std::min(kBlock, s.skv - j0);
    if (!p.blocksMeet(i0, i0 + rows, j0, j0 + cols))
      continue;
    p.scores(b, h, i0, rows, j0, cols, probs);
    p.probabilitiesAndScoreGradients(b, h, i0, rows, j0, cols, probs, ds);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, s.dqk, cols,
                p.scale, ds, kBlock, p.k + p.kIndex(b, j0, h / p.group()),
                s.kvHeads * s.dqk, 1.0f, dq, s.dqk);
  }
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(dq + r * s.dqk, s.dqk, p.dq + p.qIndex(b, i0 + r, h));
}

int64_t perThreadFloats(const AttentionShape &s) {
  // probabilities and score gradients, then dk and dv (or dq) of one block.
  return 2 * kBlock * kBlock + kBlock * (s.dqk + s.dv);
}
} // namespace

namespace {
/// Elements of q (and dq), of k (dk), of v (dv) and of out (dout).
struct Sizes {
  int64_t q, k, v, out;
  explicit Sizes(const AttentionShape &s)
      : q(s.batch * s.sq * s.heads * s.dqk),
        k(s.batch * s.skv * s.kvHeads * s.dqk),
        v(s.batch * s.skv * s.kvHeads * s.dv),
        out(s.batch * s.sq * s.heads * s.dv) {}
  /// The bf16 backward's f32 copies: q, k, v, out, dout, dq, dk, dv.
  int64_t wide() const { return 2 * (q + k + v + out); }
};
} // namespace

int64_t weft::kernels::cpu::attentionBackwardWorkspace(const AttentionShape &s,
                                                       int threads, bool bf16) {
  return 2 * s.batch * s.heads * s.sq + threads * perThreadFloats(s) +
         (bf16 ? Sizes(s).wide() : 0);
}

void weft::kernels::cpu::attentionBackwardBf16(
    const uint16_t *q, const uint16_t *k, const uint16_t *v,
    const uint16_t *out, const uint16_t *dout, const uint8_t *mask,
    bool maskPerBatch, const float *slopes, uint16_t *dq, uint16_t *dk,
    uint16_t *dv, const AttentionShape &s, AttentionKind kind, float scale,
    int64_t window, float *workspace, int threads, const float *lse) {
  const Sizes n(s);
  float *wq = workspace, *wk = wq + n.q, *wv = wk + n.k, *wo = wv + n.v,
        *wd = wo + n.out, *gq = wd + n.out, *gk = gq + n.q, *gv = gk + n.k;
  float *rest = gv + n.v;
  auto widen = [threads](const uint16_t *x, float *y, int64_t count) {
#pragma omp parallel for num_threads(threads)
    for (int64_t i = 0; i < count; ++i)
      y[i] = bf16ToFloat(x[i]);
  };
  auto round = [threads](const float *x, uint16_t *y, int64_t count) {
#pragma omp parallel for num_threads(threads)
    for (int64_t i = 0; i < count; ++i)
      y[i] = floatToBf16(x[i]);
  };
  widen(q, wq, n.q);
  widen(k, wk, n.k);
  widen(v, wv, n.v);
  widen(out, wo, n.out);
  widen(dout, wd, n.out);
  attentionBackward(wq, wk, wv, wo, wd, mask, maskPerBatch, slopes, gq, gk, gv,
                    s, kind, scale, window, rest, threads, lse);
  round(gq, dq, n.q);
  round(gk, dk, n.k);
  round(gv, dv, n.v);
}

void weft::kernels::cpu::attentionBackward(
    const float *q, const float *k, const float *v, const float *out,
    const float *dout, const uint8_t *mask, bool maskPerBatch,
    const float *slopes, float *dq, float *dk, float *dv,
    const AttentionShape &s, AttentionKind kind, float scale, int64_t window,
    float *workspace, int threads, const float *lse) {
  float *computed = lse ? nullptr : workspace;
  float *delta = workspace + s.batch * s.heads * s.sq;
  float *perThread = delta + s.batch * s.heads * s.sq;
  const Problem p{
      q,  k,  v, out,  dout,  mask,   maskPerBatch,         slopes,   dq,
      dk, dv, s, kind, scale, window, lse ? lse : computed, computed, delta};
  const int64_t queryBlocks = (s.sq + kBlock - 1) / kBlock;
  const int64_t keyBlocks = (s.skv + kBlock - 1) / kBlock;
  const int64_t queryTasks = s.batch * s.heads * queryBlocks;
  const int64_t pairs = s.batch * s.kvHeads;
  const bool fused = pairs % threads == 0 || pairs >= 4 * threads;
#pragma omp parallel num_threads(threads)
  {
    float *probs = perThread + omp_get_thread_num() * perThreadFloats(s);
    float *ds = probs + kBlock * kBlock;
    float *first = ds + kBlock * kBlock, *second = first + kBlock * s.dqk;
    auto queryTask = [&](int64_t t, auto &&fn) {
      const int64_t i0 = t % queryBlocks * kBlock;
      fn(t / (s.heads * queryBlocks), t / queryBlocks % s.heads, i0,
         std::min(kBlock, s.sq - i0));
    };
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < queryTasks; ++t)
      queryTask(t, [&](int64_t b, int64_t h, int64_t i0, int64_t rows) {
        rowStatistics(p, b, h, i0, rows, probs);
      });
    if (fused) {
#pragma omp for schedule(dynamic)
      for (int64_t t = 0; t < pairs; ++t) {
        const int64_t b = t / s.kvHeads, kh = t % s.kvHeads;
        for (int64_t h = kh * p.group(); h < (kh + 1) * p.group(); ++h)
          for (int64_t i = 0; i < s.sq; ++i)
            std::fill_n(dq + p.qIndex(b, i, h), s.dqk, 0.0f);
        for (int64_t j0 = 0; j0 < s.skv; j0 += kBlock)
          keyBlockGradients(p, b, kh, j0, std::min(kBlock, s.skv - j0), probs,
                            ds, first, second, /*addQueries=*/true);
      }
    } else {
#pragma omp for schedule(dynamic)
      for (int64_t t = 0; t < pairs * keyBlocks; ++t) {
        const int64_t j0 = t % keyBlocks * kBlock;
        keyBlockGradients(p, t / (s.kvHeads * keyBlocks),
                          t / keyBlocks % s.kvHeads, j0,
                          std::min(kBlock, s.skv - j0), probs, ds, first,
                          second, /*addQueries=*/false);
      }
#pragma omp for schedule(dynamic)
      for (int64_t t = 0; t < queryTasks; ++t)
        queryTask(t, [&](int64_t b, int64_t h, int64_t i0, int64_t rows) {
          queryBlockGradient(p, b, h, i0, rows, probs, ds, first);
        });
    }
  }
}
