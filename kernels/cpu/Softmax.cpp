// Numerically stable softmax and log-softmax along one dimension.
#include "kernels/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>

void weft::kernels::cpu::softmax(const float *x, float *y, int64_t outer,
                                 int64_t dim, int64_t inner, bool logarithm) {
#pragma omp parallel for collapse(2)
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const float *in = x + o * dim * inner + i;
      float *out = y + o * dim * inner + i;
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t d = 0; d < dim; ++d)
        max = std::max(max, in[d * inner]);
      float sum = 0.0f;
      for (int64_t d = 0; d < dim; ++d)
        sum += std::exp(in[d * inner] - max);
      if (logarithm) {
        const float logSum = std::log(sum) + max;
        for (int64_t d = 0; d < dim; ++d)
          out[d * inner] = in[d * inner] - logSum;
      } else {
        for (int64_t d = 0; d < dim; ++d)
          out[d * inner] = std::exp(in[d * inner] - max) / sum;
      }
    }
  }
}
