// Launch shapes of kernels/cuda/Library.cu's grid-stride kernels, shared by
// the runtime that launches them and the tests that launch them on the host.
#ifndef WEFT_KERNELS_CUDA_LAUNCH_H
#define WEFT_KERNELS_CUDA_LAUNCH_H

#include <algorithm>

namespace weft::kernels::cuda {

/// An H100's streaming multiprocessors, which the grids are sized for.
constexpr long long kSms = 132;

/// Blocks for a grid-stride loop over `total` items, `perBlock` to a block:
/// at least one, at most 16 for each SM.
constexpr unsigned gridFor(long long total, long long perBlock = 256) {
  return static_cast<unsigned>(
      std::clamp<long long>((total + perBlock - 1) / perBlock, 1, kSms * 16));
}

/// weft_scatter_add's threads a block, one per (outer, column).
constexpr int kScatterThreads = 256;

/// weft_scatter_add's grid: x a block per kScatterThreads of the outer ×
/// inner columns, y as many ranges of the `size` rows as bring the blocks to
/// about 8 for each SM (a range holds at least one row).
struct ScatterAddGrid {
  unsigned x, y;
};
constexpr ScatterAddGrid scatterAddGrid(long long columns, long long size) {
  const long long x =
      std::max<long long>((columns + kScatterThreads - 1) / kScatterThreads, 1);
  const long long y = std::clamp<long long>(
      (kSms * 8 + x - 1) / x, 1, std::clamp<long long>(size, 1, 65535));
  return {static_cast<unsigned>(x), static_cast<unsigned>(y)};
}

} // namespace weft::kernels::cuda

#endif // WEFT_KERNELS_CUDA_LAUNCH_H
