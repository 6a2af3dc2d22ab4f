// The CUDA runtime's hand-written kernels: what a plan calls by name (the
// library calls of runtime/cuda/CudaExecutor.cpp) and that is neither a
// generated fusion group nor a cuBLASLt GEMM. Compiled by nvcc for sm_90a
// into a cubin that the runtime embeds and loads through the driver API, so
// the runtime needs no CUDA runtime library. Semantics are those of the CPU
// kernels in kernels/cpu (see kernels/cpu/Kernels.h). With WEFT_CUDA_ON_HOST
// (tests/integration/CudaOnHost.h) it compiles for the host, to test the
// kernels without a GPU.
#ifndef WEFT_CUDA_ON_HOST // tests/integration/CudaOnHost.h provides it
#include <cuda_bf16.h>
#endif

#include <cstdint>

#include "kernels/cuda/Attention.h"
#include "kernels/cuda/Launch.h"
#include "kernels/cuda/Reduce.h"
#include "kernels/cuda/Training.h"

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
/// per (token, head, pair); bf16 elements widened as read, rounded once.
/// Index arithmetic in I: 32-bit where every index fits (a 64-bit division
/// costs tens of instructions, and each pair takes three).
template <typename I, typename T>
__device__ __forceinline__ void
ropePairs(const T *x, const long long *positions, T *y, I heads, I dim, I total,
          const float *invFreq, int interleaved) {
  const I half = dim / 2;
  for (I t = blockIdx.x * blockDim.x + threadIdx.x; t < total;
       t += gridDim.x * blockDim.x) {
    const I j = t % half, th = t / half, token = th / heads;
    const float angle = static_cast<float>(positions[token]) * invFreq[j];
    const float c = cosf(angle), s = sinf(angle);
    const I a = interleaved ? 2 * j : j;
    const I b = interleaved ? 2 * j + 1 : j + half;
    const T *in = x + static_cast<long long>(th) * dim;
    T *o = y + static_cast<long long>(th) * dim;
    const float xa = toFloat(in[a]), xb = toFloat(in[b]);
    o[a] = fromFloat<T>(xa * c - xb * s);
    o[b] = fromFloat<T>(xb * c + xa * s);
  }
}

template <typename T>
__device__ __forceinline__ void
rope(const T *x, const long long *positions, T *y, long long tokens,
     long long heads, long long dim, const float *invFreq, int interleaved) {
  const long long total = tokens * heads * (dim / 2);
  // Threads stay below 2^31 too (gridFor: at most 2112 blocks of 256).
  if (total * 2 <= 0x7fffffffll)
    ropePairs<unsigned>(x, positions, y, static_cast<unsigned>(heads),
                        static_cast<unsigned>(dim),
                        static_cast<unsigned>(total), invFreq, interleaved);
  else
    ropePairs<long long>(x, positions, y, heads, dim, total, invFreq,
                         interleaved);
}

extern "C" __global__ void weft_rope(const float *x, const long long *positions,
                                     float *y, long long tokens,
                                     long long heads, long long dim,
                                     const float *invFreq, int interleaved) {
  rope(x, positions, y, tokens, heads, dim, invFreq, interleaved);
}

extern "C" __global__ void
weft_rope_bf16(const __nv_bfloat16 *x, const long long *positions,
               __nv_bfloat16 *y, long long tokens, long long heads,
               long long dim, const float *invFreq, int interleaved) {
  rope(x, positions, y, tokens, heads, dim, invFreq, interleaved);
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

/// Cross-entropy of logits [tokens, vocab] against labels [tokens]
/// (kernels::cpu::crossEntropy): a block per token writes its loss, in
/// double, to `losses` (0 for an ignored label; a label outside [0, vocab)
/// is reported). weft_cross_entropy_reduce then sums them in a fixed order.
template <typename T>
__device__ void crossEntropy(const T *logits, const long long *labels,
                             double *losses, long long vocab,
                             long long ignoreIndex, long long *status) {
  __shared__ double partial[32];
  __shared__ float maxima[32];
  const long long token = blockIdx.x;
  const long long label = labels[token];
  if (label == ignoreIndex || label < 0 || label >= vocab) {
    if (threadIdx.x == 0) {
      losses[token] = 0.0;
      if (label != ignoreIndex)
        reportBad(status, token, label);
    }
    return;
  }
  const T *row = logits + token * vocab;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warps = blockDim.x / 32;
  float max = kNegInf;
  for (long long c = threadIdx.x; c < vocab; c += blockDim.x)
    max = fmaxf(max, toFloat(row[c]));
  for (int o = 16; o > 0; o >>= 1)
    max = fmaxf(max, __shfl_xor_sync(0xffffffffu, max, o));
  if (lane == 0)
    maxima[warp] = max;
  __syncthreads();
  max = kNegInf;
  for (int w = 0; w < warps; ++w)
    max = fmaxf(max, maxima[w]);
  double sum = 0.0;
  for (long long c = threadIdx.x; c < vocab; c += blockDim.x)
    sum += exp(static_cast<double>(toFloat(row[c]) - max));
  for (int o = 16; o > 0; o >>= 1)
    sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0)
    partial[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < warps; ++w)
      total += partial[w];
    losses[token] = log(total) + max - toFloat(row[label]);
  }
}

extern "C" __global__ void
weft_cross_entropy(const float *logits, const long long *labels, double *losses,
                   long long vocab, long long ignoreIndex, long long *status) {
  crossEntropy(logits, labels, losses, vocab, ignoreIndex, status);
}

/// weft_cross_entropy of bf16 logits, widened as they are read.
extern "C" __global__ void
weft_cross_entropy_bf16(const __nv_bfloat16 *logits, const long long *labels,
                        double *losses, long long vocab, long long ignoreIndex,
                        long long *status) {
  crossEntropy(logits, labels, losses, vocab, ignoreIndex, status);
}

