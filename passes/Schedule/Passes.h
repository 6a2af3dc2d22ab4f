// The schedule phase's passes.
#ifndef WEFT_PASSES_SCHEDULE_PASSES_H
#define WEFT_PASSES_SCHEDULE_PASSES_H

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace weft {
#define GEN_PASS_DECL
#include "passes/Schedule/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "passes/Schedule/Passes.h.inc"

/// Whether `op` is computed by a generated row kernel on the CPU: an
/// elementwise op, or a reduction along the last dimension of its result
/// (rms_norm, layer_norm, last-dimension softmax and log_softmax).
bool isRowKernelOp(mlir::Operation *op);
} // namespace weft

#endif // WEFT_PASSES_SCHEDULE_PASSES_H
