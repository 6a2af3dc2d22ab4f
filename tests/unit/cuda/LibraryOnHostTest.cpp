// kernels/cuda/Library.cu on the host (tests/integration/CudaOnHost.h: a
// block's threads as fibers, shuffles, barriers and the tensor cores' mma
// emulated), each kernel launched as runtime/cuda/CudaExecutor.cpp launches
// it, against the CPU kernel on random inputs, outputs poisoned. What runs on
// a GPU is checked there by scripts/gpu-check; this keeps the kernels'
// indexing, masks, reductions and fragment layouts checked on every build.
#include "tests/integration/CudaOnHost.h"

#include "kernels/cuda/Library.cu"

#include "kernels/cpu/Kernels.h"
#include "kernels/cuda/Launch.h"
#include "tests/integration/RelativeError.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace cpu = weft::kernels::cpu;
using weft::kernels::cuda::gridFor;
using weft::kernels::cuda::kScatterThreads;
using weft::kernels::cuda::scatterAddGrid;
using weft::testing::relativeError;

namespace {

constexpr float kPoison = std::numeric_limits<float>::quiet_NaN();

std::vector<float> randomFloats(size_t n, std::mt19937 &rng,
                                float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n);
  for (float &value : x)
    value = normal(rng);
  return x;
}

std::vector<uint16_t> toBf16(const std::vector<float> &x) {
  std::vector<uint16_t> y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = cpu::floatToBf16(x[i]);
  return y;
}

/// Launches `body` as a kernel of grid × threads; fails the test on an
/// error of the emulation (a barrier the hardware would not pass).
template <typename F>
void launch(unsigned gridX, unsigned gridY, int threads, size_t shared,
            F body) {
  EXPECT_EQ(weftemu::launchBody({gridX, gridY, 1}, threads, shared, body), "");
}

} // namespace

// Per-token losses (a block per token), then their fixed-order reduction, for
// f32 and bf16 logits, every reduction, ignored labels and a bad one.
TEST(LibraryOnHost, CrossEntropyMatchesTheCpuKernel) {
  std::mt19937 rng(1);
  const int64_t tokens = 37, vocab = 1000, ignore = -100;
  const std::vector<float> logits = randomFloats(tokens * vocab, rng, 3.0f);
  const std::vector<uint16_t> logitsBf16 = toBf16(logits);
  std::vector<long long> labels(tokens);
  std::uniform_int_distribution<long long> label(0, vocab - 1);
  for (int64_t t = 0; t < tokens; ++t)
    labels[t] = t % 5 == 3 ? ignore : label(rng);
  const auto *labels64 = reinterpret_cast<const int64_t *>(labels.data());

  for (bool bf16 : {false, true})
    for (int reduction : {0, 1, 2}) {
      SCOPED_TRACE(std::string(bf16 ? "bf16" : "f32") + " reduction " +
                   std::to_string(reduction));
      std::vector<double> losses(tokens, kPoison);
      std::vector<long long> status(2, 0);
      std::vector<float> got(reduction == 2 ? tokens : 1, kPoison);
      launch(tokens, 1, 256, 0, [&] {
        if (bf16)
          weft_cross_entropy_bf16(
              reinterpret_cast<const __nv_bfloat16 *>(logitsBf16.data()),
              labels.data(), losses.data(), vocab, ignore, status.data());
        else
          weft_cross_entropy(logits.data(), labels.data(), losses.data(), vocab,
                             ignore, status.data());
      });
      launch(1, 1, 256, 0, [&] {
        weft_cross_entropy_reduce(losses.data(), labels.data(), got.data(),
                                  tokens, ignore, reduction);
      });
      std::vector<float> want(got.size());
      const auto kind = static_cast<cpu::LossReduction>(reduction);
      EXPECT_EQ(bf16 ? cpu::crossEntropyBf16(logitsBf16.data(), labels64,
                                             want.data(), tokens, vocab, ignore,
                                             kind)
                     : cpu::crossEntropy(logits.data(), labels64, want.data(),
                                         tokens, vocab, ignore, kind),
                -1);
      EXPECT_EQ(status[0], 0);
      EXPECT_LE(relativeError(got, want), 1e-6);
    }

  // A label outside [0, vocab): the first such token and its label reported.
  std::vector<long long> bad = labels;
  bad[11] = vocab + 4;
  bad[20] = -7;
  std::vector<double> losses(tokens, kPoison);
  std::vector<long long> status(2, 0);
  launch(tokens, 1, 256, 0, [&] {
    weft_cross_entropy(logits.data(), bad.data(), losses.data(), vocab, ignore,
                       status.data());
  });
  EXPECT_EQ(status[0], 1 + 11); // blocks run in order here
  EXPECT_EQ(status[1], vocab + 4);
}

