// The AdamW step against torch.optim.AdamW bit for bit (reference values
// from tests/fixtures/make_adamw_reference.py), its bf16 variants against
// the fp32 one, and the sum of squares against a plain sum.
#include "kernels/cpu/Kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using namespace weft::kernels::cpu;

namespace {
#include "AdamWReference.inc"

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

AdamWStep torchStep(int64_t step) {
  return {1e-3, 0.9, 0.999, 1e-8, 0.01, step, kAdamWScale};
}
} // namespace

TEST(Optimizer, AdamWMatchesTorchBitForBit) {
  std::vector<float> master(kAdamWParam, kAdamWParam + kAdamWSize),
      m(kAdamWSize, 0.0f), v(kAdamWSize, 0.0f);
  for (int s = 0; s < kAdamWSteps; ++s) {
    adamwUpdate(torchStep(s + 1), master.data(), m.data(), v.data(),
                kAdamWGrads + s * kAdamWSize, nullptr, kAdamWSize);
    const float *expected = kAdamWAfter + 3 * s * kAdamWSize;
    for (int i = 0; i < kAdamWSize; ++i) {
      ASSERT_EQ(bits(master[i]), bits(expected[i]))
          << "step " << s + 1 << ", parameter " << i << ": " << master[i]
          << " vs torch " << expected[i];
      ASSERT_EQ(bits(m[i]), bits(expected[kAdamWSize + i])) << "m " << i;
      ASSERT_EQ(bits(v[i]), bits(expected[2 * kAdamWSize + i])) << "v " << i;
    }
  }
}

TEST(Optimizer, Bf16ParametersAndGradientsFollowTheFp32Update) {
  // A large update (threads split it) with bf16 gradients and a bf16 copy of
  // the parameters: the master weights follow the fp32 update fed the same
  // (widened) gradients, and every bf16 parameter is its master rounded.
  const int64_t n = 100003;
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> master(n), grad(n);
  std::vector<uint16_t> grad16(n);
  for (int64_t i = 0; i < n; ++i) {
    master[i] = dist(rng);
    grad16[i] = floatToBf16(dist(rng) * 0.01f);
    grad[i] = bf16ToFloat(grad16[i]);
  }
  std::vector<float> master32 = master, m(n, 0.f), v(n, 0.f), m32 = m, v32 = v;
  std::vector<uint16_t> param(n, 0x7fc1); // poisoned: NaN
  for (int64_t step = 1; step <= 2; ++step) {
    const AdamWStep s{3e-4, 0.9, 0.95, 1e-8, 0.1, step, 1.0f};
    adamwUpdateBf16Grad(s, master.data(), m.data(), v.data(), grad16.data(),
                        param.data(), n);
    adamwUpdate(s, master32.data(), m32.data(), v32.data(), grad.data(),
                nullptr, n);
  }
  EXPECT_EQ(master, master32);
  EXPECT_EQ(m, m32);
  EXPECT_EQ(v, v32);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(param[i], floatToBf16(master[i])) << i;
}

TEST(Optimizer, SumOfSquaresIsExactInDouble) {
  for (int64_t n : {0, 1, 65535, 65536, 300001}) {
    std::mt19937 rng(n);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    std::vector<float> x(n);
    std::vector<uint16_t> x16(n);
    double expected = 0, expected16 = 0;
    for (int64_t i = 0; i < n; ++i) {
      x[i] = dist(rng);
      x16[i] = floatToBf16(x[i]);
      expected += double(x[i]) * x[i];
      const double w = bf16ToFloat(x16[i]);
      expected16 += w * w;
    }
    EXPECT_NEAR(sumOfSquares(x.data(), n), expected, 1e-12 * (1 + expected));
    EXPECT_NEAR(sumOfSquaresBf16(x16.data(), n), expected16,
                1e-12 * (1 + expected16));
  }
}

// The mean of accumulated gradients: scaling as they are read (the norm and
// the update of an optimizer_step) gives what scaling them first gives, to
// the bit.
TEST(Optimizer, GradientMultiplierEqualsScalingFirst) {
  const int64_t n = 40000;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> sums(n), master(n);
  for (int64_t i = 0; i < n; ++i) {
    sums[i] = dist(rng) * 0.03f;
    master[i] = dist(rng);
  }
  const float inverse = 1.0f / 3.0f;
  std::vector<float> means(n);
  for (int64_t i = 0; i < n; ++i)
    means[i] = sums[i] * inverse;
  EXPECT_EQ(sumOfSquares(sums.data(), n, inverse),
            sumOfSquares(means.data(), n));
  std::vector<float> master2 = master, m(n, 0.f), v(n, 0.f), m2 = m, v2 = v;
  for (int64_t step = 1; step <= 3; ++step) {
    AdamWStep s{1e-3, 0.9, 0.999, 1e-8, 0.01, step, 0.5f};
    adamwUpdate(s, master2.data(), m2.data(), v2.data(), means.data(),
                nullptr, n);
    s.gradMultiplier = inverse;
    adamwUpdate(s, master.data(), m.data(), v.data(), sums.data(), nullptr,
                n);
  }
  EXPECT_EQ(master, master2);
  EXPECT_EQ(m, m2);
  EXPECT_EQ(v, v2);
}
