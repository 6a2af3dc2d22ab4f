// The memory phase's passes.
#ifndef WEFT_PASSES_MEMORY_PASSES_H
#define WEFT_PASSES_MEMORY_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace weft {
#define GEN_PASS_DECL
#include "passes/Memory/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "passes/Memory/Passes.h.inc"
} // namespace weft

#endif // WEFT_PASSES_MEMORY_PASSES_H
