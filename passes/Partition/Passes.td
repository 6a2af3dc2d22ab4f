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
    element type) into every rank's replicated parameter. A tensor the
    ranks do not divide is padded with zeros to ranks × ⌈n/ranks⌉ (its last
    blocks end in zeros, which AdamW leaves zero) and cut back after the
    gather.

    With `zero` 3 (ZeRO-3) the trained parameters are blocks too (argument
    attribute `weft.param_shard = {elements, axes, shape}`): each op that
    reads one gets it whole from a `weft.all_gather` right before it
    (forward and backward apart, so no whole copy outlives its use), AdamW
    updates the block in place and nothing is gathered after the step. The
    gathers are prefetched one ahead: each but the first starts where the
    one before it did (before the op that reads that one) and is marked
    `weft.prefetch`, which the runtime starts and leaves running until a
    step touches its memory.
    Under gradient accumulation `@train_step` gets the same blocks, gathered
    before each use; its gradients accumulate whole and `@optimizer_step`
    reduce-scatters the sums.

    After weft-partition (a mesh with an sp axis): ZeRO shards over dp × sp
    (DeepSpeed's data-parallel group under Ulysses), and runs with dp = 1
    too; a gradient weft-partition all-reduced over sp alone is summed over
    dp × sp in one collective instead (each sp rank holds its tokens'
    share), one read from accumulators (summed over sp already) over dp.

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
           "reduce-scatters each gradient as soon as it is computed; 3 also "
           "stores the parameters as blocks, gathered before each use">,
  ];
}

def Partition : Pass<"weft-partition", "mlir::ModuleOp"> {
  let summary = "SPMD rewrite of a step to one sequence- or tensor-parallel rank's shapes";
  let description = [{
    Ulysses sequence parallelism (REFERENCE.md) as sharding: the strategy
    puts the sequence dimension of `input_ids` on the mesh axis `sp` (each
    rank slices its block of N/sp tokens with `weft.all_slice`; the ids stay
    whole in memory), and the pass propagates that split forward through
    every op by its ShardingRuleOpInterface, rewriting global shapes to each
    rank's:
    - a factor split in one operand splits the op: replicated operands that
      hold it are sliced (splat constants and iotas along other dimensions
      made at the local shape), results take their local shapes;
    - a split reduction factor (a weight gradient's tokens, the count of
      targets) leaves each rank a partial result: `weft.all_reduce` over sp
      with the rule's reduction;
    - a split blocked factor is gathered first (`weft.all_gather`) — except
      attention's sequences, which Ulysses trades for heads: q, k, v (and
      the gradient's out and dout) by `weft.all_to_all` [b, N/sp, heads, d]
      → [b, N, heads/sp, d], the output and the gradients back; key/value
      heads fewer than sp are repeated sp/kv times first (their gradients
      summed back); heads % sp and kv % sp (or sp % kv) are checked;
    - the loss (cross-entropy mean) becomes each rank's sum over its targets
      divided by the count of targets over the group: the labels are
      shifted before they are split (the frontend does), so the weighting
      is exact;
    - results returned whole are gathered.
    The mesh `#weft.mesh<["dp"=dp, "sp"=sp]>` (dp omitted when 1) is recorded
    on the module for weft-data-parallel, which runs after. sp = tp = 1 leaves
    the module as it is. N % sp != 0 is refused: `weft compile` and `weft train`
    build a Hugging Face model at N padded to a multiple of sp instead, the
    padding no target (causal attention keeps it from the real tokens).

    Tensor parallelism (Megatron's column- and row-parallel linears) is the
    same propagation from another seed, on the axis `tp`
    (`#weft.mesh<["dp"=dp, "tp"=tp]>`): the weights (and biases) of
    `q_proj`, `k_proj`, `v_proj`, `gate_proj` and `up_proj` are split along
    their outputs, those of `o_proj` and `down_proj` along their inputs —
    arguments at the rank's shape, their optimizer state (moments, master
    weights, gradient accumulators) alike, each marked
    `weft.param_shard`/`weft.state_shard = {elements, axes, shape, dim}`.
    Heads follow from the rules (attention runs on the rank's heads), the
    row-parallel products are partial sums (`weft.all_reduce` over tp, a
    bias added after), the input gradients of the column-parallel ones
    likewise; AdamW updates the rank's slices, `weft.grad_norm` adds the
    split gradients' squares over tp to the whole ones'. heads % tp and
    kv heads % tp are checked first. sp and tp together are refused (not
    there yet).
  }];
  let options = [
    Option<"dp", "dp", "int64_t", "1", "data-parallel ranks (the mesh's dp axis)">,
    Option<"sp", "sp", "int64_t", "1", "sequence-parallel ranks (Ulysses)">,
    Option<"tp", "tp", "int64_t", "1",
           "tensor-parallel ranks (column- and row-parallel linears)">,
  ];
}

#endif // WEFT_PASSES_PARTITION_PASSES_TD