/// out[0] = Σ losses (reduction 1, sum) or their mean over the tokens whose
/// label is not ignoreIndex (reduction 0; 0 when there are none); or each
/// loss as it is (reduction 2). One block of 256 threads, a fixed order.
extern "C" __global__ void
weft_cross_entropy_reduce(const double *losses, const long long *labels,
                          float *out, long long tokens, long long ignoreIndex,
                          int reduction) {
  if (reduction == 2) {
    for (long long t = threadIdx.x; t < tokens; t += blockDim.x)
      out[t] = static_cast<float>(losses[t]);
    return;
  }
  __shared__ double sums[256];
  __shared__ long long counts[256];
  double sum = 0.0;
  long long counted = 0;
  for (long long t = threadIdx.x; t < tokens; t += blockDim.x) {
    sum += losses[t];
    counted += labels[t] != ignoreIndex;
  }
  sums[threadIdx.x] = sum;
  counts[threadIdx.x] = counted;
  __syncthreads();
  if (threadIdx.x != 0)
    return;
  double total = 0.0;
  long long all = 0;
  for (int i = 0; i < 256; ++i) {
    total += sums[i];
    all += counts[i];
  }
  if (reduction == 0)
    total = all ? total / static_cast<double>(all) : 0.0;
  out[0] = static_cast<float>(total);
}

using weft::kernels::cuda::ReduceShape;

/// The offset of element `index` (below the product of `shape`): no division
/// for the outermost dimension, so none at all for one dimension.
__device__ long long reduceOffset(long long index, int rank,
                                  const long long *shape,
                                  const long long *stride) {
  long long offset = 0;
  for (int d = rank - 1; d > 0; --d) {
    offset += index % shape[d] * stride[d];
    index /= shape[d];
  }
  return rank > 0 ? offset + index * stride[0] : 0;
}

/// max (kind 1) or min (kind 2) of best and v, NaN propagating.
__device__ float reducePick(float best, float v, int kind) {
  if (kind == 1)
    return v > best || v != v ? v : best;
  if (kind == 2)
    return v < best || v != v ? v : best;
  return best;
}

/// y = x reduced over the dimensions ReduceShape marks (kernels::cpu::reduce):
/// sums in double, NaN propagating through max and min. kind: 0 sum, 1 max,
/// 2 min, 3 mean. 256 threads a block, partial results combined in a fixed
/// order: where the innermost dimension is reduced, a block per output
/// (consecutive threads read consecutive elements); else a block per 32
/// consecutive outputs, 8 lanes splitting the reduced elements.
extern "C" __global__ void weft_reduce(const float *x, float *y, ReduceShape r,
                                       int kind) {
  __shared__ double sums[256];
  __shared__ float bests[256];
  const bool perBlock = r.innerReduced != 0;
  const int lanes = perBlock ? 256 : 8;
  const int lane = perBlock ? threadIdx.x : threadIdx.x / 32;
  const long long tiles = perBlock ? r.outputs : (r.outputs + 31) / 32;
  const float none = kind == 1 ? kNegInf : -kNegInf;
  for (long long tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const long long o = perBlock ? tile : tile * 32 + threadIdx.x % 32;
    double sum = 0.0;
    float best = none;
    if (o < r.outputs) {
      const float *base =
          x + reduceOffset(o, r.keptRank, r.keptShape, r.keptStride);
      // kUnroll loads in flight before their sums, which keep their order.
      constexpr int kUnroll = 8;
      long long i = lane;
      for (; i + (kUnroll - 1) * lanes < r.count; i += kUnroll * lanes) {
        float v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
          v[u] = base[reduceOffset(i + u * lanes, r.reducedRank, r.reducedShape,
                                   r.reducedStride)];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          sum += v[u];
          best = reducePick(best, v[u], kind);
        }
      }
      for (; i < r.count; i += lanes) {
        const float v = base[reduceOffset(i, r.reducedRank, r.reducedShape,
                                          r.reducedStride)];
        sum += v;
        best = reducePick(best, v, kind);
      }
    }
    sums[threadIdx.x] = sum;
    bests[threadIdx.x] = best;
    __syncthreads();
    // Lane l's partial sits at l (a block per output) or at l * 32 + column.
    const int step = perBlock ? 1 : 32;
    for (int half = lanes / 2; half > 0; half /= 2) {
      if (static_cast<int>(threadIdx.x) < half * step) {
        sums[threadIdx.x] += sums[threadIdx.x + half * step];
        bests[threadIdx.x] = reducePick(bests[threadIdx.x],
                                        bests[threadIdx.x + half * step], kind);
      }
      __syncthreads();
    }
    if (static_cast<int>(threadIdx.x) < step && o < r.outputs)
      y[o] = kind == 0   ? static_cast<float>(sums[threadIdx.x])
             : kind == 3 ? static_cast<float>(sums[threadIdx.x] /
                                              static_cast<double>(r.count))
                         : bests[threadIdx.x];
    __syncthreads(); // the next tile reuses the shared partials
  }
}

/// out[a, indices[i], :] += updates[a, i, :] over out = base (copied by the
/// runtime first), in index order as kernels::cpu::scatterAdd adds, so the
/// two agree to the bit. A thread per (a, column), kScatterThreads of them
/// to a block along x (kernels::cuda::scatterAddGrid); y splits out's rows
/// into ranges, so blocks never touch the same element. Each block walks the
/// indices in tiles of kScatterThreads, lists in order the tokens whose row
/// is in its range, and
/// adds them kScatterBatch at a time: the batch's rows read together, repeats
/// folded in order in registers, then written back — memory latency overlaps
/// instead of costing one round trip per token (as when a thread per column
/// looped over every token).
using weft::kernels::cuda::kScatterThreads;
namespace {
constexpr int kScatterBatch = 8;
} // namespace

