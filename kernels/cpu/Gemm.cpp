// Matrix products through OpenBLAS.
#include "kernels/cpu/Kernels.h"

#include <cblas.h>

#include <algorithm>

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

namespace {
/// Rows of x and of w widened to fp32 at a time by linearBf16: a GEMM of
/// 512 × 512 × in amortises the widening (one conversion per 1024 flops).
constexpr int64_t kBf16Tile = 512;
} // namespace

int64_t weft::kernels::cpu::linearBf16Workspace(int64_t rows, int64_t in,
                                                int64_t out) {
  const int64_t r = std::min(rows, kBf16Tile), o = std::min(out, kBf16Tile);
  return r * in + o * in + r * o;
}

void weft::kernels::cpu::linearBf16(const uint16_t *x, const uint16_t *w,
                                    const uint16_t *bias, uint16_t *y,
                                    int64_t rows, int64_t in, int64_t out,
                                    float *workspace) {
  const int64_t tileRows = std::min(rows, kBf16Tile),
                tileOut = std::min(out, kBf16Tile);
  float *xs = workspace, *ws = xs + tileRows * in, *ys = ws + tileOut * in;
  for (int64_t r0 = 0; r0 < rows; r0 += tileRows) {
    const int64_t r = std::min(tileRows, rows - r0);
    bf16ToF32(x + r0 * in, xs, r * in);
    for (int64_t o0 = 0; o0 < out; o0 += tileOut) {
      const int64_t o = std::min(tileOut, out - o0);
      bf16ToF32(w + o0 * in, ws, o * in);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, o, in, 1.0f, xs,
                  in, ws, in, 0.0f, ys, o);
#pragma omp parallel for if (r * o > (1 << 16))
      for (int64_t i = 0; i < r; ++i)
        for (int64_t j = 0; j < o; ++j)
          y[(r0 + i) * out + o0 + j] = floatToBf16(
              ys[i * o + j] + (bias ? bf16ToFloat(bias[o0 + j]) : 0.0f));
    }
  }
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