// FlashAttention-2 on tensor cores (mma m16n8k16, emulated fragment by
// fragment) for head dimensions 64 and 128: causal with grouped KV heads
// and a query tail shorter than the 64-query tile, and full attention of
// fewer queries than keys; each row's log-sum-exp too.
TEST(LibraryOnHost, TensorCoreAttentionMatchesTheCpuKernel) {
  struct Case {
    int d;
    int64_t batch, sq, skv, heads, kvHeads;
    cpu::AttentionKind kind;
  };
  const Case cases[] = {{64, 1, 80, 80, 4, 2, cpu::AttentionKind::Causal},
                        {128, 2, 40, 100, 2, 1, cpu::AttentionKind::Full},
                        {128, 1, 70, 70, 2, 2, cpu::AttentionKind::Causal}};
  std::mt19937 rng(2);
  for (const Case &c : cases) {
    SCOPED_TRACE("d " + std::to_string(c.d) + " sq " + std::to_string(c.sq) +
                 " skv " + std::to_string(c.skv));
    const cpu::AttentionShape shape{c.batch,   c.sq, c.skv, c.heads,
                                    c.kvHeads, c.d,  c.d};
    const std::vector<uint16_t> q =
        toBf16(randomFloats(c.batch * c.sq * c.heads * c.d, rng));
    const std::vector<uint16_t> k =
        toBf16(randomFloats(c.batch * c.skv * c.kvHeads * c.d, rng));
    const std::vector<uint16_t> v =
        toBf16(randomFloats(c.batch * c.skv * c.kvHeads * c.d, rng));
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    std::vector<uint16_t> got(q.size(), 0xffff), want(q.size());
    std::vector<float> gotLse(c.batch * c.heads * c.sq, kPoison),
        wantLse(gotLse.size());
    std::vector<float> workspace(cpu::attentionWorkspace(shape, 1, true));
    cpu::attentionBf16(q.data(), k.data(), v.data(), nullptr, false, nullptr,
                       want.data(), shape, c.kind, scale, 0, workspace.data(),
                       1, wantLse.data());

    namespace tc = weft::kernels::cuda::attention;
    const unsigned gridX =
        static_cast<unsigned>((c.sq + tc::kQueries - 1) / tc::kQueries);
    const unsigned gridY = static_cast<unsigned>(c.batch * c.heads);
    auto *bq = reinterpret_cast<const __nv_bfloat16 *>(q.data());
    auto *bk = reinterpret_cast<const __nv_bfloat16 *>(k.data());
    auto *bv = reinterpret_cast<const __nv_bfloat16 *>(v.data());
    auto *out = reinterpret_cast<__nv_bfloat16 *>(got.data());
    launch(gridX, gridY, tc::kWarps * 32, tc::layout(c.d).bytes, [&] {
      (c.d == 64 ? weft_attention_bf16_d64 : weft_attention_bf16_d128)(
          bq, bk, bv, nullptr, nullptr, out, c.sq, c.skv, c.heads, c.kvHeads,
          static_cast<int>(c.kind), 0, 0, scale, gotLse.data());
    });
    // P is rounded to bf16 for P·V on the tensor cores: a bf16 step's error.
    EXPECT_LE(relativeError(got, want), 1e-2);
    EXPECT_LE(relativeError(gotLse, wantLse), 1e-5);
  }
}

