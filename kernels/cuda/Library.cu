// The CUDA runtime's hand-written kernels: what a plan calls by name (the
// library calls of runtime/cuda/CudaExecutor.cpp) and that is neither a
// generated fusion group nor a cuBLASLt GEMM. Compiled by nvcc for sm_90a
// into a cubin that the runtime embeds and loads through the driver API, so
// the runtime needs no CUDA runtime library. Semantics are those of the CPU
// kernels in kernels/cpu (see kernels/cpu/Kernels.h).
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>

#include "kernels/cuda/Attention.h"

namespace {
constexpr float kNegInf = -__builtin_huge_valf();

__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ float fromFloat<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ long long minimum(long long a, long long b) {
  return a < b ? a : b;
}
__device__ __forceinline__ long long maximum(long long a, long long b) {
  return a < b ? b : a;
}

/// Records the first bad index a kernel meets: status[0] = 1 + position,
/// status[1] = the value. The runtime reads it after the run.
__device__ void reportBad(long long *status, long long position,
                          long long value) {
  if (atomicCAS(reinterpret_cast<unsigned long long *>(status), 0ull,
                static_cast<unsigned long long>(position + 1)) == 0ull)
    status[1] = value;
}
} // namespace

/// out[o, i, :] = table[o, indices[i], :] over `innerBytes` bytes per row.
extern "C" __global__ void weft_gather(const char *table,
                                       const long long *indices, char *out,
                                       long long outer, long long size,
                                       long long innerBytes, long long count,
                                       long long *status) {
  const long long words = innerBytes % 4 == 0 ? innerBytes / 4 : innerBytes;
  const int width = innerBytes % 4 == 0 ? 4 : 1;
  const long long total = outer * count * words;
  for (long long t =
           blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       t < total; t += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long w = t % words, row = t / words;
    const long long i = row % count, o = row / count;
    const long long index = indices[i];
    if (index < 0 || index >= size) {
      reportBad(status, i, index);
      continue;
    }
    const long long from = (o * size + index) * innerBytes + w * width;
    const long long to = row * innerBytes + w * width;
    if (width == 4)
      *reinterpret_cast<unsigned *>(out + to) =
          *reinterpret_cast<const unsigned *>(table + from);
    else
      out[to] = table[from];
  }
}

/// y[o, i, j] = i.
extern "C" __global__ void weft_iota(long long *y, long long outer,
                                     long long size, long long inner) {
  const long long total = outer * size * inner;
  for (long long t =
           blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       t < total; t += static_cast<long long>(gridDim.x) * blockDim.x)
    y[t] = t / inner % size;
}

/// Rotary embedding of x [B·S, H, D] at positions [B·S] with the D/2 inverse
/// frequencies `invFreq` (fp32, as the CPU kernel rounds them): one thread
/// per (token, head, pair).
extern "C" __global__ void weft_rope(const float *x, const long long *positions,
                                     float *y, long long tokens,
                                     long long heads, long long dim,
                                     const float *invFreq, int interleaved) {
  const long long half = dim / 2, total = tokens * heads * half;
  for (long long t =
           blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       t < total; t += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long j = t % half, th = t / half, token = th / heads;
    const float angle = static_cast<float>(positions[token]) * invFreq[j];
    const float c = cosf(angle), s = sinf(angle);
    const long long a = interleaved ? 2 * j : j;
    const long long b = interleaved ? 2 * j + 1 : j + half;
    const float *in = x + th * dim;
    float *o = y + th * dim;
    const float xa = in[a], xb = in[b];
    o[a] = xa * c - xb * s;
    o[b] = xb * c + xa * s;
  }
}

/// A box copy between strided views (kernels::cpu::copyStrided); the
/// geometry is passed by value.
struct StridedCopy {
  static constexpr int kMaxRank = 8;
  int rank;
  long long elementBytes;
  long long shape[kMaxRank];
  long long srcOffset, srcStrides[kMaxRank];
  long long dstOffset, dstStrides[kMaxRank];
};

