// What the memory phase's passes read of a differentiated function.
#ifndef WEFT_PASSES_MEMORY_FORWARD_H
#define WEFT_PASSES_MEMORY_FORWARD_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseSet.h"

#include <vector>

namespace weft {

/// The forward of a differentiated function (weft-autodiff): the ops its
/// first result, the loss, depends on. The rest of the body is the backward
/// (and the optimizer), after the forward in block order.
inline llvm::DenseSet<mlir::Operation *> forwardOps(mlir::func::FuncOp func) {
  llvm::DenseSet<mlir::Operation *> forward;
  auto ret =
      llvm::cast<mlir::func::ReturnOp>(func.getBody().front().getTerminator());
  std::vector<mlir::Operation *> work;
  if (ret.getNumOperands() > 0)
    if (mlir::Operation *loss = ret.getOperand(0).getDefiningOp())
      work.push_back(loss);
  while (!work.empty()) {
    mlir::Operation *op = work.back();
    work.pop_back();
    if (!forward.insert(op).second)
      continue;
    for (mlir::Value operand : op->getOperands())
      if (mlir::Operation *producer = operand.getDefiningOp())
        work.push_back(producer);
  }
  return forward;
}

} // namespace weft

#endif // WEFT_PASSES_MEMORY_FORWARD_H