// Attention's backward in three passes (each row's log-sum-exp and δ, then
// dk and dv a block per 4 keys, then dq a block per 4 queries), bf16 and
// f32, causal with grouped KV heads, against the CPU's backward.
TEST(LibraryOnHost, AttentionBackwardMatchesTheCpuKernel) {
  const int64_t batch = 1, sq = 37, skv = 37, heads = 4, kvHeads = 2, d = 64;
  const cpu::AttentionShape shape{batch, sq, skv, heads, kvHeads, d, d};
  const auto kind = cpu::AttentionKind::Causal;
  const float scale = 0.125f;
  std::mt19937 rng(3);
  const std::vector<float> q = randomFloats(batch * sq * heads * d, rng),
                           k = randomFloats(batch * skv * kvHeads * d, rng),
                           v = randomFloats(batch * skv * kvHeads * d, rng),
                           dout = randomFloats(q.size(), rng);
  std::vector<float> out(q.size()), lse(batch * heads * sq);
  std::vector<float> workspace(cpu::attentionWorkspace(shape, 1));
  cpu::attention(q.data(), k.data(), v.data(), nullptr, false, nullptr,
                 out.data(), shape, kind, scale, 0, workspace.data(), 1,
                 lse.data());

  for (bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    // The CPU's gradients, and the kernels' from the same operands.
    std::vector<float> wantQ(q.size()), wantK(k.size()), wantV(v.size());
    std::vector<uint16_t> q16 = toBf16(q), k16 = toBf16(k), v16 = toBf16(v),
                          out16 = toBf16(out), dout16 = toBf16(dout);
    std::vector<uint16_t> wantQ16(q.size()), wantK16(k.size()),
        wantV16(v.size());
    std::vector<float> grads(cpu::attentionBackwardWorkspace(shape, 1, bf16));
    if (bf16)
      cpu::attentionBackwardBf16(
          q16.data(), k16.data(), v16.data(), out16.data(), dout16.data(),
          nullptr, false, nullptr, wantQ16.data(), wantK16.data(),
          wantV16.data(), shape, kind, scale, 0, grads.data(), 1, lse.data());
    else
      cpu::attentionBackward(q.data(), k.data(), v.data(), out.data(),
                             dout.data(), nullptr, false, nullptr, wantQ.data(),
                             wantK.data(), wantV.data(), shape, kind, scale, 0,
                             grads.data(), 1, lse.data());

    std::vector<float> gotQ(q.size(), kPoison), gotK(k.size(), kPoison),
        gotV(v.size(), kPoison), delta(batch * heads * sq, kPoison);
    std::vector<uint16_t> gotQ16(q.size(), 0xffff), gotK16(k.size(), 0xffff),
        gotV16(v.size(), 0xffff);
    auto address = [](const auto &x) {
      return reinterpret_cast<unsigned long long>(x.data());
    };
    tr::AttentionGrad g{};
    g.q = bf16 ? address(q16) : address(q);
    g.k = bf16 ? address(k16) : address(k);
    g.v = bf16 ? address(v16) : address(v);
    g.out = bf16 ? address(out16) : address(out);
    g.dout = bf16 ? address(dout16) : address(dout);
    g.dq = bf16 ? address(gotQ16) : address(gotQ);
    g.dk = bf16 ? address(gotK16) : address(gotK);
    g.dv = bf16 ? address(gotV16) : address(gotV);
    g.lse = address(lse);
    g.lseGiven = 1;
    g.delta = address(delta);
    g.batch = batch, g.sq = sq, g.skv = skv, g.heads = heads;
    g.kvHeads = kvHeads, g.dimQK = d, g.dimV = d;
    g.kind = static_cast<int>(kind);
    g.scale = scale;
    const unsigned rows = tr::kAttentionGradWarps;
    const unsigned queryBlocks = (sq + rows - 1) / rows,
                   keyBlocks = (skv + rows - 1) / rows;
    const int threads = static_cast<int>(rows * 32);
    launch(queryBlocks, batch * heads, threads, 0, [&] {
      bf16 ? weft_attention_grad_bf16_stats(g) : weft_attention_grad_stats(g);
    });
    launch(keyBlocks, batch * kvHeads, threads, 0, [&] {
      bf16 ? weft_attention_grad_bf16_kv(g) : weft_attention_grad_kv(g);
    });
    launch(queryBlocks, batch * heads, threads, 0, [&] {
      bf16 ? weft_attention_grad_bf16_q(g) : weft_attention_grad_q(g);
    });
    if (bf16) {
      EXPECT_LE(relativeError(gotQ16, wantQ16), 1e-2);
      EXPECT_LE(relativeError(gotK16, wantK16), 1e-2);
      EXPECT_LE(relativeError(gotV16, wantV16), 1e-2);
    } else {
      EXPECT_LE(relativeError(gotQ, wantQ), 1e-5);
      EXPECT_LE(relativeError(gotK, wantK), 1e-5);
      EXPECT_LE(relativeError(gotV, wantV), 1e-5);
    }
  }
}

