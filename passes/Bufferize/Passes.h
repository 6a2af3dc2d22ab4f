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

/// Workspace bytes the CPU kernel of `op` needs when run with `threads`
/// threads (0 for most ops).
int64_t cpuWorkspaceBytes(mlir::Operation *op, int threads);
} // namespace weft

#endif // WEFT_PASSES_BUFFERIZE_PASSES_H
