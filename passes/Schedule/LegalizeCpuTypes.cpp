// weft-legalize-cpu-types: f32 compute around the CPU kernels that have no
// bf16 form.
#include "passes/Schedule/Passes.h"

#include "mlir/IR/Builders.h"

namespace weft {
#define GEN_PASS_DEF_LEGALIZECPUTYPES
#include "passes/Schedule/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
bool isBf16(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && tensor.getElementType().isBF16();
}

/// Ops whose CPU code takes bf16 as it is: generated row kernels (which
/// widen to f32 inside), linear and matmul (bf16 tiles widened in their
/// workspace) and
/// attention (keys, values and queries widened as they are packed) and its
/// backward (its operands widened into its workspace, its gradients rounded
/// once) when all of their tensors but a mask, ALiBi slopes and the f32
/// log-sum-exp are bf16, rope (each element widened as it is read, each
/// result rounded once) with bf16 input and result, the optimizer's
/// ops (which widen bf16 gradients as they read them), and ops that only
/// move or make data.
bool runsInBf16(Operation *op) {
  if (isRowKernelOp(op) ||
      isa<GatherOp, ReshapeOp, ConstantOp, IotaOp, TransposeOp, SliceOp,
          BroadcastOp, ConcatOp, MoeDispatchOp, GradNormOp, AdamWUpdateOp,
          AllGatherOp, AllSliceOp, AllToAllOp, OffloadOp, ReloadOp>(op))
    return true;
  if (isa<LinearOp, MatmulOp>(op))
    return llvm::all_of(op->getOperandTypes(), isBf16) &&
           isBf16(op->getResult(0).getType());
  if (auto attention = dyn_cast<AttentionOp>(op))
    return isBf16(attention.getResult().getType()) && // q, k and v are alike
           (!attention.getAlibiSlopes() ||
            !isBf16(attention.getAlibiSlopes().getType()));
  if (auto grad = dyn_cast<AttentionGradOp>(op)) // out, dout: as the result
    return isBf16(grad.getDq().getType()) && isBf16(grad.getOut().getType()) &&
           isBf16(grad.getDout().getType()) &&
           (!grad.getAlibiSlopes() || !isBf16(grad.getAlibiSlopes().getType()));
  if (auto grouped = dyn_cast<GroupedLinearOp>(op))
    return isBf16(grouped.getType()); // C3: x and weights alike
  if (isa<CrossEntropyOp>(op))        // bf16 logits widened as they are read
    return true;
  if (auto rope = dyn_cast<RopeOp>(op)) // widened as read, rounded once
    return isBf16(rope.getX().getType()) && isBf16(rope.getType());
  return false;
}

/// Whether `use` reads a gradient of any float type as it is: the global
/// norm and AdamW widen bf16 as they read it, so a gradient computed in f32
/// at the end of the backward (an embedding's rows scattered, a norm
/// weight's column sums) reaches them without a bf16 copy — and without the
/// rounding.
bool readsAnyFloat(OpOperand &use) {
  Operation *user = use.getOwner();
  if (isa<GradNormOp>(user))
    return true;
  auto adamw = dyn_cast<AdamWUpdateOp>(user);
  return adamw && use.get() == adamw.getGrad() &&
         use.getOperandNumber() == adamw.getGradMutable().getOperandNumber();
}

struct LegalizeCpuTypes
    : public weft::impl::LegalizeCpuTypesBase<LegalizeCpuTypes> {
  void runOnOperation() override {
    SmallVector<Operation *> widen;
    getOperation().walk([&](Operation *op) {
      if (op->getDialect() != getContext().getLoadedDialect<WeftDialect>() ||
          op->getNumRegions() != 0 || runsInBf16(op))
        return;
      if (llvm::any_of(op->getOperandTypes(), isBf16) ||
          llvm::any_of(op->getResultTypes(), isBf16))
        widen.push_back(op);
    });
    for (Operation *op : widen) {
      OpBuilder b(op);
      auto f32 = [&](Type type) {
        return cast<RankedTensorType>(type).clone(b.getF32Type());
      };
      SmallVector<Value> operands;
      for (Value operand : op->getOperands())
        operands.push_back(isBf16(operand.getType())
                               ? b.create<ConvertOp>(op->getLoc(),
                                                     f32(operand.getType()),
                                                     operand)
                                     .getResult()
                               : operand);
      OperationState state(op->getLoc(), op->getName());
      state.addOperands(operands);
      state.addAttributes(op->getAttrs());
      for (Type type : op->getResultTypes())
        state.addTypes(isBf16(type) ? f32(type) : type);
      Operation *wide = b.create(state);
      for (auto [old, result] :
           llvm::zip(op->getResults(), wide->getResults())) {
        if (!isBf16(old.getType())) {
          old.replaceAllUsesWith(result);
          continue;
        }
        // A collective's sum stays bf16: it is made as the backward goes
        // and waits for the optimizer, where f32 would hold twice the bytes.
        const bool keepF32 = !isa<AllReduceOp, ReduceScatterOp>(op);
        Value narrow; // made for the first reader that needs bf16
        for (OpOperand &use : llvm::make_early_inc_range(old.getUses())) {
          const bool asIs = keepF32 && readsAnyFloat(use);
          if (!asIs && !narrow)
            narrow = b.create<ConvertOp>(op->getLoc(), old.getType(), result);
          use.set(asIs ? result : narrow);
        }
      }
      op->erase();
    }
  }
};
} // namespace