extern "C" __global__ void __launch_bounds__(kScatterThreads)
    weft_scatter_add(const long long *indices, const float *updates, float *out,
                     long long outer, long long size, long long inner,
                     long long count, long long *status) {
  __shared__ long long rows[kScatterThreads];
  __shared__ int tokens[kScatterThreads];
  __shared__ int warpTotals[kScatterThreads / 32];
  const long long first = size * blockIdx.y / gridDim.y,
                  last = size * (blockIdx.y + 1) / gridDim.y;
  const long long t =
      blockIdx.x * static_cast<long long>(kScatterThreads) + threadIdx.x;
  const bool active = t < outer * inner;
  const long long a = t / inner, column = t % inner;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (long long tile = 0; tile < count; tile += kScatterThreads) {
    const long long i = tile + threadIdx.x;
    const long long index = i < count ? indices[i] : first;
    const bool bad = i < count && (index < 0 || index >= size);
    const bool mine = i < count && index >= first && index < last;
    // The block's inclusive count of listed tokens (low 16 bits) and of bad
    // indices (high): within the warp by shuffles, then across warps.
    int counts = (mine ? 1 : 0) | (bad ? 1 << 16 : 0);
    for (int d = 1; d < 32; d *= 2) {
      const int below =
          __shfl_sync(0xffffffffu, counts, lane >= d ? lane - d : lane);
      if (lane >= d)
        counts += below;
    }
    if (lane == 31)
      warpTotals[warp] = counts;
    __syncthreads();
    int total = 0;
    for (int w = 0; w < kScatterThreads / 32; ++w) {
      if (w < warp)
        counts += warpTotals[w];
      total += warpTotals[w];
    }
    if (total >> 16 != 0) { // every block stops at the tile; one reports
      if (bad && counts >> 16 == 1 && blockIdx.x == 0 && blockIdx.y == 0)
        reportBad(status, i, index);
      return;
    }
    if (mine) {
      rows[(counts & 0xffff) - 1] = index;
      tokens[(counts & 0xffff) - 1] = static_cast<int>(threadIdx.x);
    }
    __syncthreads();
    const int listed = total & 0xffff;
    for (int b = 0; active && b < listed; b += kScatterBatch) {
      long long row[kScatterBatch];
      float add[kScatterBatch], value[kScatterBatch];
      int owner[kScatterBatch]; // the batch's first entry with the same row
#pragma unroll
      for (int j = 0; j < kScatterBatch; ++j) {
        const bool listedHere = b + j < listed;
        row[j] = listedHere ? rows[b + j] : -1 - j; // never a repeat
        add[j] =
            listedHere
                ? updates[(a * count + tile + tokens[b + j]) * inner + column]
                : 0.0f;
        owner[j] = j;
#pragma unroll
        for (int k = j - 1; k >= 0; --k)
          if (row[k] == row[j])
            owner[j] = k;
      }
#pragma unroll
      for (int j = 0; j < kScatterBatch; ++j)
        value[j] = owner[j] == j && row[j] >= 0
                       ? out[(a * size + row[j]) * inner + column]
                       : 0.0f;
#pragma unroll
      for (int k = 0; k < kScatterBatch; ++k) // value[k] alone: no local array
#pragma unroll
        for (int j = k; j < kScatterBatch; ++j)
          value[k] = owner[j] == k ? value[k] + add[j] : value[k];
#pragma unroll
      for (int j = 0; j < kScatterBatch; ++j)
        if (owner[j] == j && row[j] >= 0)
          out[(a * size + row[j]) * inner + column] = value[j];
    }
    __syncthreads(); // the next tile reuses the list and the warps' totals
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
              float scale, float *lse) {
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
  if (lse && lane == 0) // +∞ for a row that attends nothing
    lse[(b * heads + h) * sq + i] = sum > 0.0f ? max + logf(sum) : -kNegInf;
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
                   float scale, float *lse) {
  attentionRows(q, k, v, mask, slopes, out, batch, sq, skv, heads, kvHeads, dqk,
                dv, kind, maskPerBatch, window, scale, lse);
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
                             long long window, float scale, float *lse) {
  attentionRows(q, k, v, mask, slopes, out, batch, sq, skv, heads, kvHeads, dqk,
                dv, kind, maskPerBatch, window, scale, lse);
}

/// bf16 attention on tensor cores, FlashAttention-2's forward: a block takes
/// 64 queries of one (batch, head), each of its 4 warps 16 of them, and
/// streams tiles of 64 keys and values through shared memory. S = Q Kᵀ and
/// O += P V are mma.sync m16n8k16 bf16 products with fp32 accumulators held
/// in registers (fragment layouts as the PTX ISA gives them); the scores are
/// masked and exponentiated in fp32 (online softmax), and P is rounded to
/// bf16 for the second product, its row sums taken of the rounded values so
/// that the weights stay normalised. Head dimension D (q, k and v alike): 64
/// or 128. Same semantics and layouts as weft_attention; dynamic shared
/// memory: layout(D).bytes (kernels/cuda/Attention.h).
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

/// Two adjacent bf16 of shared memory as one register.
__device__ __forceinline__ unsigned pair(const __nv_bfloat16 *p) {
  return *reinterpret_cast<const unsigned *>(p);
}
/// Two bf16 from two places (low half first).
__device__ __forceinline__ unsigned pair(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  return static_cast<unsigned>(__bfloat16_as_ushort(lo)) |
         static_cast<unsigned>(__bfloat16_as_ushort(hi)) << 16;
}

/// d += a · b for one 16×8×16 tile (row-major A, column-major B).
__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4],
                                    unsigned b0, unsigned b1) {
#ifdef WEFT_CUDA_ON_HOST
  weftemu::mmaM16N8K16(d, a, b0, b1);
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}
} // namespace tc