// The global gradient norm (fixed blocks of partial sums in double, then
// their total) and AdamW with bf16 gradients and parameters, clipped by it.
TEST(LibraryOnHost, GradientNormAndAdamWMatchTheCpuKernels) {
  std::mt19937 rng(4);
  const int64_t n = 5000;
  const std::vector<float> grad = randomFloats(n, rng);
  const std::vector<uint16_t> grad16 = toBf16(grad);
  std::vector<double> partials(tr::kNormBlocks, kPoison);
  std::vector<double> total(1, kPoison);
  std::vector<float> norm(1, kPoison);
  const float gradScale = 0.5f;
  // An f32 gradient long enough for each thread's unrolled loop and its
  // tail, then the bf16 one AdamW reads below.
  const int64_t longer = 8 * tr::kNormBlocks * tr::kNormThreads * 2 + 12345;
  const std::vector<float> longGrad = randomFloats(longer, rng);
  launch(tr::kNormBlocks, 1, tr::kNormThreads, 0, [&] {
    weft_sum_squares(longGrad.data(), longer, 0, gradScale, partials.data());
  });
  launch(1, 1, tr::kNormThreads, 0, [&] {
    weft_norm_finish(partials.data(), tr::kNormBlocks, total.data(),
                     norm.data());
  });
  const double longSquares =
      cpu::sumOfSquares(longGrad.data(), longer, gradScale);
  EXPECT_NEAR(total[0], longSquares, 1e-12 * longSquares);

  launch(tr::kNormBlocks, 1, tr::kNormThreads, 0, [&] {
    weft_sum_squares(grad16.data(), n, 1, gradScale, partials.data());
  });
  launch(1, 1, tr::kNormThreads, 0, [&] {
    weft_norm_finish(partials.data(), tr::kNormBlocks, total.data(),
                     norm.data());
  });
  const double squares = cpu::sumOfSquaresBf16(grad16.data(), n, gradScale);
  EXPECT_NEAR(total[0], squares, 1e-12 * squares);
  EXPECT_NEAR(norm[0], std::sqrt(squares), 1e-6 * std::sqrt(squares));

  // AdamW step 3 clipped to max norm 1 by that norm.
  const double lr = 1e-2, maxNorm = 1.0;
  const long long step = 3;
  std::vector<float> master = randomFloats(n, rng), m = randomFloats(n, rng),
                     v = randomFloats(n, rng);
  for (float &x : v)
    x = x * x;
  std::vector<float> wantMaster = master, wantM = m, wantV = v;
  cpu::AdamWStep s{lr, 0.9, 0.999, 1e-8, 0.01, step};
  s.gradScale = static_cast<float>(
      std::min(1.0, maxNorm / (static_cast<double>(norm[0]) + 1e-6)));
  cpu::adamwUpdateBf16Grad(s, wantMaster.data(), wantM.data(), wantV.data(),
                           grad16.data(), nullptr, n);
  std::vector<long long> status(2, 0);
  tr::AdamW a{0.9, 0.999, 1e-8, 0.01, maxNorm, 1.0f, 1};
  // The bf16 copy of the new weights, poisoned (0xffff: a NaN).
  std::vector<__nv_bfloat16> rounded(n, __nv_bfloat16{0xffff});
  launch(gridFor(n), 1, 256, 0, [&] {
    weft_adamw(master.data(), m.data(), v.data(), grad16.data(), rounded.data(),
               n, &lr, &step, norm.data(), a, status.data());
  });
  EXPECT_EQ(status[0], 0);
  EXPECT_LE(relativeError(master, wantMaster), 1e-6);
  EXPECT_LE(relativeError(m, wantM), 1e-6);
  EXPECT_LE(relativeError(v, wantV), 1e-6);
  // Each rounded from this kernel's own new weight, as the CPU rounds them.
  int64_t unrounded = 0;
  for (int64_t i = 0; i < n; ++i)
    unrounded += rounded[i].bits != cpu::floatToBf16(master[i]);
  EXPECT_EQ(unrounded, 0);
}

