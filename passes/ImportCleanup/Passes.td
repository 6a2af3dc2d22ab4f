// Passes of the import-cleanup phase: from freshly imported IR to canonical,
// statically shaped weft IR.
#ifndef WEFT_PASSES_IMPORTCLEANUP_PASSES_TD
#define WEFT_PASSES_IMPORTCLEANUP_PASSES_TD

include "mlir/Pass/PassBase.td"

def CheckStaticShapes : Pass<"weft-check-static-shapes", "mlir::func::FuncOp"> {
  let summary = "Requires every tensor in a function to have a static shape";
  let description = [{
    Every later phase (partitioning, memory planning, code generation) needs
    exact sizes. This pass reports, with its location, each argument or op
    result whose tensor type has a dynamic dimension, so that a user learns at
    import which input shape to give instead of meeting a failure deep in the
    pipeline.
  }];
}

#endif // WEFT_PASSES_IMPORTCLEANUP_PASSES_TD