template <int D>
__device__ __forceinline__ void attentionTensorCores(
    const __nv_bfloat16 *q, const __nv_bfloat16 *k, const __nv_bfloat16 *v,
    const unsigned char *mask, const float *slopes, __nv_bfloat16 *out,
    long long sq, long long skv, long long heads, long long kvHeads, int kind,
    int maskPerBatch, long long window, float scale, float *lse) {
  constexpr tc::Layout L = tc::layout(D);
  constexpr int ld = L.ldQ;
#ifdef WEFT_CUDA_ON_HOST
  WEFT_DYNAMIC_SHARED(shared);
#else
  extern __shared__ __align__(128) unsigned char shared[];
#endif
  auto *sQ = reinterpret_cast<__nv_bfloat16 *>(shared + L.q);
  auto *sK = reinterpret_cast<__nv_bfloat16 *>(shared + L.k);
  auto *sV = reinterpret_cast<__nv_bfloat16 *>(shared + L.v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // The PTX fragment coordinates: group g holds rows g and g + 8, thread t
  // of the group columns 2t and 2t + 1 (and + 8).
  const int g = lane / 4, t = lane % 4;

  const long long bh = blockIdx.y, b = bh / heads, h = bh % heads;
  const long long kvh = h / (heads / kvHeads);
  const long long q0 = static_cast<long long>(blockIdx.x) * tc::kQueries;
  const long long offset = skv - sq;
  const bool causal = kind == 1 || kind == 2;
  tc::loadTile<D>(sQ, q + (b * sq * heads + h) * D, q0, sq, heads * D);
  __syncthreads();
  // The warp's queries as A fragments, one per 16 columns of D.
  unsigned qa[D / 16][4];
  const __nv_bfloat16 *qRows = sQ + warp * 16 * ld;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    qa[kk][0] = tc::pair(qRows + g * ld + kk * 16 + 2 * t);
    qa[kk][1] = tc::pair(qRows + (g + 8) * ld + kk * 16 + 2 * t);
    qa[kk][2] = tc::pair(qRows + g * ld + kk * 16 + 8 + 2 * t);
    qa[kk][3] = tc::pair(qRows + (g + 8) * ld + kk * 16 + 8 + 2 * t);
  }
  float o[D / 8][4];
#pragma unroll
  for (int dn = 0; dn < D / 8; ++dn)
    o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
  // Rows g (index 0) and g + 8 (index 1) of the warp.
  const long long row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float rowMax[2] = {kNegInf, kNegInf}, rowSum[2] = {0.0f, 0.0f};
  // The same sums of the probabilities before rounding: the log-sum-exp the
  // backward reads (its fp32 probabilities).
  float exactSum[2] = {0.0f, 0.0f};

  const long long lastQuery = offset + minimum(sq, q0 + tc::kQueries) - 1;
  const long long keyEnd = causal ? minimum(skv, lastQuery + 1) : skv;
  const long long keyBegin =
      causal && window > 0
          ? maximum(0ll, offset + q0 - window + 1) / tc::kKeys * tc::kKeys
          : 0;
  // The positions the warp's queries hold: tiles past the last are all
  // masked, tiles up to the first (and inside every window) all seen.
  const long long warpLast = offset + minimum(sq - 1, q0 + warp * 16 + 15);
  const long long warpFirst = offset + q0 + warp * 16;
  const bool warpRowsInside = q0 + warp * 16 + 15 < sq;
  constexpr float kLog2e = 1.4426950408889634f;
  const float scaleLog2 = scale * kLog2e;
  const float slopeLog2 = kind == 2 ? slopes[h] * kLog2e : 0.0f;
  const __nv_bfloat16 *kHead = k + (b * skv * kvHeads + kvh) * D;
  const __nv_bfloat16 *vHead = v + (b * skv * kvHeads + kvh) * D;
  for (long long j0 = keyBegin; j0 < keyEnd; j0 += tc::kKeys) {
    __syncthreads(); // the previous tile is consumed
    tc::loadTile<D>(sK, kHead, j0, skv, kvHeads * D);
    tc::loadTile<D>(sV, vHead, j0, skv, kvHeads * D);
    __syncthreads();
    if (causal && j0 > warpLast)
      continue;
    // S = Q Kᵀ: eight 16×8 tiles of keys.
    float s[tc::kKeys / 8][4];
#pragma unroll
    for (int n = 0; n < tc::kKeys / 8; ++n) {
      s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
      const __nv_bfloat16 *key = sK + (n * 8 + g) * ld;
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        tc::mma(s[n], qa[kk], tc::pair(key + kk * 16 + 2 * t),
                tc::pair(key + kk * 16 + 8 + 2 * t));
    }
    // Masks, scale and the online softmax of rows g and g + 8, in base 2
    // (scores times log2 e, so that exp2f serves). A tile every query of the
    // warp sees whole takes no masks.
    float tileMax[2] = {kNegInf, kNegInf};
    const bool whole = (kind == 0 || kind == 1) && j0 + tc::kKeys <= skv &&
                       warpRowsInside &&
                       (!causal || (j0 + tc::kKeys - 1 <= warpFirst &&
                                    (window <= 0 || j0 > warpLast - window)));
    if (whole) {
#pragma unroll
      for (int n = 0; n < tc::kKeys / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[n][e] *= scaleLog2;
          tileMax[e / 2] = fmaxf(tileMax[e / 2], s[n][e]);
        }
    } else {
#pragma unroll
      for (int n = 0; n < tc::kKeys / 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int half = e / 2; // row g or g + 8
          const long long i = row[half], position = offset + i;
          const long long j = j0 + n * 8 + 2 * t + e % 2;
          bool visible = j < skv && i < sq;
          if (causal)
            visible = visible && j <= position &&
                      (window <= 0 || j > position - window);
          if (kind == 3 && visible)
            visible = mask[((maskPerBatch ? b * sq : 0) + i) * skv + j] != 0;
          float score = kNegInf;
          if (visible) {
            score = s[n][e] * scaleLog2;
            if (kind == 2)
              score += slopeLog2 * static_cast<float>(j - position);
          }
          s[n][e] = score;
          tileMax[half] = fmaxf(tileMax[half], score);
        }
    }
    float correction[2], newMax[2], tileSum[2] = {0.0f, 0.0f},
                                    tileExact[2] = {0.0f, 0.0f};
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      tileMax[half] =
          fmaxf(tileMax[half], __shfl_xor_sync(0xffffffffu, tileMax[half], 1));
      tileMax[half] =
          fmaxf(tileMax[half], __shfl_xor_sync(0xffffffffu, tileMax[half], 2));
      newMax[half] = fmaxf(rowMax[half], tileMax[half]);
      correction[half] =
          newMax[half] == kNegInf
              ? 1.0f
              : (rowMax[half] == kNegInf ? 0.0f
                                         : exp2f(rowMax[half] - newMax[half]));
    }
    // P in bf16, laid out as the A fragments of P V (16 keys each).
    unsigned pa[tc::kKeys / 16][4];
#pragma unroll
    for (int n = 0; n < tc::kKeys / 8; ++n) {
      __nv_bfloat16 p[4];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int half = e / 2;
        const float exact =
            s[n][e] == kNegInf ? 0.0f : exp2f(s[n][e] - newMax[half]);
        p[e] = __float2bfloat16_rn(exact);
        tileSum[half] += __bfloat162float(p[e]);
        tileExact[half] += exact;
      }
      pa[n / 2][(n % 2) * 2] = tc::pair(p[0], p[1]);     // row g
      pa[n / 2][(n % 2) * 2 + 1] = tc::pair(p[2], p[3]); // row g + 8
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      tileSum[half] += __shfl_xor_sync(0xffffffffu, tileSum[half], 1);
      tileSum[half] += __shfl_xor_sync(0xffffffffu, tileSum[half], 2);
      rowSum[half] = rowSum[half] * correction[half] + tileSum[half];
      if (lse) {
        tileExact[half] += __shfl_xor_sync(0xffffffffu, tileExact[half], 1);
        tileExact[half] += __shfl_xor_sync(0xffffffffu, tileExact[half], 2);
        exactSum[half] = exactSum[half] * correction[half] + tileExact[half];
      }
      rowMax[half] = newMax[half];
    }
    // O = O · correction + P V.
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn) {
      o[dn][0] *= correction[0];
      o[dn][1] *= correction[0];
      o[dn][2] *= correction[1];
      o[dn][3] *= correction[1];
      const __nv_bfloat16 *value = sV + dn * 8 + g;
#pragma unroll
      for (int kk = 0; kk < tc::kKeys / 16; ++kk) {
        const __nv_bfloat16 *keyRow = value + (kk * 16 + 2 * t) * ld;
        tc::mma(o[dn], pa[kk], tc::pair(keyRow[0], keyRow[ld]),
                tc::pair(keyRow[8 * ld], keyRow[9 * ld]));
      }
    }
  }
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const long long i = row[half];
    if (i >= sq)
      continue;
    const float inv = rowSum[half] > 0.0f ? 1.0f / rowSum[half] : 0.0f;
    // Natural log: the scores were kept in base 2.
    if (lse && t == 0)
      lse[(b * heads + h) * sq + i] =
          exactSum[half] > 0.0f
              ? (rowMax[half] + log2f(exactSum[half])) * 0.6931471805599453f
              : -kNegInf;
    __nv_bfloat16 *dst = out + ((b * sq + i) * heads + h) * D;
