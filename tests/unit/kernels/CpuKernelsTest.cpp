// Every CPU kernel against a plain reference on random inputs, with the
// output poisoned with NaN first so that an unwritten element fails, at
// several shapes including odd ones.
#include "kernels/cpu/Kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace weft::kernels::cpu;

namespace {
std::vector<float> randomFloats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

/// Every element within `tol` relative error (absolute below 1).
void expectClose(const std::vector<float> &actual,
                 const std::vector<double> &expected, double tol = 1e-5) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    double bound = tol * std::max(1.0, std::abs(expected[i]));
    ASSERT_TRUE(std::abs(actual[i] - expected[i]) <= bound)
        << "element " << i << ": " << actual[i] << " vs " << expected[i];
  }
}
} // namespace

class LinearTest
    : public ::testing::TestWithParam<std::tuple<int, int, int, bool>> {};

TEST_P(LinearTest, MatchesReference) {
  auto [rows, in, out, withBias] = GetParam();
  auto x = randomFloats(rows * in, 1), w = randomFloats(out * in, 2),
       bias = randomFloats(out, 3);
  auto y = poisoned(rows * out);
  linear(x.data(), w.data(), withBias ? bias.data() : nullptr, y.data(), rows,
         in, out);
  std::vector<double> ref(rows * out);
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      double s = withBias ? bias[o] : 0.0;
      for (int i = 0; i < in; ++i)
        s += double(x[r * in + i]) * w[o * in + i];
      ref[r * out + o] = s;
    }
  expectClose(y, ref, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearTest,
                         ::testing::Values(std::make_tuple(1, 1, 1, false),
                                           std::make_tuple(7, 13, 5, true),
                                           std::make_tuple(33, 64, 17, false),
                                           std::make_tuple(128, 256, 96,
                                                           true)));

namespace {
std::vector<uint16_t> roundToBf16(const std::vector<float> &v) {
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    bits[i] = floatToBf16(v[i]);
  return bits;
}

std::vector<float> widen(const std::vector<uint16_t> &bits) {
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = bf16ToFloat(bits[i]);
  return v;
}
} // namespace

class LinearBf16Test
    : public ::testing::TestWithParam<std::tuple<int, int, int, bool>> {};

/// bf16 in, f32 compute, one rounding out: every result is the bf16 nearest
/// the exact product of the bf16 inputs (up to f32 summation error).
TEST_P(LinearBf16Test, RoundsTheF32ResultOnce) {
  auto [rows, in, out, withBias] = GetParam();
  auto x = roundToBf16(randomFloats(rows * in, 11)),
       w = roundToBf16(randomFloats(out * in, 12)),
       bias = roundToBf16(randomFloats(out, 13));
  std::vector<uint16_t> y(rows * out, 0x7fc1); // NaN
  std::vector<float> workspace(linearBf16Workspace(rows, in, out), NAN);
  linearBf16(x.data(), w.data(), withBias ? bias.data() : nullptr, y.data(),
             rows, in, out, workspace.data());
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      double s = withBias ? bf16ToFloat(bias[o]) : 0.0;
      for (int i = 0; i < in; ++i)
        s += double(bf16ToFloat(x[r * in + i])) * bf16ToFloat(w[o * in + i]);
      const float actual = bf16ToFloat(y[r * out + o]);
      ASSERT_LE(std::abs(actual - s), std::max(1.0, std::abs(s)) / 256 + 1e-4)
          << "row " << r << ", column " << o;
    }
}

// Shapes past the 512-row and 512-column tiles, odd remainders included.
INSTANTIATE_TEST_SUITE_P(Shapes, LinearBf16Test,
                         ::testing::Values(std::make_tuple(1, 3, 1, true),
                                           std::make_tuple(9, 31, 7, false),
                                           std::make_tuple(530, 40, 600, true),
                                           std::make_tuple(1100, 16, 33,
                                                           false)));

/// How a test GEMM accumulates: not at all, into a separate accumulator, or
/// over it (c is acc).
enum class Accumulate { None, Separate, InPlace };
constexpr Accumulate kAccumulateModes[] = {
    Accumulate::None, Accumulate::Separate, Accumulate::InPlace};

TEST(Matmul, BatchedWithTransposesSharedRhsAndAccumulator) {
  const int batch = 3, m = 5, n = 7, k = 11;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool shared : {false, true})
        for (Accumulate mode : kAccumulateModes) {
          auto a = randomFloats(batch * m * k, 4),
               b = randomFloats(batch * k * n, 5),
               acc = randomFloats(batch * m * n, 6);
          const std::vector<float> acc0 = acc;
          auto c = mode == Accumulate::InPlace ? acc : poisoned(batch * m * n);
          const float *accIn = mode == Accumulate::None      ? nullptr
                               : mode == Accumulate::InPlace ? c.data()
                                                             : acc.data();
          matmul(a.data(), b.data(), accIn, c.data(), batch, m, n, k, ta, tb,
                 shared ? 0 : k * n);
          std::vector<double> ref(batch * m * n);
          for (int bi = 0; bi < batch; ++bi)
            for (int i = 0; i < m; ++i)
              for (int j = 0; j < n; ++j) {
                double s =
                    mode == Accumulate::None ? 0 : acc0[(bi * m + i) * n + j];
                for (int l = 0; l < k; ++l) {
                  float av = ta ? a[bi * m * k + l * m + i]
                                : a[bi * m * k + i * k + l];
                  const float *bb = b.data() + (shared ? 0 : bi * k * n);
                  float bv = tb ? bb[j * k + l] : bb[l * n + j];
                  s += double(av) * bv;
                }
                ref[(bi * m + i) * n + j] = s;
              }
          expectClose(c, ref, 1e-4);
          if (mode == Accumulate::Separate)
            EXPECT_EQ(acc, acc0) << "the accumulator is read only";
        }
}

