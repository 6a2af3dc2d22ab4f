// The tolerance measure of the integration tests.
#ifndef WEFT_TESTS_INTEGRATION_RELATIVEERROR_H
#define WEFT_TESTS_INTEGRATION_RELATIVEERROR_H

#include "runtime/HostTensor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace weft::testing {

/// max |a − b| relative to max |b| (elementwise ratios blow up near zero)
/// over two f32 tensors; infinite on a shape mismatch or a NaN.
inline double relativeError(const runtime::HostTensor &actual,
                            const runtime::HostTensor &expected) {
  EXPECT_EQ(actual.shape, expected.shape);
  if (actual.shape != expected.shape)
    return INFINITY;
  auto *a = reinterpret_cast<const float *>(actual.bytes.data());
  auto *b = reinterpret_cast<const float *>(expected.bytes.data());
  double maxError = 0, maxValue = 0;
  for (int64_t i = 0; i < expected.numElements(); ++i) {
    if (std::isnan(a[i]))
      return INFINITY;
    maxError = std::max(maxError, std::abs(double(a[i]) - b[i]));
    maxValue = std::max(maxValue, std::abs(double(b[i])));
  }
  return maxError / maxValue;
}

} // namespace weft::testing

#endif // WEFT_TESTS_INTEGRATION_RELATIVEERROR_H
