// The tolerance measure of the tests that compare numbers with a reference.
#ifndef WEFT_TESTS_INTEGRATION_RELATIVEERROR_H
#define WEFT_TESTS_INTEGRATION_RELATIVEERROR_H

#include "kernels/cpu/Kernels.h"
#include "runtime/HostTensor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

namespace weft::testing {

/// max |got − want| relative to max |want| (elementwise ratios blow up near
/// zero) over `count` elements (bf16 as uint16_t), in double. A position
/// whose reference is not finite is skipped (tests check a NaN that
/// propagates apart); a result that is not finite elsewhere gives infinity.
template <typename T>
double relativeError(const T *got, const T *want, int64_t count) {
  auto value = [](T x) -> double {
    if constexpr (std::is_same_v<T, uint16_t>)
      return kernels::cpu::bf16ToFloat(x);
    else
      return static_cast<double>(x);
  };
  double maxError = 0, maxValue = 0;
  for (int64_t i = 0; i < count; ++i) {
    const double g = value(got[i]), w = value(want[i]);
    if (!std::isfinite(w))
      continue;
    if (!std::isfinite(g))
      return INFINITY;
    maxError = std::max(maxError, std::abs(g - w));
    maxValue = std::max(maxValue, std::abs(w));
  }
  return maxError / std::max(maxValue, 1e-30);
}

template <typename T>
double relativeError(const std::vector<T> &got, const std::vector<T> &want) {
  EXPECT_EQ(got.size(), want.size());
  if (got.size() != want.size())
    return INFINITY;
  return relativeError(got.data(), want.data(),
                       static_cast<int64_t>(want.size()));
}

/// The same over two f32 tensors; infinite on a shape mismatch.
inline double relativeError(const runtime::HostTensor &actual,
                            const runtime::HostTensor &expected) {
  EXPECT_EQ(actual.shape, expected.shape);
  if (actual.shape != expected.shape)
    return INFINITY;
  return relativeError(reinterpret_cast<const float *>(actual.bytes.data()),
                       reinterpret_cast<const float *>(expected.bytes.data()),
                       expected.numElements());
}

} // namespace weft::testing

#endif // WEFT_TESTS_INTEGRATION_RELATIVEERROR_H