extern "C" __global__ void weft_copy_strided(const char *src, char *dst,
                                             StridedCopy copy) {
  long long total = 1;
  for (int d = 0; d < copy.rank; ++d)
    total *= copy.shape[d];
  for (long long t =
           blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       t < total; t += static_cast<long long>(gridDim.x) * blockDim.x) {
    long long rest = t, from = copy.srcOffset, to = copy.dstOffset;
    for (int d = copy.rank - 1; d >= 0; --d) {
      const long long i = rest % copy.shape[d];
      rest /= copy.shape[d];
      from += i * copy.srcStrides[d];
      to += i * copy.dstStrides[d];
    }
    switch (copy.elementBytes) {
    case 1:
      dst[to] = src[from];
      break;
    case 2:
      reinterpret_cast<unsigned short *>(dst)[to] =
          reinterpret_cast<const unsigned short *>(src)[from];
      break;
    case 4:
      reinterpret_cast<unsigned *>(dst)[to] =
          reinterpret_cast<const unsigned *>(src)[from];
      break;
    case 8:
      reinterpret_cast<unsigned long long *>(dst)[to] =
          reinterpret_cast<const unsigned long long *>(src)[from];
      break;
    default:
      for (long long b = 0; b < copy.elementBytes; ++b)
        dst[to * copy.elementBytes + b] = src[from * copy.elementBytes + b];
    }
  }
}

/// Softmax (or log-softmax) of x [outer, dim, inner] over dim: one thread
/// per (outer, inner) line. Row-wise softmax inside fusion groups is
/// generated code; this serves the other layouts.
extern "C" __global__ void weft_softmax(const float *x, float *y,
                                        long long outer, long long dim,
                                        long long inner, int logarithm) {
  const long long lines = outer * inner;
  for (long long t =
           blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       t < lines; t += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long o = t / inner, i = t % inner;
    const float *in = x + o * dim * inner + i;
    float *out = y + o * dim * inner + i;
    float max = kNegInf, sum = 0.0f;
    for (long long d = 0; d < dim; ++d)
      max = max < in[d * inner] ? in[d * inner] : max;
    for (long long d = 0; d < dim; ++d)
      sum += expf(in[d * inner] - max);
    const float logSum = logf(sum) + max, inv = 1.0f / sum;
    for (long long d = 0; d < dim; ++d)
      out[d * inner] =
          logarithm ? in[d * inner] - logSum : expf(in[d * inner] - max) * inv;
  }
}

/// Attention (kernels::cpu::attention's semantics and layouts): q [B, Sq,
/// Hq, Dqk], k [B, Skv, Hkv, Dqk], v [B, Skv, Hkv, Dv], out [B, Sq, Hq, Dv];
/// query head h reads kv head h / (Hq / Hkv); queries are the last Sq of Skv
/// positions. kind: 0 full, 1 causal, 2 ALiBi (causal, slopes [Hq]), 3 mask
/// ([B, Sq, Skv] or [Sq, Skv], nonzero attends). window > 0 limits causal and
/// ALiBi queries to the last `window` keys. A query that attends to no key
/// gets zeros.
///
/// A warp per query row and an online softmax in fp32: each block holds
/// kWarps query rows of one (batch, head) and stages tiles of 32 keys and
/// values in shared memory; lane j scores key j of the tile, then each lane
/// accumulates its share of the output dimensions. Memory O(tile), never
/// Sq × Skv.
namespace {
constexpr int kWarps = 4;
constexpr int kTile = 32;
constexpr int kMaxDim = 128; // head dimensions up to this (the runtime checks)
} // namespace

