// The memory phase's passes.
#ifndef WEFT_PASSES_MEMORY_PASSES_H
#define WEFT_PASSES_MEMORY_PASSES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace weft {
/// What weft-tile-loss marks a loss tile's ops with (the tile's index):
/// weft-interleave-loss-tiles moves them next to their backward, so the
/// memory passes before it neither offload nor recompute what they make.
constexpr llvm::StringLiteral kLossTileAttr = "weft.loss_tile";

#define GEN_PASS_DECL
#include "passes/Memory/Passes.h.inc"
#define GEN_PASS_REGISTRATION
#include "passes/Memory/Passes.h.inc"
} // namespace weft

#endif // WEFT_PASSES_MEMORY_PASSES_H
