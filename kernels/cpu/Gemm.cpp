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
/// Rows of op(a) and columns of op(b) widened to fp32 at a time by the bf16
/// GEMMs: a GEMM of 512 × 512 × k amortises the widening (one conversion per
/// 1024 flops).
constexpr int64_t kBf16Tile = 512;

/// c = acc + op(a) · op(b) (+ bias[column]) over bf16 a, b, acc, bias and
/// c (acc and bias may be null, c may be acc), `batch` times: tiles of op(a),
/// op(b) and acc widened into `workspace` (matmulBf16Workspace floats),
/// OpenBLAS's fp32 GEMM, each result rounded once.
void tiledBf16Gemm(const uint16_t *a, const uint16_t *b, const uint16_t *acc,
                   const uint16_t *bias, uint16_t *c, int64_t batch, int64_t m,
                   int64_t n, int64_t k, bool transposeA, bool transposeB,
                   int64_t bBatchStride, float *workspace) {
  const int64_t tileM = std::min(m, kBf16Tile), tileN = std::min(n, kBf16Tile);
  // as: op(a)'s rows [m0, m0 + r) as op(a) keeps them ([r, k], or [k, r]
  // transposed); bs: op(b)'s columns [n0, n0 + o) likewise; cs: the fp32
  // product [r, o].
  float *as = workspace, *bs = as + tileM * k, *cs = bs + k * tileN;
  for (int64_t i = 0; i < batch; ++i) {
    const uint16_t *ai = a + i * m * k, *bi = b + i * bBatchStride;
    uint16_t *ci = c + i * m * n;
    const uint16_t *acci = acc ? acc + i * m * n : nullptr;
    for (int64_t m0 = 0; m0 < m; m0 += tileM) {
      const int64_t r = std::min(tileM, m - m0);
      if (!transposeA) // a [m, k]: r whole rows
        bf16ToF32(ai + m0 * k, as, r * k);
      else // a [k, m]: columns m0.. of every row
#pragma omp parallel for if (r * k > (1 << 16))
        for (int64_t kk = 0; kk < k; ++kk)
          bf16ToF32(ai + kk * m + m0, as + kk * r, r);
      for (int64_t n0 = 0; n0 < n; n0 += tileN) {
        const int64_t o = std::min(tileN, n - n0);
        if (transposeB) // b [n, k]: o whole rows
          bf16ToF32(bi + n0 * k, bs, o * k);
        else // b [k, n]: columns n0.. of every row
#pragma omp parallel for if (o * k > (1 << 16))
          for (int64_t kk = 0; kk < k; ++kk)
            bf16ToF32(bi + kk * n + n0, bs + kk * o, o);
        if (acci) // the tile's accumulator, read before c's tile is written
#pragma omp parallel for if (r * o > (1 << 16))
          for (int64_t row = 0; row < r; ++row)
            bf16ToF32(acci + (m0 + row) * n + n0, cs + row * o, o);
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans, r, o, k, 1.0f, as,
                    transposeA ? r : k, bs, transposeB ? k : o,
                    acci ? 1.0f : 0.0f, cs, o);
#pragma omp parallel for if (r * o > (1 << 16))
        for (int64_t row = 0; row < r; ++row)
          for (int64_t j = 0; j < o; ++j) {
            const float v = cs[row * o + j];
            ci[(m0 + row) * n + n0 + j] =
                floatToBf16(bias ? v + bf16ToFloat(bias[n0 + j]) : v);
          }
      }
    }
  }
}
} // namespace

int64_t weft::kernels::cpu::linearBf16Workspace(int64_t rows, int64_t in,
                                                int64_t out) {
  return matmulBf16Workspace(rows, out, in);
}

void weft::kernels::cpu::linearBf16(const uint16_t *x, const uint16_t *w,
                                    const uint16_t *bias, uint16_t *y,
                                    int64_t rows, int64_t in, int64_t out,
                                    float *workspace) {
  // y [rows, out] = x [rows, in] · w [out, in]ᵀ + bias.
  tiledBf16Gemm(x, w, nullptr, bias, y, 1, rows, out, in, false, true, 0,
                workspace);
}

void weft::kernels::cpu::matmul(const float *a, const float *b,
                                const float *acc, float *c, int64_t batch,
                                int64_t m, int64_t n, int64_t k,
                                bool transposeA, bool transposeB,
                                int64_t bBatchStride) {
  if (acc && acc != c)
    std::copy(acc, acc + batch * m * n, c);
  for (int64_t i = 0; i < batch; ++i)
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans,
                transposeB ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                a + i * m * k, transposeA ? m : k, b + i * bBatchStride,
                transposeB ? k : n, acc ? 1.0f : 0.0f, c + i * m * n, n);
}

int64_t weft::kernels::cpu::matmulBf16Workspace(int64_t m, int64_t n,
                                                int64_t k) {
  const int64_t r = std::min(m, kBf16Tile), o = std::min(n, kBf16Tile);
  return r * k + k * o + r * o;
}

void weft::kernels::cpu::matmulBf16(const uint16_t *a, const uint16_t *b,
                                    const uint16_t *acc, uint16_t *c,
                                    int64_t batch, int64_t m, int64_t n,
                                    int64_t k, bool transposeA, bool transposeB,
                                    int64_t bBatchStride, float *workspace) {
  tiledBf16Gemm(a, b, acc, nullptr, c, batch, m, n, k, transposeA, transposeB,
                bBatchStride, workspace);
}
