// The launch shape of kernels/cuda/Library.cu's tensor-core attention, shared
// by the kernel and the runtime that launches it.
#ifndef WEFT_KERNELS_CUDA_ATTENTION_H
#define WEFT_KERNELS_CUDA_ATTENTION_H

#ifdef __CUDACC__
#define WEFT_HOST_DEVICE __host__ __device__
#else
#define WEFT_HOST_DEVICE
#endif

namespace weft::kernels::cuda::attention {

constexpr int kWarps = 4;             // threads: 32 · kWarps
constexpr int kQueries = 16 * kWarps; // per block (blockIdx.x)
constexpr int kKeys = 64;             // per tile

/// Shared-memory layout for head dimension D: q, k, v tiles (bf16), each
/// warp's scores (f32), probabilities (bf16) and output rows (f32); rows
/// padded against bank conflicts, every fragment 32-byte aligned.
struct Layout {
  int ldQ, ldS, ldP, ldO;
  int q, k, v, s, p, o, bytes;
};

WEFT_HOST_DEVICE constexpr Layout layout(int d) {
  Layout l{d + 8, kKeys + 4, kKeys + 8, d + 4, 0, 0, 0, 0, 0, 0, 0};
  l.k = l.q + kQueries * l.ldQ * 2;
  l.v = l.k + kKeys * l.ldQ * 2;
  l.s = l.v + kKeys * l.ldQ * 2;
  l.p = l.s + kWarps * 16 * l.ldS * 4;
  l.o = l.p + kWarps * 16 * l.ldP * 2;
  l.bytes = l.o + kWarps * 16 * l.ldO * 4;
  return l;
}

} // namespace weft::kernels::cuda::attention

#endif // WEFT_KERNELS_CUDA_ATTENTION_H