template <typename T>
__device__ __forceinline__ void
attentionRows(const T *q, const T *k, const T *v, const unsigned char *mask,
              const float *slopes, T *out, long long batch, long long sq,
              long long skv, long long heads, long long kvHeads, long long dqk,
              long long dv, int kind, int maskPerBatch, long long window,
              float scale) {
  __shared__ float keys[kTile][kMaxDim + 1];
  __shared__ float values[kTile][kMaxDim];
  __shared__ float queries[kWarps][kMaxDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long bh = blockIdx.y;
  const long long b = bh / heads, h = bh % heads;
  const long long kvh = h / (heads / kvHeads);
  const long long i = static_cast<long long>(blockIdx.x) * kWarps + warp;
  const bool active = i < sq;
  const long long offset = skv - sq, position = offset + i;
  const bool causal = kind == 1 || kind == 2;

  if (active)
    for (long long d = lane; d < dqk; d += 32)
      queries[warp][d] =
          toFloat(q[((b * sq + i) * heads + h) * dqk + d]) * scale;
  // Keys the block's queries can see.
  const long long lastQuery =
      offset + minimum(sq, (blockIdx.x + 1ll) * kWarps) - 1;
  const long long keyEnd = causal ? minimum(skv, lastQuery + 1) : skv;
  long long keyBegin = 0;
  if (causal && window > 0)
    keyBegin =
        maximum(0ll, offset + static_cast<long long>(blockIdx.x) * kWarps -
                         window + 1) /
        kTile * kTile;

  constexpr int kPerLane = kMaxDim / 32;
  float acc[kPerLane];
#pragma unroll
  for (int e = 0; e < kPerLane; ++e)
    acc[e] = 0.0f;
  float max = kNegInf, sum = 0.0f;
  for (long long j0 = keyBegin; j0 < keyEnd; j0 += kTile) {
    __syncthreads(); // the previous tile is consumed
    const int rows = static_cast<int>(minimum(kTile, keyEnd - j0));
    for (int t = threadIdx.x; t < rows * dqk; t += blockDim.x) {
      const int r = t / dqk, d = t % dqk;
      keys[r][d] = toFloat(k[((b * skv + j0 + r) * kvHeads + kvh) * dqk + d]);
    }
    for (int t = threadIdx.x; t < rows * dv; t += blockDim.x) {
      const int r = t / dv, d = t % dv;
      values[r][d] = toFloat(v[((b * skv + j0 + r) * kvHeads + kvh) * dv + d]);
    }
    __syncthreads();
    if (!active)
      continue;
    // Lane `lane` scores key j0 + lane.
    const long long j = j0 + lane;
    float score = kNegInf;
    bool visible = lane < rows;
    if (causal)
      visible =
          visible && j <= position && (window <= 0 || j > position - window);
    if (kind == 3 && visible)
      visible = mask[((maskPerBatch ? b * sq : 0) + i) * skv + j] != 0;
    if (visible) {
      float dot = 0.0f;
      for (long long d = 0; d < dqk; ++d)
        dot += queries[warp][d] * keys[lane][d];
      score = dot;
      if (kind == 2)
        score += slopes[h] * static_cast<float>(j - position);
    }
    float tileMax = score;
    for (int o = 16; o > 0; o >>= 1)
      tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, o));
    if (tileMax == kNegInf)
      continue; // nothing visible in this tile
    const float newMax = fmaxf(max, tileMax);
    const float rescale = max == kNegInf ? 0.0f : expf(max - newMax);
    const float p = score == kNegInf ? 0.0f : expf(score - newMax);
    float tileSum = p;
    for (int o = 16; o > 0; o >>= 1)
      tileSum += __shfl_xor_sync(0xffffffffu, tileSum, o);
    sum = sum * rescale + tileSum;
    max = newMax;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e)
      acc[e] *= rescale;
    for (int r = 0; r < rows; ++r) {
      const float pr = __shfl_sync(0xffffffffu, p, r);
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) {
        const int d = lane + 32 * e;
        if (d < dv)
          acc[e] += pr * values[r][d];
      }
    }
  }
  if (!active)
    return;
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    const int d = lane + 32 * e;
    if (d < dv)
      out[((b * sq + i) * heads + h) * dv + d] = fromFloat<T>(acc[e] * inv);
  }
}

extern "C" __global__ void __launch_bounds__(kWarps * 32)
    weft_attention(const float *q, const float *k, const float *v,
                   const unsigned char *mask, const float *slopes, float *out,
                   long long batch, long long sq, long long skv,
                   long long heads, long long kvHeads, long long dqk,
                   long long dv, int kind, int maskPerBatch, long long window,
                   float scale) {
  attentionRows(q, k, v, mask, slopes, out, batch, sq, skv, heads, kvHeads, dqk,
                dv, kind, maskPerBatch, window, scale);
}

/// The same on bf16 tensors, computed in fp32: the shapes the tensor-core
/// kernel below does not take.
extern "C" __global__ void __launch_bounds__(kWarps * 32)
    weft_attention_bf16_rows(const __nv_bfloat16 *q, const __nv_bfloat16 *k,
                             const __nv_bfloat16 *v, const unsigned char *mask,
                             const float *slopes, __nv_bfloat16 *out,
                             long long batch, long long sq, long long skv,
                             long long heads, long long kvHeads, long long dqk,
                             long long dv, int kind, int maskPerBatch,
                             long long window, float scale) {
  attentionRows(q, k, v, mask, slopes, out, batch, sq, skv, heads, kvHeads, dqk,
                dv, kind, maskPerBatch, window, scale);
}

