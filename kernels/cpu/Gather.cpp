// Embedding lookup and its index checks.
#include "kernels/cpu/Kernels.h"

#include <algorithm>

int64_t weft::kernels::cpu::gather(const void *table, const int64_t *indices,
                                   void *out, int64_t outer, int64_t size,
                                   int64_t innerBytes, int64_t count) {
  const auto *from = static_cast<const char *>(table);
  auto *to = static_cast<char *>(out);
  for (int64_t i = 0; i < count; ++i)
    if (indices[i] < 0 || indices[i] >= size)
      return i;
#pragma omp parallel for collapse(2)
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t i = 0; i < count; ++i)
      std::copy_n(from + (a * size + indices[i]) * innerBytes, innerBytes,
                  to + (a * count + i) * innerBytes);
  return -1;
}
