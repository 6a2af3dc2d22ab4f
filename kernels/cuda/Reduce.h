// What kernels/cuda/Library.cu's weft_reduce takes by value, shared by the
// kernel and the runtime that launches it (the same layout on both sides).
#ifndef WEFT_KERNELS_CUDA_REDUCE_H
#define WEFT_KERNELS_CUDA_REDUCE_H

#include <cstdint>
#include <vector>

namespace weft::kernels::cuda {

/// weft_reduce's view of x: its kept and its reduced dimensions (adjacent
/// dimensions of one kind merged, those of size 1 dropped), each with its
/// element stride; innerReduced when x's innermost dimension is reduced.
struct ReduceShape {
  int keptRank = 0, reducedRank = 0;
  long long keptShape[8] = {}, keptStride[8] = {}, reducedShape[8] = {},
            reducedStride[8] = {};
  long long outputs = 1, count = 1;
  int innerReduced = 0;
};

/// x's dimensions `shape` (row-major, at most 8), those with `reduced` set
/// reduced, as weft_reduce reads them.
inline ReduceShape reduceShapeOf(const std::vector<int64_t> &shape,
                                 const std::vector<bool> &reduced) {
  ReduceShape r;
  int64_t stride = 1;
  int last = -1; // the kind of the dimension met before (inner first)
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    const int64_t size = shape[d];
    if (size == 1)
      continue;
    const int kind = reduced[d] ? 1 : 0;
    int &rank = kind ? r.reducedRank : r.keptRank;
    long long *sizes = kind ? r.reducedShape : r.keptShape,
              *strides = kind ? r.reducedStride : r.keptStride;
    if (last == -1)
      r.innerReduced = kind;
    if (kind == last) {
      sizes[0] *= size; // merged with the dimension inside it
    } else {
      // Outer dimensions go first: shift the inner ones along.
      for (int i = rank; i > 0; --i) {
        sizes[i] = sizes[i - 1];
        strides[i] = strides[i - 1];
      }
      sizes[0] = size;
      strides[0] = stride;
      ++rank;
    }
    (kind ? r.count : r.outputs) *= size;
    stride *= size;
    last = kind;
  }
  return r;
}

} // namespace weft::kernels::cuda

#endif // WEFT_KERNELS_CUDA_REDUCE_H