/// bf16 a, b, acc and c: each result is the bf16 nearest the f32 product of
/// the widened inputs plus the widened accumulator (within one bf16 step:
/// the tiles' GEMMs may sum in another order), past the 512-row and
/// 512-column tiles, every transpose, accumulating or not, in place or not.
TEST(MatmulBf16, RoundsTheF32ProductOnceInEveryTile) {
  const int batch = 2, m = 530, n = 600, k = 19;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool shared : {false, true})
        for (Accumulate mode : kAccumulateModes) {
          auto a = roundToBf16(randomFloats(batch * m * k, 21)),
               b = roundToBf16(randomFloats(batch * k * n, 22)),
               acc = roundToBf16(randomFloats(batch * m * n, 23));
          std::vector<uint16_t> c =
              mode == Accumulate::InPlace
                  ? acc
                  : std::vector<uint16_t>(batch * m * n, 0x7fc1); // NaN
          std::vector<float> workspace(matmulBf16Workspace(m, n, k), NAN);
          const uint16_t *accIn = mode == Accumulate::None      ? nullptr
                                  : mode == Accumulate::InPlace ? c.data()
                                                                : acc.data();
          matmulBf16(a.data(), b.data(), accIn, c.data(), batch, m, n, k, ta,
                     tb, shared ? 0 : k * n, workspace.data());
          std::vector<float> want(c.size());
          matmul(widen(a).data(), widen(b).data(),
                 mode == Accumulate::None ? nullptr : widen(acc).data(),
                 want.data(), batch, m, n, k, ta, tb, shared ? 0 : k * n);
          for (size_t i = 0; i < c.size(); ++i) {
            const float got = bf16ToFloat(c[i]),
                        rounded = bf16ToFloat(floatToBf16(want[i]));
            ASSERT_LE(std::abs(got - rounded), std::abs(rounded) / 128 + 1e-6)
                << "element " << i << " (ta " << ta << ", tb " << tb
                << ", shared " << shared << ", accumulate "
                << static_cast<int>(mode) << ")";
          }
        }
}

struct AttentionCase {
  AttentionShape shape;
  AttentionKind kind;
  bool maskPerBatch;
  int64_t window = 0; // sliding window, 0: none
};

class AttentionTest : public ::testing::TestWithParam<AttentionCase> {};

namespace {
/// A random mask hiding a third of the keys; under kind Mask the first query
/// sees nothing.
std::vector<uint8_t> randomMask(const AttentionCase &c, uint32_t seed) {
  const AttentionShape &s = c.shape;
  std::mt19937 rng(seed);
  std::vector<uint8_t> mask((c.maskPerBatch ? s.batch : 1) * s.sq * s.skv);
  for (auto &m : mask)
    m = rng() % 3 != 0;
  if (c.kind == AttentionKind::Mask)
    std::fill_n(mask.begin(), s.skv, 0);
  return mask;
}

/// Query i of head h's attention probabilities over the keys in double, 0
/// where it does not attend (all 0 when it attends none); `lse` gets the
/// log-sum-exp of its scores (+∞ when it attends none).
std::vector<double> referenceProbabilities(const AttentionCase &c,
                                           const std::vector<float> &q,
                                           const std::vector<float> &k,
                                           const std::vector<float> &slopes,
                                           const std::vector<uint8_t> &mask,
                                           double scale, int64_t b, int64_t h,
                                           int64_t i, double *lse = nullptr) {
  const AttentionShape &s = c.shape;
  const int64_t offset = s.skv - s.sq, kh = h / (s.heads / s.kvHeads);
  std::vector<double> p(s.skv);
  double max = -INFINITY, sum = 0;
  for (int64_t j = 0; j < s.skv; ++j) {
    bool allowed = true;
    if (c.kind == AttentionKind::Causal || c.kind == AttentionKind::Alibi)
      allowed = j <= offset + i && (c.window == 0 || j > offset + i - c.window);
    if (c.kind == AttentionKind::Mask)
      allowed = mask[((c.maskPerBatch ? b * s.sq : 0) + i) * s.skv + j];
    double dot = 0;
    for (int64_t d = 0; d < s.dqk; ++d)
      dot += double(q[((b * s.sq + i) * s.heads + h) * s.dqk + d]) *
             k[((b * s.skv + j) * s.kvHeads + kh) * s.dqk + d];
    dot *= scale;
    if (c.kind == AttentionKind::Alibi)
      dot += slopes[h] * double(j - (offset + i));
    p[j] = allowed ? dot : -INFINITY;
    max = std::max(max, p[j]);
  }
  for (double &x : p)
    sum += x = max == -INFINITY ? 0 : std::exp(x - max);
  for (double &x : p)
    x = sum > 0 ? x / sum : 0;
  if (lse)
    *lse = sum > 0 ? max + std::log(sum) : INFINITY;
  return p;
}
} // namespace

