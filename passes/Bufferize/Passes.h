// The bufferize phase's passes.
#ifndef WEFT_PASSES_BUFFERIZE_PASSES_H
#define WEFT_PASSES_BUFFERIZE_PASSES_H

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace weft {
#define GEN_PASS_DECL
#include "passes/Bufferize/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "passes/Bufferize/Passes.h.inc"

/// Bytes of `type` in memory, rounded up to the arena's 64-byte alignment.
int64_t alignedBytes(mlir::Type type);
} // namespace weft

#endif // WEFT_PASSES_BUFFERIZE_PASSES_H
