// Attention's backward pass on the CPU, FlashAttention-2's recurrence without
// its Sq×Skv matrices: the probabilities are recomputed from q, k and each
// query row's log-sum-exp instead of stored. Three passes, each parallel
// over work no other thread writes, so the result does not depend on the
// thread count:
//   1. per query row: its log-sum-exp L_i and δ_i = dout_i · out_i;
//   2. per (batch, kv head, key block): dv_j = Σ_i p_ij dout_i and
//      dk_j = scale Σ_i ds_ij q_i over every query head of the group;
//   3. per query row: dq_i = scale Σ_j ds_ij k_j;
// with p_ij = e^(s_ij − L_i) and ds_ij = p_ij (dout_i · v_j − δ_i).
#include "kernels/cpu/Kernels.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

using namespace weft::kernels::cpu;

namespace {
constexpr int64_t kKeyBlock = 64;

/// Σ a[d] · b[d] with eight independent partial sums, so that it vectorises.
inline float dot(const float *a, const float *b, int64_t n) {
  float lanes[8] = {};
  int64_t d = 0;
  for (; d + 8 <= n; d += 8)
    for (int l = 0; l < 8; ++l)
      lanes[l] += a[d + l] * b[d + l];
  float sum = 0.0f;
  for (; d < n; ++d)
    sum += a[d] * b[d];
  for (float lane : lanes)
    sum += lane;
  return sum;
}

/// y += alpha · x.
inline void axpy(float alpha, const float *x, float *y, int64_t n) {
  for (int64_t d = 0; d < n; ++d)
    y[d] += alpha * x[d];
}

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
  float *lse, *delta; // [batch, heads, sq]

  int64_t group() const { return s.heads / s.kvHeads; }
  int64_t offset() const { return s.skv - s.sq; } // position of query 0
  bool causal() const {
    return kind == AttentionKind::Causal || kind == AttentionKind::Alibi;
  }
  const float *query(int64_t b, int64_t i, int64_t h) const {
    return q + ((b * s.sq + i) * s.heads + h) * s.dqk;
  }
  const float *key(int64_t b, int64_t j, int64_t kh) const {
    return k + ((b * s.skv + j) * s.kvHeads + kh) * s.dqk;
  }
  const float *value(int64_t b, int64_t j, int64_t kh) const {
    return v + ((b * s.skv + j) * s.kvHeads + kh) * s.dv;
  }
  int64_t outRow(int64_t b, int64_t i, int64_t h) const {
    return ((b * s.sq + i) * s.heads + h) * s.dv;
  }
  int64_t rowStat(int64_t b, int64_t h, int64_t i) const {
    return (b * s.heads + h) * s.sq + i;
  }
  /// The keys [begin, end) query i may attend before the mask.
  std::pair<int64_t, int64_t> keyRange(int64_t i) const {
    if (!causal())
      return {0, s.skv};
    const int64_t position = offset() + i;
    return {window > 0 ? std::max<int64_t>(0, position - window + 1) : 0,
            std::min(s.skv, position + 1)};
  }
  bool masked(int64_t b, int64_t i, int64_t j) const {
    return kind == AttentionKind::Mask &&
           !mask[((maskPerBatch ? b * s.sq : 0) + i) * s.skv + j];
  }
  float score(int64_t b, int64_t h, int64_t i, int64_t j) const {
    float value = dot(query(b, i, h), key(b, j, h / group()), s.dqk) * scale;
    if (kind == AttentionKind::Alibi)
      value += slopes[h] * static_cast<float>(j - (offset() + i));
    return value;
  }
  /// p_ij, 0 where query i does not attend key j.
  float probability(int64_t b, int64_t h, int64_t i, int64_t j) const {
    if (masked(b, i, j))
      return 0.0f;
    return std::exp(score(b, h, i, j) - lse[rowStat(b, h, i)]);
  }
};

void rowStatistics(const Problem &p, int64_t b, int64_t h, int64_t i,
                   float *scores) {
  const float negInf = -std::numeric_limits<float>::infinity();
  auto [begin, end] = p.keyRange(i);
  float max = negInf;
  for (int64_t j = begin; j < end; ++j) {
    scores[j] = p.masked(b, i, j) ? negInf : p.score(b, h, i, j);
    max = std::max(max, scores[j]);
  }
  double sum = 0;
  if (max != negInf)
    for (int64_t j = begin; j < end; ++j)
      sum += std::exp(scores[j] - max);
  // A query that attends nothing has output 0 and passes no gradient: an
  // infinite L makes each of its probabilities 0.
  p.lse[p.rowStat(b, h, i)] = max == negInf
                                  ? std::numeric_limits<float>::infinity()
                                  : max + static_cast<float>(std::log(sum));
  const int64_t row = p.outRow(b, i, h);
  p.delta[p.rowStat(b, h, i)] = dot(p.dout + row, p.out + row, p.s.dv);
}

