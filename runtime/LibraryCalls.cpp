// Library-call arguments shared by the executors.
#include "runtime/LibraryCalls.h"

#include "runtime/Error.h"
#include "runtime/PlanFile.h"

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

AdamWCall weft::runtime::readAdamW(const plan::Plan &plan,
                                   const plan::LibraryCall &call,
                                   const std::string &where) {
  if (call.buffers_size() != 10 || call.ints_size() != 0 ||
      call.floats_size() != 6)
    throw Error(where + "expects 10 buffers, 0 ints and 6 floats");
  const plan::Buffer &param = plan.buffers(call.buffers(0));
  const int64_t count = param.bytes() / 4;
  for (int i : {0, 2, 3, 7, 8, 9})
    if (plan.buffers(call.buffers(i)).dtype() != plan::F32 ||
        plan.buffers(call.buffers(i)).bytes() != param.bytes())
      throw Error(where + "buffer " + std::to_string(i) + " is not " +
                  std::to_string(count) + " f32 values");
  const plan::Buffer &grad = plan.buffers(call.buffers(1));
  if ((grad.dtype() != plan::F32 && grad.dtype() != plan::BF16) ||
      grad.bytes() / dtypeBytes(grad.dtype()) != count)
    throw Error(where + "the gradient is not " + std::to_string(count) +
                " f32 or bf16 values");
  if (plan.buffers(call.buffers(4)).dtype() != plan::F64 ||
      plan.buffers(call.buffers(5)).dtype() != plan::I64 ||
      plan.buffers(call.buffers(6)).dtype() != plan::F32)
    throw Error(where + "expects lr f64, step i64 and the norm f32");
  return {count,          grad.dtype() == plan::BF16,
          call.floats(0), call.floats(1),
          call.floats(2), call.floats(3),
          call.floats(4), static_cast<float>(call.floats(5))};
}