#pragma unroll
    for (int dn = 0; dn < D / 8; ++dn)
      *reinterpret_cast<__nv_bfloat162 *>(dst + dn * 8 + 2 * t) =
          __floats2bfloat162_rn(o[dn][2 * half] * inv,
                                o[dn][2 * half + 1] * inv);
  }
}

#define WEFT_TENSOR_CORE_ATTENTION(D)                                          \
  extern "C" __global__ void __launch_bounds__(tc::kWarps * 32)                \
      weft_attention_bf16_d##D(                                                \
          const __nv_bfloat16 *q, const __nv_bfloat16 *k,                      \
          const __nv_bfloat16 *v, const unsigned char *mask,                   \
          const float *slopes, __nv_bfloat16 *out, long long sq,               \
          long long skv, long long heads, long long kvHeads, int kind,         \
          int maskPerBatch, long long window, float scale, float *lse) {       \
    attentionTensorCores<D>(q, k, v, mask, slopes, out, sq, skv, heads,        \
                            kvHeads, kind, maskPerBatch, window, scale, lse);  \
  }
WEFT_TENSOR_CORE_ATTENTION(64)
WEFT_TENSOR_CORE_ATTENTION(128)

// ---------------------------------------------------------------------------
// Training: the global gradient norm, AdamW, and attention's backward.

namespace tr = weft::kernels::cuda::training;

/// partials[blockIdx.x] = Σ (x·scale)² over the block's grid-stride share of
/// `n` values of x (f32, or bf16 when `bf16`), each x·scale rounded to f32
/// and squared and summed in double (kernels::cpu::sumOfSquares). The
/// runtime launches tr::kNormBlocks blocks of tr::kNormThreads, so the order
/// of the sums is the same on every GPU.
extern "C" __global__ void __launch_bounds__(tr::kNormThreads)
    weft_sum_squares(const void *x, long long n, int bf16, float scale,
                     double *partials) {
  __shared__ double warpSums[tr::kNormThreads / 32];
  auto value = [&](long long i) {
    return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16 *>(x)[i])
                : static_cast<const float *>(x)[i];
  };
  double sum = 0.0;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
  // kUnroll loads in flight before their squares are added, in order (a
  // load at a time left 16 warps an SM waiting on memory).
  constexpr int kUnroll = 8;
  for (; i + (kUnroll - 1) * stride < n; i += kUnroll * stride) {
    float f[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      f[u] = value(i + u * stride);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const double v = __fmul_rn(f[u], scale);
      sum += v * v;
    }
  }
  for (; i < n; i += stride) {
    const double v = __fmul_rn(value(i), scale);
    sum += v * v;
  }
  for (int o = 16; o > 0; o >>= 1)
    sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (threadIdx.x % 32 == 0)
    warpSums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < tr::kNormThreads / 32; ++w)
      total += warpSums[w];
    partials[blockIdx.x] = total;
  }
}

/// total[0] = Σ partials[0, count), summed in a fixed order by one block of
/// tr::kNormThreads threads, and norm[0] = its square root unless norm is
/// null (the total is then added over a mesh group first: weft_norm_root).
extern "C" __global__ void __launch_bounds__(tr::kNormThreads)
    weft_norm_finish(const double *partials, long long count, double *total,
                     float *norm) {
  __shared__ double sums[tr::kNormThreads];
  double sum = 0.0;
  for (long long i = threadIdx.x; i < count; i += blockDim.x)
    sum += partials[i];
  sums[threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.x != 0)
    return;
  double whole = 0.0;
  for (int t = 0; t < tr::kNormThreads; ++t)
    whole += sums[t];
  total[0] = whole;
  if (norm)
    norm[0] = static_cast<float>(sqrt(whole));
}

