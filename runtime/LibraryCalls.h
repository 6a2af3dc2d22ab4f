// Reading library calls' arguments that every device's executor checks the
// same way.
#ifndef WEFT_RUNTIME_LIBRARYCALLS_H
#define WEFT_RUNTIME_LIBRARYCALLS_H

#include "kernels/cpu/Kernels.h"
#include "runtime/plan.pb.h"

#include <string>

namespace weft::runtime {

/// The box of a copy_strided call (src, dst; elementBytes, rank, srcOffset,
/// dstOffset, shape[rank], srcStrides[rank], dstStrides[rank]), checked to
/// lie inside both buffers. Throws Error(`where` + what is wrong).
kernels::cpu::StridedCopy readStridedCopy(const plan::Plan &plan,
                                          const plan::LibraryCall &call,
                                          const std::string &where);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_LIBRARYCALLS_H