TEST_P(AttentionTest, MatchesNaiveSoftmaxAttention) {
  const AttentionCase &c = GetParam();
  const AttentionShape &s = c.shape;
  auto q = randomFloats(s.batch * s.sq * s.heads * s.dqk, 10);
  auto k = randomFloats(s.batch * s.skv * s.kvHeads * s.dqk, 11);
  auto v = randomFloats(s.batch * s.skv * s.kvHeads * s.dv, 12);
  auto slopes = randomFloats(s.heads, 13, 0.1f);
  auto mask = randomMask(c, 14);
  const float scale = 1.0f / std::sqrt(float(s.dqk));
  const int threads = 2;
  std::vector<float> workspace(attentionWorkspace(s, threads),
                               std::numeric_limits<float>::quiet_NaN());
  auto out = poisoned(s.batch * s.sq * s.heads * s.dv);
  auto lse = poisoned(s.batch * s.heads * s.sq);
  attention(q.data(), k.data(), v.data(), mask.data(), c.maskPerBatch,
            slopes.data(), out.data(), s, c.kind, scale, c.window,
            workspace.data(), threads, lse.data());

  std::vector<double> ref(out.size());
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.sq; ++i) {
        const int64_t kh = h / (s.heads / s.kvHeads);
        double want;
        std::vector<double> p = referenceProbabilities(c, q, k, slopes, mask,
                                                       scale, b, h, i, &want);
        const float got = lse[(b * s.heads + h) * s.sq + i];
        if (std::isinf(want))
          EXPECT_TRUE(std::isinf(got) && got > 0) << "lse of row " << i;
        else
          EXPECT_NEAR(got, want, 2e-5 * std::max(1.0, std::abs(want)))
              << "lse of batch " << b << ", head " << h << ", row " << i;
        for (int64_t d = 0; d < s.dv; ++d) {
          double o = 0;
          for (int64_t j = 0; j < s.skv; ++j)
            o += p[j] * v[((b * s.skv + j) * s.kvHeads + kh) * s.dv + d];
          ref[((b * s.sq + i) * s.heads + h) * s.dv + d] = o;
        }
      }
  expectClose(out, ref, 2e-5);
}

// bf16 storage: the same f32 computation on the widened values, rounded
// once: bit for bit the f32 kernel's output on bf16-rounded inputs, rounded.
TEST_P(AttentionTest, Bf16IsTheF32ComputationRoundedOnce) {
  const AttentionCase &c = GetParam();
  const AttentionShape &s = c.shape;
  auto q = roundToBf16(randomFloats(s.batch * s.sq * s.heads * s.dqk, 20));
  auto k = roundToBf16(randomFloats(s.batch * s.skv * s.kvHeads * s.dqk, 21));
  auto v = roundToBf16(randomFloats(s.batch * s.skv * s.kvHeads * s.dv, 22));
  auto slopes = randomFloats(s.heads, 23, 0.1f);
  auto mask = randomMask(c, 24);
  const float scale = 1.0f / std::sqrt(float(s.dqk));
  const int threads = 2;
  std::vector<float> workspace(attentionWorkspace(s, threads, true),
                               std::numeric_limits<float>::quiet_NaN());
  std::vector<uint16_t> out(s.batch * s.sq * s.heads * s.dv, 0x7fc1);
  auto lse = poisoned(s.batch * s.heads * s.sq);
  attentionBf16(q.data(), k.data(), v.data(), mask.data(), c.maskPerBatch,
                slopes.data(), out.data(), s, c.kind, scale, c.window,
                workspace.data(), threads, lse.data());
  std::vector<float> wide = poisoned(out.size());
  auto wideLse = poisoned(lse.size());
  std::vector<float> f32Workspace(attentionWorkspace(s, threads));
  attention(widen(q).data(), widen(k).data(), widen(v).data(), mask.data(),
            c.maskPerBatch, slopes.data(), wide.data(), s, c.kind, scale,
            c.window, f32Workspace.data(), threads, wideLse.data());
  for (size_t i = 0; i < out.size(); ++i)
    ASSERT_EQ(out[i], floatToBf16(wide[i])) << "element " << i;
  for (size_t i = 0; i < lse.size(); ++i)
    ASSERT_EQ(bits(lse[i]), bits(wideLse[i])) << "lse " << i;
}

