// Passes of the memory phase: what a training step keeps, recomputes or
// moves, given its memory.
#ifndef WEFT_PASSES_MEMORY_PASSES_TD
#define WEFT_PASSES_MEMORY_PASSES_TD

include "mlir/Pass/PassBase.td"

def Rematerialize : Pass<"weft-rematerialize", "mlir::func::FuncOp"> {
  let summary = "Activation checkpointing: recompute forward values in the backward";
  let description = [{
    Runs on a differentiated function (weft-autodiff): the forward ops are
    those the loss (the first result) depends on, the rest is the backward.
    A forward value the backward reads is *saved*: it stays alive from the
    forward to its backward use. This pass instead recomputes some forward
    ops right before the backward of their layer needs them (ops are grouped
    by layer from their location, `model.layers.N.…` or
    `transformer.h.N.…`), so that what they produced dies in the forward.
    A value another layer's forward reads (a layer's output, the next one's
    input) is always saved, but a ZeRO-3 parameter gathered whole is not:
    a recomputed op that reads one gathers it again, as DeepSpeed's
    recomputation does (prefetched like weft-data-parallel's gathers: each
    starts where the gather before it did). Policies:
    Under every policy, first, a forward elementwise op whose inputs the
    backward reads anyway and whose every backward reader is elementwise
    (SwiGLU's silu(gate), read by its gradient's products) is recomputed
    there instead of saved: the copy joins its readers' fused kernel, so it
    costs no step and saves its bytes.
    - `none`: nothing else is recomputed.
    - `full`: per-layer checkpointing: only each layer's inputs are saved;
      every forward op of a layer is recomputed for its backward.
    - `selective`: the outputs of heavy ops (linear, matmul, attention,
      grouped_linear) are saved, everything else (norms, RoPE, activations,
      residual adds) is recomputed.
    - `mincut`: per layer, the set of values to save is a minimum cut of the
      layer's forward graph as a flow network (Boost.Graph's
      Boykov–Kolmogorov max-flow): each op a node of capacity its result's
      bytes, fed by the values the layer reads, draining into the backward's
      uses; heavy ops are never recomputed. It saves the fewest bytes from
      which the backward's inputs can be recomputed without a heavy op.
    - `auto`: `mincut` applied to one layer after another, first layer first
      (its activations live longest), until the saved bytes fit `budget`
      (none when they already do); when every layer is cut and they still
      do not fit, `full` the same way.
    The function gets `weft.saved_bytes`: the bytes of the forward values the
    backward reads after the pass.
  }];
  let options = [
    Option<"policy", "policy", "std::string", "\"none\"",
           "none, full, selective, mincut or auto">,
    Option<"budget", "budget", "int64_t", "0",
           "with auto: the most bytes of saved activations">,
  ];
}

def OffloadActivations : Pass<"weft-offload-activations", "mlir::func::FuncOp"> {
  let summary = "Keeps a training step's saved activations in host memory between forward and backward";
  let description = [{
    Arctic Long Sequence Training's activation offload. Runs on a
    differentiated function (after weft-rematerialize, on what it saves):
    each forward value the backward reads, of at least `min-bytes`, is
    copied to host memory (`weft.offload`) right after its last forward use
    and brought back (`weft.reload`) for the backward, which reads the
    reloaded value. The reloads are issued one value ahead — value i's
    before the first backward use of value i − 1, in the order the backward
    first uses them — so that on a GPU (copies on a stream of their own)
    the next value's copy overlaps this one's backward. The device holds a
    saved value only while the forward uses it and from its reload on;
    weft-assign-buffers plans the host memory apart from the arena. The
    values and losses are those of the step without it, to the bit.
  }];
  let options = [
    Option<"minBytes", "min-bytes", "int64_t", "0",
           "offload only saved values of at least this many bytes">,
  ];
}

def TileLoss : Pass<"weft-tile-loss", "mlir::ModuleOp"> {
  let summary = "ALST's tiled logits and loss: the output projection and cross-entropy by tiles of tokens";
  let description = [{
    Runs on the forward, before weft-autodiff. The loss
    `cross_entropy(linear(h, W), labels)` (mean or sum, the linear without a
    bias and read only by the loss) becomes `tiles` tiles of the flattened
    tokens, each `cross_entropy(linear(h_t, W), labels_t)` summed, the sum
    over the count of non-ignored tokens for the mean — the same loss. Each
    tile's ops carry `weft.loss_tile` (its index) and the ops that sum them
    `weft.loss_sum`, for weft-interleave-loss-tiles after the backward is
    built. With no such loss the pass fails, as it does with more tiles than
    tokens.
  }];
  let options = [
    Option<"tiles", "tiles", "int64_t", "2", "tiles of tokens (at least 2)">,
  ];
  let dependentDialects = ["::weft::WeftDialect"];
}

def InterleaveLossTiles : Pass<"weft-interleave-loss-tiles", "mlir::func::FuncOp"> {
  let summary = "Runs each loss tile's forward right before its backward";
  let description = [{
    Runs after weft-autodiff on the tiles weft-tile-loss made: the ops that
    sum the tiles' losses move to the end, and each tile's forward moves
    down to the first backward op that reads it, so that a tile's logits
    live from its projection to its gradient and no two tiles' logits are
    alive at once — ALST's "backward done inside the forward". Each tile's
    weight gradient lands on the previous tile's (weft-accumulate-products)
    and its input gradient is added into the input's (a scatter into it).
    Removes the markers.
  }];
}

#endif // WEFT_PASSES_MEMORY_PASSES_TD