/// norm[0] = √total[0]: the norm of gradients held in blocks, after their
/// squares were added over the group.
extern "C" __global__ void weft_norm_root(const double *total, float *norm) {
  if (blockIdx.x == 0 && threadIdx.x == 0)
    norm[0] = static_cast<float>(sqrt(total[0]));
}

/// AdamW in place on `n` parameters as kernels::cpu::adamwUpdate computes it,
/// operation for operation (each multiply, divide and square root rounded on
/// its own, fused only where torch's kernels fuse), so a step equals the CPU
/// runtime's to the bit. lr (f64), step (i64) and the gradient norm (f32)
/// are read from the plan's buffers; a step below 1 is reported in `status`
/// and changes nothing. Where `rounded` is not null it gets the new weights
/// rounded to bf16 (a bf16 parameter's copy of its master weights).
extern "C" __global__ void weft_adamw(float *master, float *m, float *v,
                                      const void *grad, __nv_bfloat16 *rounded,
                                      long long n, const double *lr,
                                      const long long *step, const float *norm,
                                      tr::AdamW a, long long *status) {
  // decay, 1 - β1, β2, 1 - β2, √(1 - β2^t), ε, -lr / (1 - β1^t), clip scale
  __shared__ float c[8];
  const long long t = *step;
  if (t < 1) {
    if (blockIdx.x == 0 && threadIdx.x == 0)
      reportBad(status, 0, t);
    return;
  }
  if (threadIdx.x == 0) {
    const double rate = *lr;
    const double bias1 = 1.0 - pow(a.beta1, static_cast<double>(t));
    const double bias2 = 1.0 - pow(a.beta2, static_cast<double>(t));
    c[0] = static_cast<float>(1.0 - rate * a.weightDecay);
    c[1] = static_cast<float>(1.0 - a.beta1);
    c[2] = static_cast<float>(a.beta2);
    c[3] = static_cast<float>(1.0 - a.beta2);
    c[4] = static_cast<float>(sqrt(bias2));
    c[5] = static_cast<float>(a.eps);
    c[6] = static_cast<float>(-(rate / bias1));
    c[7] = a.maxGradNorm > 0
               ? fminf(1.0f, __fdiv_rn(static_cast<float>(a.maxGradNorm),
                                       __fadd_rn(*norm, 1e-6f)))
               : 1.0f;
  }
  __syncthreads();
  for (long long i =
           blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<long long>(gridDim.x) * blockDim.x) {
    float g =
        a.bf16Grad
            ? __bfloat162float(static_cast<const __nv_bfloat16 *>(grad)[i])
            : static_cast<const float *>(grad)[i];
    if (a.gradMultiplier != 1.0f)
      g = __fmul_rn(g, a.gradMultiplier);
    if (c[7] != 1.0f)
      g = __fmul_rn(g, c[7]);
    float p = __fmul_rn(master[i], c[0]);
    const float mi = fmaf(c[1], __fsub_rn(g, m[i]), m[i]);
    const float vi = fmaf(__fmul_rn(c[3], g), g, __fmul_rn(v[i], c[2]));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), c[4]), c[5]);
    p = __fadd_rn(p, __fdiv_rn(__fmul_rn(c[6], mi), denom));
    master[i] = p;
    m[i] = mi;
    v[i] = vi;
    if (rounded)
      rounded[i] = __float2bfloat16_rn(p);
  }
}