// The backward pass against the gradients of a plain double-precision
// attention, every probability stored: dv = Pᵀ dout, dS = P ∘ (dout Vᵀ −
// rowsum(dout ∘ out)), dq = scale · dS K, dk = scale · dSᵀ Q.
TEST_P(AttentionTest, BackwardMatchesPlainGradients) {
  const AttentionCase &c = GetParam();
  const AttentionShape &s = c.shape;
  auto q = randomFloats(s.batch * s.sq * s.heads * s.dqk, 20);
  auto k = randomFloats(s.batch * s.skv * s.kvHeads * s.dqk, 21);
  auto v = randomFloats(s.batch * s.skv * s.kvHeads * s.dv, 22);
  auto dout = randomFloats(s.batch * s.sq * s.heads * s.dv, 23);
  auto slopes = randomFloats(s.heads, 24, 0.1f);
  auto mask = randomMask(c, 25);
  const double scale = 1.0 / std::sqrt(double(s.dqk));
  const int64_t group = s.heads / s.kvHeads;
  auto qi = [&](int64_t b, int64_t i, int64_t h) {
    return ((b * s.sq + i) * s.heads + h);
  };
  auto kj = [&](int64_t b, int64_t j, int64_t kh) {
    return ((b * s.skv + j) * s.kvHeads + kh);
  };
  std::vector<double> dq(q.size()), dk(k.size()), dv(v.size());
  std::vector<float> out(dout.size());
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.heads; ++h)
      for (int64_t i = 0; i < s.sq; ++i) {
        const int64_t kh = h / group;
        std::vector<double> p =
            referenceProbabilities(c, q, k, slopes, mask, scale, b, h, i);
        double delta = 0;
        for (int64_t e = 0; e < s.dv; ++e) {
          double o = 0;
          for (int64_t j = 0; j < s.skv; ++j)
            o += p[j] * v[kj(b, j, kh) * s.dv + e];
          out[qi(b, i, h) * s.dv + e] = float(o);
          delta += o * dout[qi(b, i, h) * s.dv + e];
        }
        for (int64_t j = 0; j < s.skv; ++j) {
          if (p[j] == 0)
            continue;
          double dp = 0;
          for (int64_t e = 0; e < s.dv; ++e) {
            dp += double(dout[qi(b, i, h) * s.dv + e]) *
                  v[kj(b, j, kh) * s.dv + e];
            dv[kj(b, j, kh) * s.dv + e] += p[j] * dout[qi(b, i, h) * s.dv + e];
          }
          const double ds = p[j] * (dp - delta) * scale;
          for (int64_t d = 0; d < s.dqk; ++d) {
            dq[qi(b, i, h) * s.dqk + d] += ds * k[kj(b, j, kh) * s.dqk + d];
            dk[kj(b, j, kh) * s.dqk + d] += ds * q[qi(b, i, h) * s.dqk + d];
          }
        }
      }
  // Each row's log-sum-exp as the forward returns it (the backward
  // computes it itself when not given).
  std::vector<float> forwardLse(s.batch * s.heads * s.sq);
  {
    std::vector<float> workspace(attentionWorkspace(s, 2)),
        forwardOut(out.size());
    attention(q.data(), k.data(), v.data(), mask.data(), c.maskPerBatch,
              slopes.data(), forwardOut.data(), s, c.kind, float(scale),
              c.window, workspace.data(), 2, forwardLse.data());
  }
  // The same bits at any thread count (1 and 4 take one pass per kv head
  // here, 3 and 7 the separate dq pass where they would idle).
  for (const float *lse : {static_cast<const float *>(nullptr),
                           static_cast<const float *>(forwardLse.data())}) {
    SCOPED_TRACE(lse ? "the forward's log-sum-exp" : "computed log-sum-exp");
    std::vector<float> first[3];
    for (int threads : {1, 3, 4, 7}) {
      std::vector<float> workspace(attentionBackwardWorkspace(s, threads),
                                   std::numeric_limits<float>::quiet_NaN());
      auto gq = poisoned(q.size()), gk = poisoned(k.size()),
           gv = poisoned(v.size());
      attentionBackward(q.data(), k.data(), v.data(), out.data(), dout.data(),
                        mask.data(), c.maskPerBatch, slopes.data(), gq.data(),
                        gk.data(), gv.data(), s, c.kind, float(scale), c.window,
                        workspace.data(), threads, lse);
      expectClose(gq, dq, 1e-4);
      expectClose(gk, dk, 1e-4);
      expectClose(gv, dv, 1e-4);
      if (threads == 1) {
        first[0] = gq, first[1] = gk, first[2] = gv;
        continue;
      }
      for (size_t i = 0; i < gq.size(); ++i)
        ASSERT_EQ(bits(gq[i]), bits(first[0][i]))
            << "dq " << i << ", " << threads << " threads";
      for (size_t i = 0; i < gk.size(); ++i)
        ASSERT_EQ(bits(gk[i]), bits(first[1][i]))
            << "dk " << i << ", " << threads << " threads";
      for (size_t i = 0; i < gv.size(); ++i)
        ASSERT_EQ(bits(gv[i]), bits(first[2][i]))
            << "dv " << i << ", " << threads << " threads";
    }
  }
}

// bf16 tensors: the f32 backward of the widened values, each gradient
// rounded once — bit for bit.
TEST_P(AttentionTest, BackwardBf16IsTheF32BackwardRoundedOnce) {
  const AttentionCase &c = GetParam();
  const AttentionShape &s = c.shape;
  auto q = roundToBf16(randomFloats(s.batch * s.sq * s.heads * s.dqk, 30));
  auto k = roundToBf16(randomFloats(s.batch * s.skv * s.kvHeads * s.dqk, 31));
  auto v = roundToBf16(randomFloats(s.batch * s.skv * s.kvHeads * s.dv, 32));
  auto out = roundToBf16(randomFloats(s.batch * s.sq * s.heads * s.dv, 33));
  auto dout = roundToBf16(randomFloats(s.batch * s.sq * s.heads * s.dv, 34));
  auto slopes = randomFloats(s.heads, 35, 0.1f);
  auto mask = randomMask(c, 36);
  const float scale = 1.0f / std::sqrt(float(s.dqk));
  const int threads = 3;
  std::vector<float> workspace(attentionBackwardWorkspace(s, threads, true),
                               std::numeric_limits<float>::quiet_NaN());
  std::vector<uint16_t> dq(q.size(), 0x7fc1), dk(k.size(), 0x7fc1),
      dv(v.size(), 0x7fc1);
  attentionBackwardBf16(q.data(), k.data(), v.data(), out.data(), dout.data(),
                        mask.data(), c.maskPerBatch, slopes.data(), dq.data(),
                        dk.data(), dv.data(), s, c.kind, scale, c.window,
                        workspace.data(), threads);
  std::vector<float> f32Workspace(attentionBackwardWorkspace(s, threads));
  auto gq = poisoned(q.size()), gk = poisoned(k.size()),
       gv = poisoned(v.size());
  attentionBackward(widen(q).data(), widen(k).data(), widen(v).data(),
                    widen(out).data(), widen(dout).data(), mask.data(),
                    c.maskPerBatch, slopes.data(), gq.data(), gk.data(),
                    gv.data(), s, c.kind, scale, c.window, f32Workspace.data(),
                    threads);
  for (size_t i = 0; i < dq.size(); ++i)
    ASSERT_EQ(dq[i], floatToBf16(gq[i])) << "dq " << i;
  for (size_t i = 0; i < dk.size(); ++i)
    ASSERT_EQ(dk[i], floatToBf16(gk[i])) << "dk " << i;
  for (size_t i = 0; i < dv.size(); ++i)
    ASSERT_EQ(dv[i], floatToBf16(gv[i])) << "dv " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, AttentionTest,
    ::testing::Values(
        AttentionCase{{1, 16, 16, 4, 4, 8, 8}, AttentionKind::Causal, false},
        AttentionCase{{2, 77, 77, 8, 2, 16, 16}, AttentionKind::Causal, false},
        AttentionCase{
            {1, 300, 300, 2, 1, 32, 24}, AttentionKind::Causal, false},
        AttentionCase{{2, 5, 530, 4, 2, 8, 8}, AttentionKind::Causal, false},
        AttentionCase{{1, 65, 257, 3, 3, 7, 5}, AttentionKind::Full, false},
        AttentionCase{{1, 50, 50, 16, 2, 16, 20}, AttentionKind::Causal, false},
        AttentionCase{
            {1, 600, 600, 4, 2, 64, 64}, AttentionKind::Causal, false},
        AttentionCase{{2, 70, 70, 4, 1, 16, 16}, AttentionKind::Alibi, false},
        // Sliding windows: shorter than a block, spanning blocks, and with
        // queries that are the last of more keys.
        AttentionCase{{1, 40, 40, 4, 2, 8, 8}, AttentionKind::Causal, false, 7},
        AttentionCase{
            {2, 700, 700, 4, 2, 16, 16}, AttentionKind::Causal, false, 300},
        AttentionCase{
            {1, 20, 600, 2, 1, 8, 8}, AttentionKind::Alibi, false, 33},
        AttentionCase{{2, 33, 40, 2, 2, 8, 8}, AttentionKind::Mask, true},
        AttentionCase{{1, 90, 300, 4, 2, 8, 8}, AttentionKind::Mask, false}));

