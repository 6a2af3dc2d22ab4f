// Passes of the schedule phase: op order and fusion groups.
#ifndef WEFT_PASSES_SCHEDULE_PASSES_TD
#define WEFT_PASSES_SCHEDULE_PASSES_TD

include "mlir/Pass/PassBase.td"

def FormFusionGroups : Pass<"weft-form-fusion-groups", "mlir::func::FuncOp"> {
  let summary = "Groups elementwise and row-reduction ops into fusion groups";
  let description = [{
    Walks the function in order and puts every elementwise op and every
    reduction along the last dimension (rms_norm, layer_norm, softmax and
    log_softmax over the last dimension) into a `weft.fusion_group`, each
    group one generated kernel. An op joins the group of one of its producers
    when it has the group's result shape and moving the group down to the op
    delays no use of the group's values by an op outside it; otherwise it
    starts a new group. Residual add + RMSNorm and SiLU · up (SwiGLU) become
    single groups this way. Every group is placed where its last op was.
  }];
  let dependentDialects = ["::weft::WeftDialect"];
}

#endif // WEFT_PASSES_SCHEDULE_PASSES_TD
