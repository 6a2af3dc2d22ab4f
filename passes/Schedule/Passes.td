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
    single groups this way. An op reading several groups joins them all
    where that keeps memory; where its groups cannot move down to it, it
    moves up (with the later groups to the group that ends first, or alone
    to one of them) where its inputs are ready there and what it holds
    longer weighs no more than what it frees. An op that joins no producer's
    group joins the group just before it when that reads one of its inputs
    (siblings). Every group is placed where its last op is.
    Splat constants and row producers (an iota along the last dimension, a
    broadcast of a value per row along the rows or of a vector to every row,
    as a norm's weight in its backward) go into each group that reads them,
    instead of being written out as tensors of the group's shape.
  }];
  let dependentDialects = ["::weft::WeftDialect"];
}

def AccumulateProducts : Pass<"weft-accumulate-products", "mlir::func::FuncOp"> {
  let summary = "Computes a matrix product onto the tensor it is added to";
  let description = [{
    `weft.add` of a float `weft.matmul` (seen through reshapes that nothing
    else reads) and a tensor that is ready before the product becomes the
    product with that tensor as its accumulator: `matmul %a, %b, acc %c`, a
    GEMM with beta = 1. The gradients a value sums over its readers (x's
    from q, k and v; from the gate and up projections; a tied embedding's
    from its lookup and the output projection) no longer each take memory of
    their own and an add that reads them all: each product lands on the sum
    so far, over it where that dies there (weft-assign-buffers). Where both
    addends are products, the later one accumulates onto the earlier; a
    product made before its addend is left as it is (moving it later would
    hold its operands longer). Runs after weft-partition (a product with a
    split contraction adds its partial sum after the all-reduce) and before
    `weft-legalize-cpu-types`.
  }];
  let dependentDialects = ["::weft::WeftDialect"];
}

def LegalizeCpuTypes : Pass<"weft-legalize-cpu-types", "mlir::func::FuncOp"> {
  let summary = "Computes in f32 around CPU kernels that have no bf16 form";
  let description = [{
    CPU plans keep bf16 tensors in bf16 (half the memory of f32) and compute
    in f32. Generated row kernels widen and narrow inside themselves, `linear`
    widens tiles of its bf16 input and weight in its workspace, and gather
    and reshape move bf16 as it is. Around every other op with a bf16
    operand or result (attention, rope, matmul, cross_entropy, softmax along
    another dimension than the last, ...) this pass converts the bf16
    operands to f32 and the results back to bf16, so that the op itself
    computes in f32 and every value keeps its type. Runs before
    `weft-form-fusion-groups`, which fuses the conversions into their
    neighbours' row kernels. A result the global norm and AdamW read as a
    gradient stays f32 for them (they take any float type): an embedding's
    gradient scattered in f32, a norm weight's column sums.
  }];
  let dependentDialects = ["::weft::WeftDialect"];
}

#endif // WEFT_PASSES_SCHEDULE_PASSES_TD
