// Library-call arguments shared by the executors.
#include "runtime/LibraryCalls.h"

#include "runtime/Error.h"

using namespace weft::runtime;

weft::kernels::cpu::StridedCopy
weft::runtime::readStridedCopy(const plan::Plan &plan,
                               const plan::LibraryCall &call,
                               const std::string &where) {
  if (call.buffers_size() != 2 || call.ints_size() < 4)
    throw Error(where + "expects 2 buffers and at least 4 ints");
  kernels::cpu::StridedCopy copy{};
  copy.elementBytes = call.ints(0);
  copy.rank = static_cast<int>(call.ints(1));
  if (copy.rank < 0 || copy.rank > kernels::cpu::StridedCopy::kMaxRank ||
      call.ints_size() != 4 + 3 * copy.rank || copy.elementBytes <= 0)
    throw Error(where + "has a malformed strided copy");
  copy.srcOffset = call.ints(2);
  copy.dstOffset = call.ints(3);
  // The box's last element must lie inside both buffers.
  int64_t srcEnd = copy.srcOffset, dstEnd = copy.dstOffset;
  bool empty = false;
  for (int d = 0; d < copy.rank; ++d) {
    copy.shape[d] = call.ints(4 + d);
    copy.srcStrides[d] = call.ints(4 + copy.rank + d);
    copy.dstStrides[d] = call.ints(4 + 2 * copy.rank + d);
    empty |= copy.shape[d] == 0;
    srcEnd += (copy.shape[d] - 1) * copy.srcStrides[d];
    dstEnd += (copy.shape[d] - 1) * copy.dstStrides[d];
  }
  if (!empty && (copy.srcOffset < 0 || copy.dstOffset < 0 ||
                 (srcEnd + 1) * copy.elementBytes >
                     plan.buffers(call.buffers(0)).bytes() ||
                 (dstEnd + 1) * copy.elementBytes >
                     plan.buffers(call.buffers(1)).bytes()))
    throw Error(where + "copies outside its buffers");
  return copy;
}