TEST(RmsNorm, MatchesReference) {
  for (auto [rows, cols] : {std::pair{1, 1}, {3, 7}, {37, 256}}) {
    auto x = randomFloats(rows * cols, 20), w = randomFloats(cols, 21);
    auto y = poisoned(rows * cols);
    rmsNorm(x.data(), w.data(), y.data(), rows, cols, 1e-5f);
    std::vector<double> ref(rows * cols);
    for (int r = 0; r < rows; ++r) {
      double ss = 0;
      for (int c = 0; c < cols; ++c)
        ss += double(x[r * cols + c]) * x[r * cols + c];
      double inv = 1 / std::sqrt(ss / cols + 1e-5);
      for (int c = 0; c < cols; ++c)
        ref[r * cols + c] = x[r * cols + c] * inv * w[c];
    }
    expectClose(y, ref);
  }
}

TEST(LayerNorm, MatchesReferenceWithAndWithoutBias) {
  for (bool withBias : {false, true})
    for (auto [rows, cols] : {std::pair{1, 2}, {5, 13}, {16, 300}}) {
      auto x = randomFloats(rows * cols, 22, 3.0f), w = randomFloats(cols, 23),
           b = randomFloats(cols, 24);
      auto y = poisoned(rows * cols);
      layerNorm(x.data(), w.data(), withBias ? b.data() : nullptr, y.data(),
                rows, cols, 1e-5f);
      std::vector<double> ref(rows * cols);
      for (int r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (int c = 0; c < cols; ++c)
          mean += x[r * cols + c];
        mean /= cols;
        for (int c = 0; c < cols; ++c)
          var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
        var /= cols;
        for (int c = 0; c < cols; ++c)
          ref[r * cols + c] =
              (x[r * cols + c] - mean) / std::sqrt(var + 1e-5) * w[c] +
              (withBias ? b[c] : 0);
      }
      expectClose(y, ref, 2e-5);
    }
}

TEST(Rope, MatchesReferenceInBothLayouts) {
  const int64_t batch = 2, seq = 9, heads = 3, dim = 10;
  auto x = randomFloats(batch * seq * heads * dim, 30);
  std::vector<int64_t> pos(batch * seq);
  for (size_t i = 0; i < pos.size(); ++i)
    pos[i] = (i * 37) % 1000;
  for (bool interleaved : {false, true}) {
    auto y = poisoned(x.size());
    rope(x.data(), pos.data(), y.data(), batch, seq, heads, dim, 10000.0,
         interleaved);
    std::vector<double> ref(x.size());
    for (int64_t t = 0; t < batch * seq; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t j = 0; j < dim / 2; ++j) {
          double angle = pos[t] / std::pow(10000.0, 2.0 * j / dim);
          int64_t a = interleaved ? 2 * j : j,
                  b = interleaved ? 2 * j + 1 : j + dim / 2;
          const float *in = x.data() + (t * heads + h) * dim;
          ref[(t * heads + h) * dim + a] =
              in[a] * std::cos(angle) - in[b] * std::sin(angle);
          ref[(t * heads + h) * dim + b] =
              in[b] * std::cos(angle) + in[a] * std::sin(angle);
        }
    // Angles are computed in fp32 as transformers does: allow for it.
    expectClose(y, ref, 2e-4);
  }
}

// bf16 rope is the f32 rope of the widened input, rounded once: to the bit,
// with the default frequencies and with given ones.
TEST(Rope, Bf16IsTheWidenedRopeRounded) {
  const int64_t batch = 2, seq = 7, heads = 3, dim = 16;
  const auto x = roundToBf16(randomFloats(batch * seq * heads * dim, 31));
  std::vector<int64_t> pos(batch * seq);
  for (size_t i = 0; i < pos.size(); ++i)
    pos[i] = static_cast<int64_t>(i * 53 % 4000) - 7; // negative: backward
  std::vector<double> frequencies(dim / 2);
  for (int64_t j = 0; j < dim / 2; ++j)
    frequencies[j] = 0.5 / (j + 1);
  for (bool interleaved : {false, true})
    for (const double *given :
         std::vector<const double *>{nullptr, frequencies.data()}) {
      std::vector<uint16_t> got(x.size(), 0xffff);
      ropeBf16(x.data(), pos.data(), got.data(), batch, seq, heads, dim,
               10000.0, interleaved, given);
      std::vector<float> wide = widen(x), y(x.size());
      rope(wide.data(), pos.data(), y.data(), batch, seq, heads, dim, 10000.0,
           interleaved, given);
      EXPECT_EQ(got, roundToBf16(y));
    }
}