// Reductions over kept and reduced dimensions in any order (a block per
// output where the innermost dimension is reduced, else 32 outputs a block),
// every kind, against the CPU's.
TEST(LibraryOnHost, ReduceMatchesTheCpuKernel) {
  struct Case {
    std::vector<int64_t> shape;
    std::vector<bool> reduced;
  };
  const Case cases[] = {{{37, 300}, {false, true}},
                        {{300, 37}, {true, false}},
                        {{3, 1, 40, 5, 7}, {true, false, false, true, false}},
                        {{4096}, {true}},
                        {{6, 9, 11}, {false, true, true}},
                        {{3, 2500}, {false, true}},
                        {{50, 3, 9, 4}, {true, false, true, false}}};
  std::mt19937 rng(5);
  for (const Case &c : cases)
    for (int kind : {0, 1, 2, 3}) {
      SCOPED_TRACE("rank " + std::to_string(c.shape.size()) + " kind " +
                   std::to_string(kind));
      int64_t elements = 1, outputs = 1;
      std::vector<uint8_t> reduced;
      for (size_t d = 0; d < c.shape.size(); ++d) {
        elements *= c.shape[d];
        outputs *= c.reduced[d] ? 1 : c.shape[d];
        reduced.push_back(c.reduced[d]);
      }
      std::vector<float> x = randomFloats(elements, rng);
      x[elements / 3] = kPoison; // NaN propagates through max and min
      std::vector<float> got(outputs, kPoison), want(outputs);
      cpu::reduce(x.data(), want.data(), c.shape.data(), reduced.data(),
                  static_cast<int>(c.shape.size()),
                  static_cast<cpu::ReduceKind>(kind));
      const weft::kernels::cuda::ReduceShape shape =
          weft::kernels::cuda::reduceShapeOf(c.shape, c.reduced);
      const unsigned blocks =
          gridFor(shape.outputs, shape.innerReduced ? 1 : 32);
      launch(blocks, 1, 256, 0,
             [&] { weft_reduce(x.data(), got.data(), shape, kind); });
      for (int64_t o = 0; o < outputs; ++o)
        EXPECT_EQ(std::isnan(got[o]), std::isnan(want[o])) << "output " << o;
      EXPECT_LE(relativeError(got, want), 1e-6);
    }
}

