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

/// An adamw call (param, grad, exp_avg, exp_avg_sq, lr (f64), step (i64),
/// norm, new param, new exp_avg, new exp_avg_sq; beta1, beta2, eps,
/// weight_decay, max_grad_norm, grad_scale), checked: f32 parameter and
/// moments of one size, an f32 or bf16 gradient of as many elements.
struct AdamWCall {
  int64_t count; // parameters
  bool bf16Grad;
  double beta1, beta2, eps, weightDecay, maxGradNorm;
  float gradMultiplier; // grad_scale: 1/K for the mean of K micro-batches
};
AdamWCall readAdamW(const plan::Plan &plan, const plan::LibraryCall &call,
                    const std::string &where);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_LIBRARYCALLS_H