/// bf16 attention on tensor cores (the FlashAttention-2 forward): a block
/// takes 64 queries of one (batch, head), a warp 16 of them; for each tile of
/// 64 keys, S = Q Kᵀ and O += P V are 16×16×16 bf16 MMAs with fp32
/// accumulation (WMMA), the scores are masked and exponentiated in fp32, and
/// P is rounded to bf16 for the second product (its row sums are taken of the
/// rounded values, so the weights stay normalised). O stays in shared memory
/// in fp32 so that each row can be rescaled by the online softmax. Head
/// dimension D (of q, k and v alike): 64 or 128. Same semantics and layouts
/// as weft_attention; dynamic shared memory: layout(D).bytes
/// (kernels/cuda/Attention.h).
namespace tc {
using namespace weft::kernels::cuda::attention;

/// Rows [row0, row0 + 64) of a [rows, D] slice with stride `stride` elements
/// into shared memory (ld D + 8), zeros past `rows`.
template <int D>
__device__ __forceinline__ void
loadTile(__nv_bfloat16 *dst, const __nv_bfloat16 *src, long long row0,
         long long rows, long long stride) {
  constexpr int chunks = D / 8; // 16 bytes each
  for (int t = threadIdx.x; t < 64 * chunks; t += blockDim.x) {
    const int r = t / chunks, c = t % chunks;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (row0 + r < rows)
      value =
          *reinterpret_cast<const uint4 *>(src + (row0 + r) * stride + c * 8);
    *reinterpret_cast<uint4 *>(dst + r * (D + 8) + c * 8) = value;
  }
}
} // namespace tc