// Rotary embeddings, half-split and interleaved, at arbitrary positions, of
// f32 and of bf16 (widened as read, rounded once).
TEST(LibraryOnHost, RopeMatchesTheCpuKernel) {
  const int64_t batch = 2, seq = 13, heads = 3, dim = 64;
  const double theta = 10000.0;
  std::mt19937 rng(6);
  const std::vector<float> x = randomFloats(batch * seq * heads * dim, rng);
  const std::vector<uint16_t> x16 = toBf16(x);
  std::vector<long long> positions(batch * seq);
  for (size_t i = 0; i < positions.size(); ++i)
    positions[i] = static_cast<long long>(i * 37 % 500) - 9;
  const auto *positions64 = reinterpret_cast<const int64_t *>(positions.data());
  std::vector<float> invFreq(dim / 2); // as CudaExecutor tabulates them
  for (int64_t j = 0; j < dim / 2; ++j)
    invFreq[j] = static_cast<float>(
        1.0 / std::pow(theta, static_cast<double>(2 * j) / dim));
  const unsigned blocks = gridFor(batch * seq * heads * dim / 2);
  for (int interleaved : {0, 1}) {
    SCOPED_TRACE(interleaved ? "interleaved" : "half-split");
    std::vector<float> got(x.size(), kPoison), want(x.size());
    cpu::rope(x.data(), positions64, want.data(), batch, seq, heads, dim, theta,
              interleaved != 0);
    launch(blocks, 1, 256, 0, [&] {
      weft_rope(x.data(), positions.data(), got.data(), batch * seq, heads, dim,
                invFreq.data(), interleaved);
    });
    EXPECT_LE(relativeError(got, want), 1e-5);

    std::vector<uint16_t> got16(x.size(), 0xffff), want16(x.size());
    cpu::ropeBf16(x16.data(), positions64, want16.data(), batch, seq, heads,
                  dim, theta, interleaved != 0);
    launch(blocks, 1, 256, 0, [&] {
      weft_rope_bf16(reinterpret_cast<const __nv_bfloat16 *>(x16.data()),
                     positions.data(),
                     reinterpret_cast<__nv_bfloat16 *>(got16.data()),
                     batch * seq, heads, dim, invFreq.data(), interleaved);
    });
    EXPECT_LE(relativeError(got16, want16), 1e-2);
  }
}

