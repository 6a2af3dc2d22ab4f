// Passes of the bufferize phase: liveness, arena offsets, exact peak bytes.
#ifndef WEFT_PASSES_BUFFERIZE_PASSES_TD
#define WEFT_PASSES_BUFFERIZE_PASSES_TD

include "mlir/Pass/PassBase.td"

def AssignBuffers : Pass<"weft-assign-buffers", "mlir::func::FuncOp"> {
  let summary = "Places every tensor at an offset in one arena";
  let description = [{
    Computes each value's live range over the function's (scheduled) op
    order — a reshape shares its operand's storage, and so does a fusion
    group's result with a row input of its type that dies there where both
    devices' kernels allow it; inputs live from the start and outputs to the
    end — and packs the ranges into one arena,
    largest first, each at the lowest 64-byte aligned offset that no
    overlapping range occupies. Parameters get consecutive offsets in the
    parameter region and constants in the constant region. The scratch the
    `device`'s kernels take from the plan is planned as a workspace after
    the activations: the largest any one op needs. On the CPU, that of
    attention, bf16 GEMMs and fusion groups for `threads` threads; on CUDA,
    attention's backward (each query row's log-sum-exp and δ) — its GEMMs
    and fusion groups need none. Collectives stage inner-dimension blocks
    there on both.

    Results: `weft.buffers` (one #weft.buffer per result) and
    `weft.live_bytes` on every op, `weft.buffer` on every argument, and on
    the function `weft.activation_bytes`, `weft.workspace_bytes`, the
    per-thread stride of fusion-group scratch in it
    (`weft.workspace_per_thread`), `weft.arena_bytes` (their sum: what the
    runtime allocates), `weft.parameter_bytes`, `weft.constant_bytes`,
    `weft.threads` and `weft.device`.
  }];
  let options = [
    Option<"threads", "threads", "int", "0",
           "threads the workspace is planned for (0: this machine's cores)">,
    Option<"device", "device", "std::string", "\"cpu\"",
           "the device whose kernels the workspace is planned for (cpu, "
           "cuda)">,
  ];
}

#endif // WEFT_PASSES_BUFFERIZE_PASSES_TD
