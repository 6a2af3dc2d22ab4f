// The CUDA runtime's hand-written kernels: what a plan calls by name (the
// library calls of runtime/cuda/CudaExecutor.cpp) and that is neither a
// generated fusion group nor a cuBLASLt GEMM. Compiled by nvcc for sm_90a
// into a cubin that the runtime embeds and loads through the driver API, so
// the runtime needs no CUDA runtime library. Semantics are those of the CPU
// kernels in kernels/cpu (see kernels/cpu/Kernels.h).
#include <cstdint>

namespace {
constexpr float kNegInf = -__builtin_huge_valf();

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
  for (long long t = blockIdx.x * static_cast<long long>(blockDim.x) +
                     threadIdx.x;
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
  for (long long t = blockIdx.x * static_cast<long long>(blockDim.x) +
                     threadIdx.x;
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
  for (long long t = blockIdx.x * static_cast<long long>(blockDim.x) +
                     threadIdx.x;
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
  for (long long t = blockIdx.x * static_cast<long long>(blockDim.x) +
                     threadIdx.x;
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
  for (long long t = blockIdx.x * static_cast<long long>(blockDim.x) +
                     threadIdx.x;
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
      out[d * inner] = logarithm ? in[d * inner] - logSum
                                 : expf(in[d * inner] - max) * inv;
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

extern "C" __global__ void __launch_bounds__(kWarps * 32)
    weft_attention(const float *q, const float *k, const float *v,
                   const unsigned char *mask, const float *slopes, float *out,
                   long long batch, long long sq, long long skv, long long heads,
                   long long kvHeads, long long dqk, long long dv, int kind,
                   int maskPerBatch, long long window, float scale) {
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
      queries[warp][d] = q[((b * sq + i) * heads + h) * dqk + d] * scale;
  // Keys the block's queries can see.
  const long long lastQuery =
      offset + minimum(sq, (blockIdx.x + 1ll) * kWarps) - 1;
  const long long keyEnd = causal ? minimum(skv, lastQuery + 1) : skv;
  long long keyBegin = 0;
  if (causal && window > 0)
    keyBegin = maximum(0ll, offset + static_cast<long long>(blockIdx.x) *
                                           kWarps -
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
      keys[r][d] = k[((b * skv + j0 + r) * kvHeads + kvh) * dqk + d];
    }
    for (int t = threadIdx.x; t < rows * dv; t += blockDim.x) {
      const int r = t / dv, d = t % dv;
      values[r][d] = v[((b * skv + j0 + r) * kvHeads + kvh) * dv + d];
    }
    __syncthreads();
    if (!active)
      continue;
    // Lane `lane` scores key j0 + lane.
    const long long j = j0 + lane;
    float score = kNegInf;
    bool visible = lane < rows;
    if (causal)
      visible = visible && j <= position &&
                (window <= 0 || j > position - window);
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
      out[((b * sq + i) * heads + h) * dv + d] = acc[e] * inv;
  }
}