void keyBlockGradients(const Problem &p, int64_t b, int64_t kh, int64_t j0) {
  const AttentionShape &s = p.s;
  const int64_t j1 = std::min(s.skv, j0 + kKeyBlock);
  for (int64_t j = j0; j < j1; ++j) {
    std::fill_n(p.dk + ((b * s.skv + j) * s.kvHeads + kh) * s.dqk, s.dqk, 0.f);
    std::fill_n(p.dv + ((b * s.skv + j) * s.kvHeads + kh) * s.dv, s.dv, 0.f);
  }
  for (int64_t h = kh * p.group(); h < (kh + 1) * p.group(); ++h)
    for (int64_t i = 0; i < s.sq; ++i) {
      auto [begin, end] = p.keyRange(i);
      begin = std::max(begin, j0);
      end = std::min(end, j1);
      if (begin >= end)
        continue;
      const float *dout = p.dout + p.outRow(b, i, h);
      const float delta = p.delta[p.rowStat(b, h, i)];
      for (int64_t j = begin; j < end; ++j) {
        const float prob = p.probability(b, h, i, j);
        if (prob == 0.0f)
          continue;
        const int64_t kv = (b * s.skv + j) * s.kvHeads + kh;
        axpy(prob, dout, p.dv + kv * s.dv, s.dv);
        const float ds = prob * (dot(dout, p.value(b, j, kh), s.dv) - delta);
        axpy(p.scale * ds, p.query(b, i, h), p.dk + kv * s.dqk, s.dqk);
      }
    }
}

void queryGradient(const Problem &p, int64_t b, int64_t h, int64_t i) {
  const AttentionShape &s = p.s;
  float *dq = p.dq + ((b * s.sq + i) * s.heads + h) * s.dqk;
  std::fill_n(dq, s.dqk, 0.0f);
  const float *dout = p.dout + p.outRow(b, i, h);
  const float delta = p.delta[p.rowStat(b, h, i)];
  const int64_t kh = h / p.group();
  auto [begin, end] = p.keyRange(i);
  for (int64_t j = begin; j < end; ++j) {
    const float prob = p.probability(b, h, i, j);
    if (prob == 0.0f)
      continue;
    const float ds = prob * (dot(dout, p.value(b, j, kh), s.dv) - delta);
    axpy(p.scale * ds, p.key(b, j, kh), dq, s.dqk);
  }
}
} // namespace

int64_t weft::kernels::cpu::attentionBackwardWorkspace(const AttentionShape &s,
                                                       int threads) {
  return 2 * s.batch * s.heads * s.sq + threads * s.skv;
}

void weft::kernels::cpu::attentionBackward(
    const float *q, const float *k, const float *v, const float *out,
    const float *dout, const uint8_t *mask, bool maskPerBatch,
    const float *slopes, float *dq, float *dk, float *dv,
    const AttentionShape &s, AttentionKind kind, float scale, int64_t window,
    float *workspace, int threads) {
  float *lse = workspace, *delta = lse + s.batch * s.heads * s.sq;
  float *rows = delta + s.batch * s.heads * s.sq;
  const Problem p{q,  k,  v, out,  dout,  mask,   maskPerBatch, slopes, dq,
                  dk, dv, s, kind, scale, window, lse,          delta};
  const int64_t queryRows = s.batch * s.heads * s.sq;
  const int64_t keyBlocks = (s.skv + kKeyBlock - 1) / kKeyBlock;
#pragma omp parallel num_threads(threads)
  {
    float *scores = rows + omp_get_thread_num() * s.skv;
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < queryRows; ++r)
      rowStatistics(p, r / (s.heads * s.sq), r / s.sq % s.heads, r % s.sq,
                    scores);
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < s.batch * s.kvHeads * keyBlocks; ++t)
      keyBlockGradients(p, t / (s.kvHeads * keyBlocks),
                        t / keyBlocks % s.kvHeads, t % keyBlocks * kKeyBlock);
#pragma omp for schedule(dynamic, 16)
    for (int64_t r = 0; r < queryRows; ++r)
      queryGradient(p, r / (s.heads * s.sq), r / s.sq % s.heads, r % s.sq);
  }
}
