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

/// Shared-memory layout for head dimension D: the block's query tile and a
/// key and a value tile, bf16, rows padded by 8 against bank conflicts.
struct Layout {
  int ldQ;
  int q, k, v, bytes;
};

WEFT_HOST_DEVICE constexpr Layout layout(int d) {
  Layout l{d + 8, 0, 0, 0, 0};
  l.k = l.q + kQueries * l.ldQ * 2;
  l.v = l.k + kKeys * l.ldQ * 2;
  l.bytes = l.v + kKeys * l.ldQ * 2;
  return l;
}

} // namespace weft::kernels::cuda::attention

#endif // WEFT_KERNELS_CUDA_ATTENTION_H