/// Attention's backward in fp32 (kernels::cpu::attentionBackward's semantics:
/// the probabilities recomputed from each query row's log-sum-exp, never an
/// Sq × Skv matrix), in three kernels on one stream, each a warp per row with
/// tiles of 32 rows of the other side staged in shared memory, and each
/// output written by one warp in a fixed order (deterministic):
///   weft_attention_grad_stats: per query row, L_i and δ_i = dout_i · out_i;
///   weft_attention_grad_kv: per key row of a kv head, dv_j = Σ_i p_ij dout_i
///     and dk_j = scale Σ_i ds_ij q_i over every query head of its group;
///   weft_attention_grad_q: per query row, dq_i = scale Σ_j ds_ij k_j;
/// with p_ij = e^(s_ij − L_i) and ds_ij = p_ij (dout_i · v_j − δ_i).
namespace {
__device__ __forceinline__ bool attends(const tr::AttentionGrad &p, long long b,
                                        long long i, long long j) {
  if (p.kind == 1 || p.kind == 2) {
    const long long position = p.skv - p.sq + i;
    return j <= position && (p.window <= 0 || j > position - p.window);
  }
  if (p.kind == 3)
    return reinterpret_cast<const unsigned char *>(
               p.mask)[((p.maskPerBatch ? b * p.sq : 0) + i) * p.skv + j] != 0;
  return true;
}

/// s_ij: scale · q_i · k_j (+ ALiBi's bias), the same chain of fused
/// multiply-adds in every kernel, so p_ij ≤ 1 wherever L_i came from.
__device__ __forceinline__ float score(const tr::AttentionGrad &p,
                                       const float *query, const float *key,
                                       long long h, long long i, long long j) {
  float dot = 0.0f;
  for (long long d = 0; d < p.dimQK; ++d)
    dot = fmaf(query[d], key[d], dot);
  float s = dot * p.scale;
  if (p.kind == 2)
    s += reinterpret_cast<const float *>(p.slopes)[h] *
         static_cast<float>(j - (p.skv - p.sq + i));
  return s;
}

/// The keys [begin, end) that queries [i0, i1) may attend, before the mask.
__device__ __forceinline__ void keysOf(const tr::AttentionGrad &p, long long i0,
                                       long long i1, long long &begin,
                                       long long &end) {
  begin = 0;
  end = p.skv;
  if (p.kind == 1 || p.kind == 2) {
    const long long offset = p.skv - p.sq;
    end = minimum(p.skv, offset + i1);
    if (p.window > 0)
      begin = maximum(0ll, offset + i0 - p.window + 1);
  }
}

/// The queries [begin, end) that may attend keys [j0, j1), before the mask.
__device__ __forceinline__ void queriesOf(const tr::AttentionGrad &p,
                                          long long j0, long long j1,
                                          long long &begin, long long &end) {
  begin = 0;
  end = p.sq;
  if (p.kind == 1 || p.kind == 2) {
    const long long offset = p.skv - p.sq;
    begin = maximum(0ll, j0 - offset);
    if (p.window > 0)
      end = minimum(p.sq, j1 - 1 + p.window - offset);
  }
}

constexpr int kGradWarps = tr::kAttentionGradWarps;

/// Rows [first, first + rows) of head `head` of a [batch, len, heads, dim]
/// tensor (batch b) into a shared tile, tile[r][d], by the whole block.
template <typename T, int LD>
__device__ __forceinline__ void
stage(float (*tile)[LD], unsigned long long src, long long b, long long len,
      long long heads, long long head, long long dim, long long first,
      int rows) {
  const T *x = reinterpret_cast<const T *>(src);
  for (int t = threadIdx.x; t < rows * dim; t += blockDim.x) {
    const int r = t / dim, d = t % dim;
    tile[r][d] = toFloat(x[((b * len + first + r) * heads + head) * dim + d]);
  }
}

/// A block's query rows: kGradWarps consecutive queries i0 … of one
/// (batch, head) and its kv head, warp w taking query i0 + w.
struct QueryRows {
  long long b, h, kvh, i0, i;
  bool active; // i < sq
};

__device__ __forceinline__ QueryRows queryRows(const tr::AttentionGrad &p) {
  QueryRows q;
  q.b = blockIdx.y / p.heads;
  q.h = blockIdx.y % p.heads;
  q.kvh = q.h / (p.heads / p.kvHeads);
  q.i0 = static_cast<long long>(blockIdx.x) * kGradWarps;
  q.i = q.i0 + threadIdx.x / 32;
  q.active = q.i < p.sq;
  return q;
}

/// Row `row` of the same into `dst`, by one warp.
template <typename T>
__device__ __forceinline__ void
stageRow(float *dst, unsigned long long src, long long b, long long len,
         long long heads, long long head, long long dim, long long row) {
  const T *x = reinterpret_cast<const T *>(src);
  for (long long d = threadIdx.x % 32; d < dim; d += 32)
    dst[d] = toFloat(x[((b * len + row) * heads + head) * dim + d]);
}

template <typename T>
__device__ __forceinline__ void attentionGradStats(const tr::AttentionGrad &p) {
  __shared__ float keys[kTile][kMaxDim + 1];
  __shared__ float queries[kGradWarps][kMaxDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const auto [b, h, kvh, i0, i, active] = queryRows(p);
  if (active)
    stageRow<T>(queries[warp], p.q, b, p.sq, p.heads, h, p.dimQK, i);
  long long keyBegin, keyEnd;
  keysOf(p, i0, minimum(p.sq, i0 + kGradWarps), keyBegin, keyEnd);
  if (p.lseGiven) // the forward's: δ alone
    keyEnd = keyBegin;
  float max = kNegInf, sum = 0.0f;
  for (long long j0 = keyBegin; j0 < keyEnd; j0 += kTile) {
    __syncthreads(); // the previous tile is consumed
    const int rows = static_cast<int>(minimum(kTile, keyEnd - j0));
    stage<T>(keys, p.k, b, p.skv, p.kvHeads, kvh, p.dimQK, j0, rows);
    __syncthreads();
    if (!active)
      continue;
    const long long j = j0 + lane;
    float s = kNegInf;
    if (lane < rows && attends(p, b, i, j))
      s = score(p, queries[warp], keys[lane], h, i, j);
    float tileMax = s;
    for (int o = 16; o > 0; o >>= 1)
      tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, o));
    if (tileMax == kNegInf)
      continue;
    const float newMax = fmaxf(max, tileMax);
    float e = s == kNegInf ? 0.0f : expf(s - newMax);
    for (int o = 16; o > 0; o >>= 1)
      e += __shfl_xor_sync(0xffffffffu, e, o);
    sum = (max == kNegInf ? 0.0f : sum * expf(max - newMax)) + e;
    max = newMax;
  }
  if (!active)
    return;
  const T *out = reinterpret_cast<const T *>(p.out);
  const T *dout = reinterpret_cast<const T *>(p.dout);
  float dot = 0.0f;
  for (long long d = lane; d < p.dimV; d += 32) {
    const long long at = ((b * p.sq + i) * p.heads + h) * p.dimV + d;
    dot += toFloat(out[at]) * toFloat(dout[at]);
  }
  for (int o = 16; o > 0; o >>= 1)
    dot += __shfl_xor_sync(0xffffffffu, dot, o);
  if (lane == 0) {
    const long long row = (b * p.heads + h) * p.sq + i;
    // A query that attends nothing passes no gradient: an infinite L makes
    // each of its probabilities 0.
    if (!p.lseGiven)
      reinterpret_cast<float *>(p.lse)[row] =
          max == kNegInf ? -kNegInf : max + logf(sum);
    reinterpret_cast<float *>(p.delta)[row] = dot;
  }
}

