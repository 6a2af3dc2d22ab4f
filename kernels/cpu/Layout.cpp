// Data movement: strided copies (transpose, slice, broadcast) and
// concatenation, for elements of any size.
#include "kernels/cpu/Kernels.h"

#include <cstring>

namespace {
template <int64_t Bytes>
void copyRow(const char *src, int64_t srcStride, char *dst, int64_t dstStride,
             int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(dst + i * dstStride * Bytes, src + i * srcStride * Bytes,
                Bytes);
}
} // namespace

void weft::kernels::cpu::copyStrided(const void *src, void *dst,
                                     const StridedCopy &copy) {
  const int rank = copy.rank;
  const int64_t eb = copy.elementBytes;
  int64_t outer = 1;
  for (int d = 0; d + 1 < rank; ++d)
    outer *= copy.shape[d];
  const int64_t last = rank ? copy.shape[rank - 1] : 1;
  const int64_t srcLast = rank ? copy.srcStrides[rank - 1] : 1;
  const int64_t dstLast = rank ? copy.dstStrides[rank - 1] : 1;
  if (outer == 0 || last == 0)
    return;
  const char *from = static_cast<const char *>(src) + copy.srcOffset * eb;
  char *to = static_cast<char *>(dst) + copy.dstOffset * eb;
#pragma omp parallel for if (outer * last > (1 << 15))
  for (int64_t o = 0; o < outer; ++o) {
    // The multi-index of row o over dimensions [0, rank - 1).
    int64_t rest = o, srcAt = 0, dstAt = 0;
    for (int d = rank - 2; d >= 0; --d) {
      const int64_t i = rest % copy.shape[d];
      rest /= copy.shape[d];
      srcAt += i * copy.srcStrides[d];
      dstAt += i * copy.dstStrides[d];
    }
    const char *s = from + srcAt * eb;
    char *t = to + dstAt * eb;
    if (srcLast == 1 && dstLast == 1) {
      std::memcpy(t, s, last * eb);
      continue;
    }
    switch (eb) {
    case 1:
      copyRow<1>(s, srcLast, t, dstLast, last);
      break;
    case 2:
      copyRow<2>(s, srcLast, t, dstLast, last);
      break;
    case 4:
      copyRow<4>(s, srcLast, t, dstLast, last);
      break;
    case 8:
      copyRow<8>(s, srcLast, t, dstLast, last);
      break;
    default:
      for (int64_t i = 0; i < last; ++i)
        std::memcpy(t + i * dstLast * eb, s + i * srcLast * eb, eb);
    }
  }
}

void weft::kernels::cpu::concat(const void *const *inputs,
                                const int64_t *rowBytes, int count, void *out,
                                int64_t outer) {
  int64_t outRow = 0;
  for (int k = 0; k < count; ++k)
    outRow += rowBytes[k];
  char *to = static_cast<char *>(out);
#pragma omp parallel for if (outer * outRow > (1 << 17))
  for (int64_t o = 0; o < outer; ++o) {
    int64_t at = o * outRow;
    for (int k = 0; k < count; ++k) {
      std::memcpy(to + at,
                  static_cast<const char *>(inputs[k]) + o * rowBytes[k],
                  rowBytes[k]);
      at += rowBytes[k];
    }
  }
}