// Attention a warp per query row (the shapes and masks the tensor-core
// kernel and cuDNN do not take): every kind — full, causal with a window,
// ALiBi, an explicit per-batch mask — with grouped heads, different key and
// value head dimensions and more keys than queries, in f32 and bf16.
TEST(LibraryOnHost, RowAttentionMatchesTheCpuKernel) {
  const int64_t batch = 2, sq = 19, skv = 45, heads = 4, kvHeads = 2;
  const int64_t dqk = 40, dv = 24;
  const cpu::AttentionShape shape{batch, sq, skv, heads, kvHeads, dqk, dv};
  std::mt19937 rng(7);
  const std::vector<float> q = randomFloats(batch * sq * heads * dqk, rng),
                           k = randomFloats(batch * skv * kvHeads * dqk, rng),
                           v = randomFloats(batch * skv * kvHeads * dv, rng),
                           slopes = {0.5f, 0.25f, 0.125f, 0.0625f};
  std::vector<uint8_t> mask(batch * sq * skv);
  for (size_t i = 0; i < mask.size(); ++i)
    mask[i] = (i * 7919) % 5 != 0;
  mask[3 * skv + 0] = 0; // row 3 of batch 0 attends nothing but key 1
  for (int64_t j = 2; j < skv; ++j)
    mask[3 * skv + j] = 0;
  struct Case {
    cpu::AttentionKind kind;
    int64_t window;
  };
  const float scale = 0.15f;
  for (Case c :
       {Case{cpu::AttentionKind::Full, 0}, Case{cpu::AttentionKind::Causal, 7},
        Case{cpu::AttentionKind::Alibi, 0}, Case{cpu::AttentionKind::Mask, 0}})
    for (bool bf16 : {false, true}) {
      SCOPED_TRACE("kind " + std::to_string(static_cast<int>(c.kind)) +
                   (bf16 ? " bf16" : " f32"));
      const float *slopesOf =
          c.kind == cpu::AttentionKind::Alibi ? slopes.data() : nullptr;
      const uint8_t *maskOf =
          c.kind == cpu::AttentionKind::Mask ? mask.data() : nullptr;
      const int64_t outSize = batch * sq * heads * dv;
      std::vector<float> wantLse(batch * heads * sq),
          gotLse(wantLse.size(), kPoison);
      std::vector<float> workspace(cpu::attentionWorkspace(shape, 1, bf16));
      const unsigned gridX = (sq + 3) / 4, gridY = batch * heads;
      const int threads = 4 * 32; // kAttentionWarps warps, a row each
      if (!bf16) {
        std::vector<float> want(outSize), got(outSize, kPoison);
        cpu::attention(q.data(), k.data(), v.data(), maskOf, true, slopesOf,
                       want.data(), shape, c.kind, scale, c.window,
                       workspace.data(), 1, wantLse.data());
        launch(gridX, gridY, threads, 0, [&] {
          weft_attention(q.data(), k.data(), v.data(), maskOf, slopesOf,
                         got.data(), batch, sq, skv, heads, kvHeads, dqk, dv,
                         static_cast<int>(c.kind), 1, c.window, scale,
                         gotLse.data());
        });
        EXPECT_LE(relativeError(got, want), 1e-5);
      } else {
        const std::vector<uint16_t> q16 = toBf16(q), k16 = toBf16(k),
                                    v16 = toBf16(v);
        std::vector<uint16_t> want(outSize), got(outSize, 0xffff);
        cpu::attentionBf16(q16.data(), k16.data(), v16.data(), maskOf, true,
                           slopesOf, want.data(), shape, c.kind, scale,
                           c.window, workspace.data(), 1, wantLse.data());
        auto bf = [](const std::vector<uint16_t> &x) {
          return reinterpret_cast<const __nv_bfloat16 *>(x.data());
        };
        launch(gridX, gridY, threads, 0, [&] {
          weft_attention_bf16_rows(
              bf(q16), bf(k16), bf(v16), maskOf, slopesOf,
              reinterpret_cast<__nv_bfloat16 *>(got.data()), batch, sq, skv,
              heads, kvHeads, dqk, dv, static_cast<int>(c.kind), 1, c.window,
              scale, gotLse.data());
        });
        EXPECT_LE(relativeError(got, want), 1e-2);
      }
      EXPECT_LE(relativeError(gotLse, wantLse), 1e-5);
    }
}

