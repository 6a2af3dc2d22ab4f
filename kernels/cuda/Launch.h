// Launch shapes of kernels/cuda/Library.cu's grid-stride kernels, shared by
// the runtime that launches them and the tests that launch them on the host.
#ifndef WEFT_KERNELS_CUDA_LAUNCH_H
#define WEFT_KERNELS_CUDA_LAUNCH_H

#include <algorithm>

namespace weft::kernels::cuda {

/// Blocks for a grid-stride loop over `total` items, `perBlock` to a block:
/// at least one, at most 16 for each of an H100's 132 SMs.
constexpr unsigned gridFor(long long total, long long perBlock = 256) {
  return static_cast<unsigned>(
      std::clamp<long long>((total + perBlock - 1) / perBlock, 1, 132 * 16));
}

} // namespace weft::kernels::cuda

#endif // WEFT_KERNELS_CUDA_LAUNCH_H
