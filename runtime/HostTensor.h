// A tensor in host memory with its dtype and shape: what inputs and outputs
// are read into and written from.
#ifndef WEFT_RUNTIME_HOSTTENSOR_H
#define WEFT_RUNTIME_HOSTTENSOR_H

#include "runtime/plan.pb.h"

#include <string>
#include <vector>

namespace weft::runtime {

struct HostTensor {
  plan::DType dtype = plan::DTYPE_UNSPECIFIED;
  std::vector<int64_t> shape;
  std::vector<char> bytes;

  int64_t numElements() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};

/// "1x16x512xf32".
std::string describe(plan::DType dtype, const std::vector<int64_t> &shape);

/// Reads a NumPy .npy file (C order; f32, f16, i64, i32, i8, bool).
/// Throws Error naming the file.
HostTensor readNpy(const std::string &path);

/// `tensor` with bf16 elements widened to f32 (NumPy has no bf16); any
/// other tensor as it is.
HostTensor widenBf16(const HostTensor &tensor);

/// `tensor` (f32) with its elements rounded to bf16.
HostTensor narrowToBf16(const HostTensor &tensor);

/// Writes `tensor` as a .npy file. Throws Error naming the file.
void writeNpy(const std::string &path, const HostTensor &tensor);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_HOSTTENSOR_H