template <int D>
__device__ __forceinline__ void attentionTensorCores(
    const __nv_bfloat16 *q, const __nv_bfloat16 *k, const __nv_bfloat16 *v,
    const unsigned char *mask, const float *slopes, __nv_bfloat16 *out,
    long long sq, long long skv, long long heads, long long kvHeads, int kind,
    int maskPerBatch, long long window, float scale) {
  using namespace nvcuda;
  constexpr tc::Layout L = tc::layout(D);
  extern __shared__ __align__(128) unsigned char shared[];
  auto *sQ = reinterpret_cast<__nv_bfloat16 *>(shared + L.q);
  auto *sK = reinterpret_cast<__nv_bfloat16 *>(shared + L.k);
  auto *sV = reinterpret_cast<__nv_bfloat16 *>(shared + L.v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float *sS = reinterpret_cast<float *>(shared + L.s) + warp * 16 * L.ldS;
  auto *sP =
      reinterpret_cast<__nv_bfloat16 *>(shared + L.p) + warp * 16 * L.ldP;
  float *sO = reinterpret_cast<float *>(shared + L.o) + warp * 16 * L.ldO;

  const long long bh = blockIdx.y, b = bh / heads, h = bh % heads;
  const long long kvh = h / (heads / kvHeads);
  const long long q0 = static_cast<long long>(blockIdx.x) * tc::kQueries;
  const long long offset = skv - sq;
  const bool causal = kind == 1 || kind == 2;
  // The queries of this block: rows of the [sq, D] slice of head h.
  tc::loadTile<D>(sQ, q + (b * sq * heads + h) * D, q0, sq, heads * D);
  for (int t = lane; t < 16 * L.ldO; t += 32)
    sO[t] = 0.0f;
  // Lanes 2r and 2r + 1 own row r of the warp, columns [32·half, +32).
  const int r = lane / 2, half = lane % 2;
  const long long i = q0 + warp * 16 + r, position = offset + i;
  float rowMax = kNegInf, rowSum = 0.0f;

  const long long lastQuery = offset + minimum(sq, q0 + tc::kQueries) - 1;
  const long long keyEnd = causal ? minimum(skv, lastQuery + 1) : skv;
  const long long keyBegin =
      causal && window > 0
          ? maximum(0ll, offset + q0 - window + 1) / tc::kKeys * tc::kKeys
          : 0;
  const __nv_bfloat16 *kHead = k + (b * skv * kvHeads + kvh) * D;
  const __nv_bfloat16 *vHead = v + (b * skv * kvHeads + kvh) * D;
  for (long long j0 = keyBegin; j0 < keyEnd; j0 += tc::kKeys) {
    __syncthreads(); // the previous tile is consumed
    tc::loadTile<D>(sK, kHead, j0, skv, kvHeads * D);
    tc::loadTile<D>(sV, vHead, j0, skv, kvHeads * D);
    __syncthreads();
    // S = Q Kᵀ for the warp's 16 rows.
    for (int n = 0; n < tc::kKeys / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16,
                       wmma::row_major>
            a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16,
                       wmma::col_major>
            kt;
        wmma::load_matrix_sync(a, sQ + warp * 16 * L.ldQ + kk * 16, L.ldQ);
        wmma::load_matrix_sync(kt, sK + n * 16 * L.ldQ + kk * 16, L.ldQ);
        wmma::mma_sync(acc, a, kt, acc);
      }
      wmma::store_matrix_sync(sS + n * 16, acc, L.ldS, wmma::mem_row_major);
    }
    __syncwarp();
    // The online softmax of row r over this tile.
    float *scores = sS + r * L.ldS + half * 32;
    float tileMax = kNegInf;
    for (int c = 0; c < 32; ++c) {
      const long long j = j0 + half * 32 + c;
      bool visible = j < skv && i < sq;
      if (causal)
        visible =
            visible && j <= position && (window <= 0 || j > position - window);
      if (kind == 3 && visible)
        visible = mask[((maskPerBatch ? b * sq : 0) + i) * skv + j] != 0;
      float score = kNegInf;
      if (visible) {
        score = scores[c] * scale;
        if (kind == 2)
          score += slopes[h] * static_cast<float>(j - position);
      }
      scores[c] = score;
      tileMax = fmaxf(tileMax, score);
    }
    tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, 1));
    const float newMax = fmaxf(rowMax, tileMax);
    const float correction =
        newMax == kNegInf ? 1.0f
                          : (rowMax == kNegInf ? 0.0f : expf(rowMax - newMax));
    float tileSum = 0.0f;
    __nv_bfloat16 *probs = sP + r * L.ldP + half * 32;
    for (int c = 0; c < 32; ++c) {
      const __nv_bfloat16 p = __float2bfloat16_rn(
          scores[c] == kNegInf ? 0.0f : expf(scores[c] - newMax));
      probs[c] = p;
      tileSum += __bfloat162float(p);
    }
    tileSum += __shfl_xor_sync(0xffffffffu, tileSum, 1);
    rowSum = rowSum * correction + tileSum;
    rowMax = newMax;
    for (int c = half * (D / 2); c < (half + 1) * (D / 2); ++c)
      sO[r * L.ldO + c] *= correction;
    __syncwarp();
    // O += P V.
    for (int dn = 0; dn < D / 16; ++dn) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, sO + dn * 16, L.ldO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < tc::kKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16,
                       wmma::row_major>
            a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16,
                       wmma::row_major>
            vb;
        wmma::load_matrix_sync(a, sP + kk * 16, L.ldP);
        wmma::load_matrix_sync(vb, sV + kk * 16 * L.ldQ + dn * 16, L.ldQ);
        wmma::mma_sync(acc, a, vb, acc);
      }
      wmma::store_matrix_sync(sO + dn * 16, acc, L.ldO, wmma::mem_row_major);
    }
    __syncwarp();
  }
  if (i >= sq)
    return;
  const float inv = rowSum > 0.0f ? 1.0f / rowSum : 0.0f;
  __nv_bfloat16 *dst = out + ((b * sq + i) * heads + h) * D;
  for (int c = half * (D / 2); c < (half + 1) * (D / 2); ++c)
    dst[c] = __float2bfloat16_rn(sO[r * L.ldO + c] * inv);
}

#define WEFT_TENSOR_CORE_ATTENTION(D)                                          \
  extern "C" __global__ void __launch_bounds__(tc::kWarps * 32)                \
      weft_attention_bf16_d##D(                                                \
          const __nv_bfloat16 *q, const __nv_bfloat16 *k,                      \
          const __nv_bfloat16 *v, const unsigned char *mask,                   \
          const float *slopes, __nv_bfloat16 *out, long long sq,               \
          long long skv, long long heads, long long kvHeads, int kind,         \
          int maskPerBatch, long long window, float scale) {                   \
    attentionTensorCores<D>(q, k, v, mask, slopes, out, sq, skv, heads,        \
                            kvHeads, kind, maskPerBatch, window, scale);       \
  }
WEFT_TENSOR_CORE_ATTENTION(64)
WEFT_TENSOR_CORE_ATTENTION(128)
