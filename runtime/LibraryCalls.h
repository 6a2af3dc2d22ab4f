// Reading library calls' arguments that every device's executor checks the
// same way.
#ifndef WEFT_RUNTIME_LIBRARYCALLS_H
#define WEFT_RUNTIME_LIBRARYCALLS_H

#include "kernels/cpu/Kernels.h"
#include "runtime/Communicator.h"
#include "runtime/plan.pb.h"

#include <string>
#include <vector>

namespace weft::runtime {

/// The box of a copy_strided call (src, dst; elementBytes, rank, srcOffset,
/// dstOffset, shape[rank], srcStrides[rank], dstStrides[rank]), checked to
/// lie inside both buffers. Throws Error(`where` + what is wrong).
kernels::cpu::StridedCopy readStridedCopy(const plan::Plan &plan,
                                          const plan::LibraryCall &call,
                                          const std::string &where);

/// An adamw call (param, grad, exp_avg, exp_avg_sq, lr (f64), step (i64),
/// norm, new param, new exp_avg, new exp_avg_sq, optionally the new param
/// rounded to bf16; beta1, beta2, eps, weight_decay, max_grad_norm,
/// grad_scale), checked: f32 parameter and moments of one size, an f32 or
/// bf16 gradient and a bf16 rounded copy of as many elements.
struct AdamWCall {
  int64_t count; // parameters
  bool bf16Grad;
  bool rounded; // buffer 10: the new weights rounded to bf16
  double beta1, beta2, eps, weightDecay, maxGradNorm;
  float gradMultiplier; // grad_scale: 1/K for the mean of K micro-batches
};
AdamWCall readAdamW(const plan::Plan &plan, const plan::LibraryCall &call,
                    const std::string &where);

/// Attention's (and its gradient's) log-sum-exp buffer `index` of `call`,
/// when given (not -1): f32 [batch, heads, sq] of the call's ints. Throws
/// Error(`where` + what is wrong).
void checkAttentionLse(const plan::Plan &plan, const plan::LibraryCall &call,
                       int index, const std::string &where);

/// A matmul's accumulator, buffer `acc` of `call` when given (not -1):
/// the result's (buffer `result`) type and size. Throws Error(`where` + what
/// is wrong).
void checkAccumulator(const plan::Plan &plan, const plan::LibraryCall &call,
                      int acc, int result, const std::string &where);

/// A grad_norm call (gradients (f32 or bf16)..., the norm (one f32); the
/// group holding blocks of the gradients (a mask of the plan's mesh axes, 0:
/// none); grad_scale), checked. Each gradient's elements and whether it is
/// bf16, in order.
struct GradNormCall {
  uint32_t group;
  float scale;
  std::vector<int64_t> counts;
  std::vector<bool> bf16;
};
GradNormCall readGradNorm(const plan::Plan &plan, const plan::LibraryCall &call,
                          const std::string &where);

/// An attention_grad (f32) or attention_grad_bf16 call's q, k, v, out,
/// dout, dq, dk and dv all of its element type, and its log-sum-exp
/// (checkAttentionLse, buffer 11). Throws Error(`where` + what is wrong).
void checkAttentionGrad(const plan::Plan &plan, const plan::LibraryCall &call,
                        const std::string &where);

/// An offload (device → host) or reload (host → device) call: src, dst;
/// bytes. Checked: the regions are the HOST one on the right side, and the
/// bytes both buffers'. Returns the bytes.
int64_t readTransfer(const plan::Plan &plan, const plan::LibraryCall &call,
                     const std::string &where);

/// A collective call, checked against its group: x, y (all_gather and
/// all_to_all: and the workspace, where they stage blocks along inner
/// dimensions); the reduction (ReduceKind: sum, max or mean; the reductions
/// only), the group's axis mask; all_gather and all_slice: the dimension,
/// all_to_all: split and concat dimensions; each then the operand's rank and
/// shape. reduce_scatter splits dim 0. Sizes in bytes.
struct CollectiveCall {
  std::string kind; // all_reduce, reduce_scatter, all_gather, all_slice,
                    // all_to_all (all_gather_start: all_gather, started)
  bool started = false;
  Communicator::Reduction reduction = Communicator::Reduction::Sum;
  uint32_t mask = 0;
  int64_t members = 1;
  plan::DType dtype = plan::DTYPE_UNSPECIFIED;
  int64_t element = 0, xBytes = 0, yBytes = 0;
  /// all_gather: y is `outer` rows of the members' blocks of `block` bytes
  /// (member m's at m), staged in the workspace when outer > 1; all_slice:
  /// x is such rows, y this member's blocks; all_to_all: x's rows of the
  /// blocks sent (block m to member m), staged when outer > 1.
  int64_t outer = 1, block = 0;
  /// all_to_all: y's rows of the blocks received (member m's at m), staged
  /// after the sent ones when recvOuter > 1; `chunk` bytes to each member.
  int64_t recvOuter = 1, recvBlock = 0, chunk = 0;
  /// Workspace bytes before the received staging (0 or xBytes).
  int64_t sendStaging = 0;

  /// A copy of `rows` rows of `width` bytes from src (rows `srcPitch`
  /// apart) to dst (`dstPitch` apart); offsets from the buffers each use
  /// names. Both executors move a collective's blocks with these (memcpy on
  /// the CPU, cuMemcpy2DAsync on a GPU).
  struct RowCopy {
    int64_t dst, dstPitch, src, srcPitch, width, rows;
  };
  /// all_gather, outer > 1: from the gathered members' x (the workspace,
  /// member m's at m · xBytes) to their places in y.
  std::vector<RowCopy> placeGathered() const;
  /// all_slice: member m's blocks of x into y.
  RowCopy sliceOf(int64_t member) const;
  /// all_to_all, outer > 1: x's blocks into the workspace, member m's
  /// chunk at m · chunk.
  std::vector<RowCopy> stageSent() const;
  /// all_to_all, recvOuter > 1: the received chunks (the workspace from
  /// sendStaging, member m's at m · chunk) to their places in y.
  std::vector<RowCopy> placeReceived() const;
};

/// Runs `copy` on host memory.
void copyRows(const CollectiveCall::RowCopy &copy, char *dst, const char *src);
/// The group is one of the plan's mesh (its size from the plan, as every
/// launch lays it out). Throws Error(`where` + what is wrong).
CollectiveCall readCollective(const plan::Plan &plan,
                              const plan::LibraryCall &call,
                              const std::string &where);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_LIBRARYCALLS_H