TEST(Softmax, MatchesReferenceAlongAnyDimension) {
  for (bool logarithm : {false, true})
    for (auto [outer, dim, inner] :
         {std::tuple{1, 1, 1}, {3, 17, 1}, {2, 9, 5}}) {
      auto x = randomFloats(outer * dim * inner, 40, 4.0f);
      auto y = poisoned(x.size());
      softmax(x.data(), y.data(), outer, dim, inner, logarithm);
      std::vector<double> ref(x.size());
      for (int o = 0; o < outer; ++o)
        for (int i = 0; i < inner; ++i) {
          double sum = 0;
          for (int d = 0; d < dim; ++d)
            sum += std::exp(double(x[(o * dim + d) * inner + i]));
          for (int d = 0; d < dim; ++d) {
            double e = x[(o * dim + d) * inner + i];
            ref[(o * dim + d) * inner + i] =
                logarithm ? e - std::log(sum) : std::exp(e) / sum;
          }
        }
      expectClose(y, ref);
    }
}

TEST(Gather, CopiesRowsAndReportsBadIndices) {
  const int64_t outer = 2, size = 7, inner = 3;
  auto table = randomFloats(outer * size * inner, 50);
  std::vector<int64_t> idx = {6, 0, 3, 3, 5};
  auto out = poisoned(outer * idx.size() * inner);
  EXPECT_EQ(gather(table.data(), idx.data(), out.data(), outer, size, inner * 4,
                   idx.size()),
            -1);
  std::vector<double> ref(out.size());
  for (int64_t a = 0; a < outer; ++a)
    for (size_t i = 0; i < idx.size(); ++i)
      for (int64_t b = 0; b < inner; ++b)
        ref[(a * idx.size() + i) * inner + b] =
            table[(a * size + idx[i]) * inner + b];
  expectClose(out, ref, 0);
  idx[2] = 7;
  EXPECT_EQ(gather(table.data(), idx.data(), out.data(), outer, size, inner * 4,
                   idx.size()),
            2);
}

TEST(Gather, MovesBf16AsItIs) {
  const int64_t size = 9, inner = 5;
  std::vector<uint16_t> table(size * inner);
  for (size_t i = 0; i < table.size(); ++i)
    table[i] = static_cast<uint16_t>(0x3f80 + 7 * i);
  std::vector<int64_t> idx = {8, 1, 1};
  std::vector<uint16_t> out(idx.size() * inner, 0xffff);
  ASSERT_EQ(gather(table.data(), idx.data(), out.data(), 1, size, inner * 2,
                   idx.size()),
            -1);
  for (size_t i = 0; i < idx.size(); ++i)
    for (int64_t b = 0; b < inner; ++b)
      EXPECT_EQ(out[i * inner + b], table[idx[i] * inner + b]);
}

TEST(Bf16, RoundsToNearestEvenAndKeepsSpecials) {
  auto bits = [](float f) { return __builtin_bit_cast(uint32_t, f); };
  auto fromBits = [](uint32_t u) { return __builtin_bit_cast(float, u); };
  EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
  // Halfway cases go to the even neighbour; above halfway rounds up.
  EXPECT_EQ(floatToBf16(fromBits(0x3f808000)), 0x3f80);
  EXPECT_EQ(floatToBf16(fromBits(0x3f818000)), 0x3f82);
  EXPECT_EQ(floatToBf16(fromBits(0x3f808001)), 0x3f81);
  EXPECT_EQ(floatToBf16(-INFINITY), 0xff80);
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(NAN))));
  // The largest finite float rounds to infinity, as in PyTorch.
  EXPECT_EQ(floatToBf16(fromBits(0x7f7fffff)), 0x7f80);
  auto x = randomFloats(1001, 60);
  std::vector<uint16_t> narrow(x.size(), 0);
  std::vector<float> wide = poisoned(x.size());
  f32ToBf16(x.data(), narrow.data(), x.size());
  bf16ToF32(narrow.data(), wide.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(bits(wide[i]) & 0xffff, 0u);
    EXPECT_LE(std::abs(wide[i] - x[i]), std::abs(x[i]) * (1.0f / 256));
  }
  EXPECT_EQ(f16ToFloat(0x3c00), 1.0f);
  EXPECT_EQ(f16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(f16ToFloat(0x0001), std::ldexp(1.0f, -24)); // smallest subnormal
}

TEST(CrossEntropy, IgnoresTokensAndWeighsTheMean) {
  const int64_t tokens = 11, vocab = 19;
  auto logits = randomFloats(tokens * vocab, 60, 3.0f);
  std::vector<int64_t> labels(tokens);
  for (int64_t t = 0; t < tokens; ++t)
    labels[t] = t % 4 == 0 ? -100 : (t * 7) % vocab;
  std::vector<double> perToken(tokens, 0.0);
  double total = 0;
  int counted = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    if (labels[t] == -100)
      continue;
    double sum = 0;
    for (int64_t c = 0; c < vocab; ++c)
      sum += std::exp(double(logits[t * vocab + c]));
    perToken[t] = std::log(sum) - logits[t * vocab + labels[t]];
    total += perToken[t];
    ++counted;
  }
  auto none = poisoned(tokens), mean = poisoned(1), sum = poisoned(1);
  EXPECT_EQ(crossEntropy(logits.data(), labels.data(), none.data(), tokens,
                         vocab, -100, LossReduction::None),
            -1);
  EXPECT_EQ(crossEntropy(logits.data(), labels.data(), mean.data(), tokens,
                         vocab, -100, LossReduction::Mean),
            -1);
  EXPECT_EQ(crossEntropy(logits.data(), labels.data(), sum.data(), tokens,
                         vocab, -100, LossReduction::Sum),
            -1);
  expectClose(none, perToken);
  expectClose(mean, {total / counted});
  expectClose(sum, {total});
  labels[3] = vocab;
  EXPECT_EQ(crossEntropy(logits.data(), labels.data(), sum.data(), tokens,
                         vocab, -100, LossReduction::Sum),
            3);
}

