// Embedding lookup and its index checks.
#include "kernels/cpu/Kernels.h"

#include <algorithm>

int64_t weft::kernels::cpu::gather(const float *table, const int64_t *indices,
                                   float *out, int64_t outer, int64_t size,
                                   int64_t inner, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (indices[i] < 0 || indices[i] >= size)
      return i;
#pragma omp parallel for collapse(2)
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t i = 0; i < count; ++i)
      std::copy_n(table + (a * size + indices[i]) * inner, inner,
                  out + (a * count + i) * inner);
  return -1;
}
