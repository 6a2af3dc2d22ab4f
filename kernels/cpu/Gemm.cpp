// Matrix products through OpenBLAS.
#include "kernels/cpu/Kernels.h"

#include <cblas.h>

using namespace weft::kernels::cpu;

void weft::kernels::cpu::linear(const float *x, const float *w,
                                const float *bias, float *y, int64_t rows,
                                int64_t in, int64_t out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x,
              in, w, in, 0.0f, y, out);
  if (!bias)
    return;
#pragma omp parallel for
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o)
      y[r * out + o] += bias[o];
}

void weft::kernels::cpu::matmul(const float *a, const float *b, float *c,
                                int64_t batch, int64_t m, int64_t n, int64_t k,
                                bool transposeA, bool transposeB,
                                int64_t bBatchStride) {
  for (int64_t i = 0; i < batch; ++i)
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                transposeB ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                a + i * m * k, transposeA ? m : k, b + i * bBatchStride,
                transposeB ? k : n, 0.0f, c + i * m * n, n);
}