// bf16 logits give the losses of the same logits widened first, to the bit,
// every reduction, ignored labels and a bad label included.
TEST(CrossEntropy, Bf16LogitsAreTheWidenedLogitsLosses) {
  const int64_t tokens = 9, vocab = 37;
  const auto logits = roundToBf16(randomFloats(tokens * vocab, 72));
  const auto wide = widen(logits);
  std::vector<int64_t> labels(tokens);
  for (int64_t t = 0; t < tokens; ++t)
    labels[t] = t == 2 ? -100 : (t * 7) % vocab;
  for (LossReduction reduction :
       {LossReduction::None, LossReduction::Mean, LossReduction::Sum}) {
    const size_t n = reduction == LossReduction::None ? tokens : 1;
    auto want = poisoned(n), got = poisoned(n);
    ASSERT_EQ(crossEntropy(wide.data(), labels.data(), want.data(), tokens,
                           vocab, -100, reduction),
              -1);
    ASSERT_EQ(crossEntropyBf16(logits.data(), labels.data(), got.data(), tokens,
                               vocab, -100, reduction),
              -1);
    EXPECT_EQ(std::memcmp(want.data(), got.data(), n * sizeof(float)), 0);
  }
  labels[5] = vocab;
  auto out = poisoned(1);
  EXPECT_EQ(crossEntropyBf16(logits.data(), labels.data(), out.data(), tokens,
                             vocab, -100, LossReduction::Sum),
            5);
}

TEST(CopyStrided, TransposesSlicesAndBroadcasts) {
  // x [2, 3, 4] transposed by [2, 0, 1] into [4, 2, 3].
  auto x = randomFloats(24, 70);
  StridedCopy transpose{3, 4, {4, 2, 3}, 0, {1, 12, 4}, 0, {6, 3, 1}};
  auto y = poisoned(24);
  copyStrided(x.data(), y.data(), transpose);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        EXPECT_EQ(y[c * 6 + a * 3 + b], x[a * 12 + b * 4 + c]);
  // x[1:2, 0:3:2, 1:4:2] into [1, 2, 2].
  StridedCopy slice{3, 4, {1, 2, 2}, 12 + 1, {12, 8, 2}, 0, {4, 2, 1}};
  auto s = poisoned(4);
  copyStrided(x.data(), s.data(), slice);
  for (int b = 0; b < 2; ++b)
    for (int c = 0; c < 2; ++c)
      EXPECT_EQ(s[b * 2 + c], x[12 + b * 2 * 4 + 1 + c * 2]);
  // A [3] row of bf16 (2-byte elements) broadcast into [2, 3].
  std::vector<uint16_t> row = {1, 2, 3}, grid(6, 0xffff);
  StridedCopy broadcast{2, 2, {2, 3}, 0, {0, 1}, 0, {3, 1}};
  copyStrided(row.data(), grid.data(), broadcast);
  EXPECT_EQ(grid, (std::vector<uint16_t>{1, 2, 3, 1, 2, 3}));
}

TEST(Concat, InterleavesRowsOfEachInput) {
  auto a = randomFloats(2 * 3, 71), b = randomFloats(2 * 1, 72),
       c = randomFloats(2 * 2, 73);
  const void *inputs[] = {a.data(), b.data(), c.data()};
  const int64_t rowBytes[] = {12, 4, 8};
  auto out = poisoned(2 * 6);
  concat(inputs, rowBytes, 3, out.data(), 2);
  for (int o = 0; o < 2; ++o) {
    std::vector<float> expected = {a[o * 3], a[o * 3 + 1], a[o * 3 + 2],
                                   b[o],     c[o * 2],     c[o * 2 + 1]};
    for (int j = 0; j < 6; ++j)
      EXPECT_EQ(out[o * 6 + j], expected[j]);
  }
}

TEST(Reduce, AnyDimensionsEveryKind) {
  const int64_t shape[] = {3, 5, 4};
  auto x = randomFloats(60, 74);
  for (auto kind :
       {ReduceKind::Sum, ReduceKind::Max, ReduceKind::Min, ReduceKind::Mean})
    for (int mask = 1; mask < 8; ++mask) {
      const uint8_t reduced[] = {uint8_t(mask & 1), uint8_t(mask >> 1 & 1),
                                 uint8_t(mask >> 2 & 1)};
      int64_t outputs = 1;
      for (int d = 0; d < 3; ++d)
        outputs *= reduced[d] ? 1 : shape[d];
      auto y = poisoned(outputs);
      reduce(x.data(), y.data(), shape, reduced, 3, kind);
      std::vector<double> ref(outputs, 0.0);
      std::vector<int64_t> seen(outputs, 0);
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 5; ++j)
          for (int k = 0; k < 4; ++k) {
            int64_t o = 0;
            const int idx[] = {i, j, k};
            for (int d = 0; d < 3; ++d)
              if (!reduced[d])
                o = o * shape[d] + idx[d];
            const double v = x[(i * 5 + j) * 4 + k];
            if (kind == ReduceKind::Max)
              ref[o] = seen[o] ? std::max(ref[o], v) : v;
            else if (kind == ReduceKind::Min)
              ref[o] = seen[o] ? std::min(ref[o], v) : v;
            else
              ref[o] += v;
            ++seen[o];
          }
      if (kind == ReduceKind::Mean)
        for (int64_t o = 0; o < outputs; ++o)
          ref[o] /= seen[o];
      expectClose(y, ref, 1e-6);
    }
  // NaN propagates through max.
  x[7] = NAN;
  const uint8_t all[] = {1, 1, 1};
  float y = 0;
  reduce(x.data(), &y, shape, all, 3, ReduceKind::Max);
  EXPECT_TRUE(std::isnan(y));
}

