// ZeRO-3's parameter gathers and their prefetch, shared by the pass that
// makes them (weft-data-parallel) and the one that gathers again for
// recomputation (weft-rematerialize).
#ifndef WEFT_PASSES_PARTITION_PREFETCH_H
#define WEFT_PASSES_PARTITION_PREFETCH_H

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallVector.h"

namespace weft {

/// Whether `gather` gathers a ZeRO-3 parameter block (a function argument
/// marked `weft.param_shard`) whole.
inline bool gathersParameter(mlir::Operation *gather) {
  auto allGather = llvm::dyn_cast_or_null<AllGatherOp>(gather);
  auto block = allGather ? llvm::dyn_cast<mlir::BlockArgument>(allGather.getX())
                         : nullptr;
  auto func =
      block
          ? llvm::dyn_cast<mlir::func::FuncOp>(block.getOwner()->getParentOp())
          : nullptr;
  return func && func.getArgAttr(block.getArgNumber(), "weft.param_shard");
}

/// ZeRO-3's prefetch: each parameter gather of `func` that `picks` chooses,
/// but the first, starts where the parameter gather before it did (so it
/// runs while the op reading that one computes), marked `weft.prefetch`:
/// the runtime starts it there and waits for it at its first reader.
inline void prefetchGathers(mlir::func::FuncOp func,
                            llvm::function_ref<bool(mlir::Operation *)> picks) {
  llvm::SmallVector<mlir::Operation *> gathers, after;
  for (mlir::Operation &op : func.getBody().front())
    if (gathersParameter(&op)) {
      gathers.push_back(&op);
      after.push_back(op.getNextNode());
    }
  for (size_t k = 0; k < gathers.size(); ++k) {
    if (!picks(gathers[k]))
      continue;
    if (k > 0)
      gathers[k]->moveBefore(after[k - 1]);
    gathers[k]->setAttr("weft.prefetch",
                        mlir::UnitAttr::get(func.getContext()));
  }
}

} // namespace weft

#endif // WEFT_PASSES_PARTITION_PREFETCH_H
