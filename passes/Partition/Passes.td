// Passes of the partition phase: from one global program to each rank's, with
// its collectives.
#ifndef WEFT_PASSES_PARTITION_PASSES_TD
#define WEFT_PASSES_PARTITION_PASSES_TD

include "mlir/Pass/PassBase.td"

def DataParallel : Pass<"weft-data-parallel", "mlir::ModuleOp"> {
  let summary = "Sums a training step's gradients over data-parallel ranks";
  let description = [{
    For a training step built at one data-parallel rank's share of the batch
    (weft-optimizer's functions), with `dp` ranks: records the mesh
    `#weft.mesh<["dp"=dp]>` on the module (`weft.mesh`), sums every gradient
    the optimizer reads over the group (`weft.all_reduce sum` before
    `weft.grad_norm`, in f32, read by the norm and by `weft.adamw_update`), folds
    1/dp into their `grad_scale` (each rank's loss is its tokens' mean, so
    the global gradient is the mean of the ranks'), and returns the loss
    averaged over the group. Every rank then applies the same update to the
    same replicated weights. Under gradient accumulation the accumulators
    are summed once per optimizer step, in `@optimizer_step`. dp = 1 leaves
    the module as it is.

    With `zero` 1 or 2 (ZeRO-1/2, over the dp group) each rank keeps and
    updates 1/dp of every parameter's optimizer state, flattened: the
    moments and master weights become blocks (`weft.state` arguments marked
    `weft.state_shard = {elements, axes}`), the gradients reach AdamW as this
    rank's block by `weft.reduce_scatter` (stage 1: after the backward, every
    whole gradient kept to then; stage 2: right after each gradient is
    computed, so only blocks stay live), `weft.grad_norm` adds the blocks' squares over
    the group, and the updated blocks are all-gathered (in the parameter's
    element type) into every rank's replicated parameter.

    Example (dp = 2):
    ```mlir
    %n = weft.grad_norm %g : (tensor<4xf32>) -> tensor<f32>
    // becomes
    %s = weft.all_reduce sum %g on #weft.mesh<["dp"=2]> ["dp"] : tensor<4xf32>
    %n = weft.grad_norm %s {grad_scale = 5.000000e-01 : f32} : (tensor<4xf32>) -> tensor<f32>
    ```
  }];
  let options = [
    Option<"dp", "dp", "int64_t", "1", "data-parallel ranks">,
    Option<"zero", "zero", "int64_t", "0",
           "ZeRO stage: 0 replicates the optimizer state; 1 shards it, the "
           "gradients reduce-scattered after the backward; 2 also "
           "reduce-scatters each gradient as soon as it is computed">,
  ];
}

#endif // WEFT_PASSES_PARTITION_PASSES_TD