// Softmax and log-softmax along a middle dimension, gather of rows (f32 and
// any element size) and scatter-add with repeated indices.
TEST(LibraryOnHost, SoftmaxGatherAndScatterAddMatchTheCpuKernels) {
  std::mt19937 rng(8);
  const int64_t outer = 3, dim = 50, inner = 7;
  const std::vector<float> x = randomFloats(outer * dim * inner, rng, 4.0f);
  for (int logarithm : {0, 1}) {
    std::vector<float> got(x.size(), kPoison), want(x.size());
    cpu::softmax(x.data(), want.data(), outer, dim, inner, logarithm != 0);
    launch(gridFor(outer * inner), 1, 256, 0, [&] {
      weft_softmax(x.data(), got.data(), outer, dim, inner, logarithm);
    });
    EXPECT_LE(relativeError(got, want), 1e-6) << "logarithm " << logarithm;
  }

  // Rows of 6 bytes (bf16 triples: not a multiple of 4) and of 20.
  const int64_t size = 11, count = 9;
  std::vector<long long> indices(count);
  for (int64_t i = 0; i < count; ++i)
    indices[i] = (i * 5) % size;
  const auto *indices64 = reinterpret_cast<const int64_t *>(indices.data());
  for (int64_t innerBytes : {6, 20}) {
    std::vector<char> table(2 * size * innerBytes);
    for (size_t i = 0; i < table.size(); ++i)
      table[i] = static_cast<char>(i * 31 + 7);
    std::vector<char> got(2 * count * innerBytes, 0x5a), want(got.size(), 0x00);
    EXPECT_EQ(cpu::gather(table.data(), indices64, want.data(), 2, size,
                          innerBytes, count),
              -1);
    std::vector<long long> status(2, 0);
    const int64_t total =
        2 * count * (innerBytes % 4 == 0 ? innerBytes / 4 : innerBytes);
    launch(gridFor(total), 1, 256, 0, [&] {
      weft_gather(table.data(), indices.data(), got.data(), 2, size, innerBytes,
                  count, status.data());
    });
    EXPECT_EQ(got, want) << innerBytes << "-byte rows";
    EXPECT_EQ(status[0], 0);
  }

  const int64_t rows = 2, columns = 13;
  std::vector<long long> repeated = {4, 1, 4, 0, 10, 4, 1, 3, 9};
  const std::vector<float> base = randomFloats(rows * size * columns, rng),
                           updates = randomFloats(rows * count * columns, rng);
  std::vector<float> want(base.size()), got = base; // the runtime copies base
  EXPECT_EQ(cpu::scatterAdd(
                base.data(), reinterpret_cast<const int64_t *>(repeated.data()),
                updates.data(), want.data(), rows, size, columns, count),
            -1);
  std::vector<long long> status(2, 0);
  const auto grid = scatterAddGrid(rows * columns, size);
  launch(grid.x, grid.y, kScatterThreads, 0, [&] {
    weft_scatter_add(repeated.data(), updates.data(), got.data(), rows, size,
                     columns, count, status.data());
  });
  EXPECT_EQ(status[0], 0);
  EXPECT_EQ(got, want); // the same additions in the same order
}

// Scatter-add over several tiles of 256 indices, with rows repeated within a
// batch of 8 and across batches and tiles, columns over one block, and the
// rows split into 1, 3 and one range per row: the CPU's sums to the bit. A
// bad index stops every block and reports the first one.
TEST(LibraryOnHost, ScatterAddMatchesTheCpuKernelBitForBit) {
  std::mt19937 rng(9);
  const int64_t outer = 2, size = 40, inner = 150, count = 700;
  std::vector<long long> indices(count);
  std::uniform_int_distribution<int> row(0, static_cast<int>(size) - 1);
  for (int64_t i = 0; i < count; ++i) // a hot row, repeats, random rows
    indices[i] = i % 10 < 3 ? 7 : i % 10 < 5 ? indices[i - 1] : row(rng);
  const auto *indices64 = reinterpret_cast<const int64_t *>(indices.data());
  const std::vector<float> base = randomFloats(outer * size * inner, rng),
                           updates = randomFloats(outer * count * inner, rng);
  std::vector<float> want(base.size());
  ASSERT_EQ(cpu::scatterAdd(base.data(), indices64, updates.data(), want.data(),
                            outer, size, inner, count),
            -1);
  const auto grid = scatterAddGrid(outer * inner, size);
  EXPECT_EQ(grid.x, 2u);
  for (unsigned ranges : {1u, 3u, static_cast<unsigned>(size), grid.y}) {
    std::vector<float> got = base;
    std::vector<long long> status(2, 0);
    launch(grid.x, ranges, kScatterThreads, 0, [&] {
      weft_scatter_add(indices.data(), updates.data(), got.data(), outer, size,
                       inner, count, status.data());
    });
    EXPECT_EQ(status[0], 0) << ranges << " ranges";
    EXPECT_EQ(got, want) << ranges << " ranges";
  }

  indices[300] = size;
  indices[650] = -1;
  std::vector<float> got = base;
  std::vector<long long> status(2, 0);
  launch(grid.x, 3, kScatterThreads, 0, [&] {
    weft_scatter_add(indices.data(), updates.data(), got.data(), outer, size,
                     inner, count, status.data());
  });
  EXPECT_EQ(status[0], 301); // 1 + the position
  EXPECT_EQ(status[1], size);
}
