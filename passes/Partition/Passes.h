// The partition phase's passes.
#ifndef WEFT_PASSES_PARTITION_PASSES_H
#define WEFT_PASSES_PARTITION_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace weft {
#define GEN_PASS_DECL
#include "passes/Partition/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "passes/Partition/Passes.h.inc"
} // namespace weft

#endif // WEFT_PASSES_PARTITION_PASSES_H