// The row and column paths at sizes past the thread threshold, with size-1
// dimensions between and a partial last block of columns: each output equal
// to the plain sum, and NaN still propagating through max.
TEST(Reduce, RowsAndColumnsOfLargeShapes) {
  const int64_t shape[] = {2, 1, 3000, 20};
  const int64_t rows = 6000, cols = 20;
  auto x = randomFloats(rows * cols, 77);
  const uint8_t columns[] = {1, 1, 1, 0}, lines[] = {0, 1, 0, 1};
  std::vector<double> columnSums(cols, 0.0), rowSums(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      columnSums[c] += x[r * cols + c];
      rowSums[r] += x[r * cols + c];
    }
  auto y = poisoned(cols);
  reduce(x.data(), y.data(), shape, columns, 4, ReduceKind::Sum);
  expectClose(y, columnSums, 1e-6);
  // Reducing dims 1 and 3 keeps [2, 3000]: rows of 20.
  auto z = poisoned(rows);
  reduce(x.data(), z.data(), shape, lines, 4, ReduceKind::Sum);
  expectClose(z, rowSums, 1e-6);
  x[5 * cols + 19] = NAN;
  reduce(x.data(), y.data(), shape, columns, 4, ReduceKind::Max);
  EXPECT_TRUE(std::isnan(y[19]));
  EXPECT_FALSE(std::isnan(y[18]));
}

TEST(ScatterAdd, AccumulatesRepeatedIndicesAndReportsBadOnes) {
  const int64_t outer = 2, size = 5, inner = 300; // past one column chunk
  auto base = randomFloats(outer * size * inner, 75);
  std::vector<int64_t> idx = {4, 1, 4, 0};
  auto updates = randomFloats(outer * idx.size() * inner, 76);
  auto out = poisoned(base.size());
  ASSERT_EQ(scatterAdd(base.data(), idx.data(), updates.data(), out.data(),
                       outer, size, inner, idx.size()),
            -1);
  std::vector<double> ref(base.begin(), base.end());
  for (int64_t a = 0; a < outer; ++a)
    for (size_t i = 0; i < idx.size(); ++i)
      for (int64_t b = 0; b < inner; ++b)
        ref[(a * size + idx[i]) * inner + b] +=
            updates[(a * idx.size() + i) * inner + b];
  expectClose(out, ref, 1e-6);
  idx[3] = -1;
  EXPECT_EQ(scatterAdd(base.data(), idx.data(), updates.data(), out.data(),
                       outer, size, inner, idx.size()),
            3);
}

TEST(Moe, GateDispatchExpertsCombineMatchTheDenseMixture) {
  const int64_t tokens = 37, experts = 5, k = 2, in = 12, out = 9;
  auto logits = randomFloats(tokens * experts, 80);
  auto x = randomFloats(tokens * in, 81);
  std::vector<std::vector<float>> w;
  std::vector<const float *> weights;
  for (int64_t e = 0; e < experts; ++e) {
    w.push_back(randomFloats(out * in, 82 + e));
    weights.push_back(w.back().data());
  }
  auto gateWeights = poisoned(tokens * k);
  std::vector<int64_t> chosen(tokens * k, -7);
  moeGate(logits.data(), gateWeights.data(), chosen.data(), tokens, experts, k,
          /*normalize=*/true);
  auto rows = poisoned(tokens * k * in);
  std::vector<int64_t> offsets(experts + 1, -7);
  ASSERT_EQ(moeDispatch(x.data(), chosen.data(), rows.data(), offsets.data(),
                        tokens, k, experts, in * 4),
            -1);
  EXPECT_EQ(offsets.front(), 0);
  EXPECT_EQ(offsets.back(), tokens * k);
  auto expertOut = poisoned(tokens * k * out);
  groupedLinear(rows.data(), offsets.data(), weights.data(), expertOut.data(),
                experts, in, out);
  auto y = poisoned(tokens * out);
  ASSERT_EQ(moeCombine(expertOut.data(), gateWeights.data(), chosen.data(),
                       y.data(), tokens, k, experts, out),
            -1);

  std::vector<double> ref(tokens * out, 0.0);
  for (int64_t t = 0; t < tokens; ++t) {
    // The reference routing: softmax, the two most probable, renormalised.
    const float *l = logits.data() + t * experts;
    std::vector<int64_t> order(experts);
    for (int64_t e = 0; e < experts; ++e)
      order[e] = e;
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return l[a] > l[b]; });
    double z = 0, top = 0;
    for (int64_t e = 0; e < experts; ++e)
      z += std::exp(double(l[e]));
    for (int64_t j = 0; j < k; ++j)
      top += std::exp(double(l[order[j]])) / z;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = order[j];
      EXPECT_EQ(chosen[t * k + j], e);
      const double p = std::exp(double(l[e])) / z / top;
      EXPECT_NEAR(gateWeights[t * k + j], p, 1e-6);
      for (int64_t o = 0; o < out; ++o) {
        double s = 0;
        for (int64_t i = 0; i < in; ++i)
          s += double(x[t * in + i]) * w[e][o * in + i];
        ref[t * out + o] += p * s;
      }
    }
  }
  expectClose(y, ref, 1e-4);
  chosen[5] = experts; // an expert that does not exist
  EXPECT_EQ(moeDispatch(x.data(), chosen.data(), rows.data(), offsets.data(),
                        tokens, k, experts, in * 4),
            5);
}