template <typename T>
__device__ __forceinline__ void attentionGradKeys(const tr::AttentionGrad &p) {
  __shared__ float queries[kTile][kMaxDim + 1];
  __shared__ float douts[kTile][kMaxDim + 1];
  __shared__ float keyRows[kGradWarps][kMaxDim];
  __shared__ float valueRows[kGradWarps][kMaxDim];
  __shared__ float lses[kTile], deltas[kTile];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long b = blockIdx.y / p.kvHeads, kvh = blockIdx.y % p.kvHeads;
  const long long group = p.heads / p.kvHeads;
  const long long j0 = static_cast<long long>(blockIdx.x) * kGradWarps;
  const long long j = j0 + warp;
  const bool active = j < p.skv;
  if (active) {
    stageRow<T>(keyRows[warp], p.k, b, p.skv, p.kvHeads, kvh, p.dimQK, j);
    stageRow<T>(valueRows[warp], p.v, b, p.skv, p.kvHeads, kvh, p.dimV, j);
  }
  constexpr int kPerLane = kMaxDim / 32;
  float dk[kPerLane], dv[kPerLane];
#pragma unroll
  for (int e = 0; e < kPerLane; ++e)
    dk[e] = dv[e] = 0.0f;
  long long queryBegin, queryEnd;
  queriesOf(p, j0, minimum(p.skv, j0 + kGradWarps), queryBegin, queryEnd);
  for (long long h = kvh * group; h < (kvh + 1) * group; ++h)
    for (long long i0 = queryBegin; i0 < queryEnd; i0 += kTile) {
      __syncthreads(); // the previous tile is consumed
      const int rows = static_cast<int>(minimum(kTile, queryEnd - i0));
      stage<T>(queries, p.q, b, p.sq, p.heads, h, p.dimQK, i0, rows);
      stage<T>(douts, p.dout, b, p.sq, p.heads, h, p.dimV, i0, rows);
      for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        const long long row = (b * p.heads + h) * p.sq + i0 + r;
        lses[r] = reinterpret_cast<const float *>(p.lse)[row];
        deltas[r] = reinterpret_cast<const float *>(p.delta)[row];
      }
      __syncthreads();
      if (!active)
        continue;
      // Lane r takes query i0 + r.
      const long long i = i0 + lane;
      float prob = 0.0f, ds = 0.0f;
      if (lane < rows && attends(p, b, i, j)) {
        const float s = score(p, queries[lane], keyRows[warp], h, i, j);
        prob = expf(s - lses[lane]);
        float dp = 0.0f;
        for (long long d = 0; d < p.dimV; ++d)
          dp = fmaf(douts[lane][d], valueRows[warp][d], dp);
        ds = prob * (dp - deltas[lane]);
      }
      for (int r = 0; r < rows; ++r) {
        const float pr = __shfl_sync(0xffffffffu, prob, r);
        const float dsr = __shfl_sync(0xffffffffu, ds, r);
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) {
          const int d = lane + 32 * e;
          if (d < p.dimV)
            dv[e] += pr * douts[r][d];
          if (d < p.dimQK)
            dk[e] += dsr * queries[r][d];
        }
      }
    }
  if (!active)
    return;
  T *dkOut = reinterpret_cast<T *>(p.dk);
  T *dvOut = reinterpret_cast<T *>(p.dv);
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    const int d = lane + 32 * e;
    if (d < p.dimQK)
      dkOut[((b * p.skv + j) * p.kvHeads + kvh) * p.dimQK + d] =
          fromFloat<T>(dk[e] * p.scale);
    if (d < p.dimV)
      dvOut[((b * p.skv + j) * p.kvHeads + kvh) * p.dimV + d] =
          fromFloat<T>(dv[e]);
  }
}

template <typename T>
__device__ __forceinline__ void
attentionGradQueries(const tr::AttentionGrad &p) {
  __shared__ float keys[kTile][kMaxDim + 1];
  __shared__ float values[kTile][kMaxDim + 1];
  __shared__ float queries[kGradWarps][kMaxDim];
  __shared__ float douts[kGradWarps][kMaxDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const auto [b, h, kvh, i0, i, active] = queryRows(p);
  float lse = 0.0f, delta = 0.0f;
  if (active) {
    stageRow<T>(queries[warp], p.q, b, p.sq, p.heads, h, p.dimQK, i);
    stageRow<T>(douts[warp], p.dout, b, p.sq, p.heads, h, p.dimV, i);
    const long long row = (b * p.heads + h) * p.sq + i;
    lse = reinterpret_cast<const float *>(p.lse)[row];
    delta = reinterpret_cast<const float *>(p.delta)[row];
  }
  constexpr int kPerLane = kMaxDim / 32;
  float dq[kPerLane];
#pragma unroll
  for (int e = 0; e < kPerLane; ++e)
    dq[e] = 0.0f;
  long long keyBegin, keyEnd;
  keysOf(p, i0, minimum(p.sq, i0 + kGradWarps), keyBegin, keyEnd);
  for (long long j0 = keyBegin; j0 < keyEnd; j0 += kTile) {
    __syncthreads(); // the previous tile is consumed
    const int rows = static_cast<int>(minimum(kTile, keyEnd - j0));
    stage<T>(keys, p.k, b, p.skv, p.kvHeads, kvh, p.dimQK, j0, rows);
    stage<T>(values, p.v, b, p.skv, p.kvHeads, kvh, p.dimV, j0, rows);
    __syncthreads();
    if (!active)
      continue;
    const long long j = j0 + lane;
    float ds = 0.0f;
    if (lane < rows && attends(p, b, i, j)) {
      const float s = score(p, queries[warp], keys[lane], h, i, j);
      const float prob = expf(s - lse);
      float dp = 0.0f;
      for (long long d = 0; d < p.dimV; ++d)
        dp = fmaf(douts[warp][d], values[lane][d], dp);
      ds = prob * (dp - delta);
    }
    for (int r = 0; r < rows; ++r) {
      const float dsr = __shfl_sync(0xffffffffu, ds, r);
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) {
        const int d = lane + 32 * e;
        if (d < p.dimQK)
          dq[e] += dsr * keys[r][d];
      }
    }
  }
  if (!active)
    return;
  T *dqOut = reinterpret_cast<T *>(p.dq);
#pragma unroll
  for (int e = 0; e < kPerLane; ++e) {
    const int d = lane + 32 * e;
    if (d < p.dimQK)
      dqOut[((b * p.sq + i) * p.heads + h) * p.dimQK + d] =
          fromFloat<T>(dq[e] * p.scale);
  }
}

} // namespace

/// The three kernels on f32 tensors, and on bf16 ones (read widened, the
/// gradients rounded once).
#define WEFT_ATTENTION_GRAD(NAME, T)                                           \
  extern "C" __global__ void __launch_bounds__(kGradWarps * 32)                \
      weft_attention_grad##NAME##_stats(tr::AttentionGrad p) {                 \
    attentionGradStats<T>(p);                                                  \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(kGradWarps * 32)                \
      weft_attention_grad##NAME##_kv(tr::AttentionGrad p) {                    \
    attentionGradKeys<T>(p);                                                   \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(kGradWarps * 32)                \
      weft_attention_grad##NAME##_q(tr::AttentionGrad p) {                     \
    attentionGradQueries<T>(p);                                                \
  }
WEFT_ATTENTION_GRAD(, float)
WEFT_ATTENTION_GRAD(_bf16, __nv_bfloat16)
