// The compiler's pipeline: named phases in order (DESIGN.md, "Data flow").
#ifndef WEFT_PASSES_PIPELINE_H
#define WEFT_PASSES_PIPELINE_H

#include "passes/Train/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"

#include <optional>

namespace weft {

/// The phases, in pipeline order.
llvm::ArrayRef<llvm::StringRef> getPhaseNames();

struct PipelineOptions {
  /// Stop after this phase (one of getPhaseNames()); empty runs them all.
  std::string compileTo;
  /// Threads the CPU workspace is planned for (0: this machine's cores).
  int threads = 0;
  /// The train phase: differentiate the entry function's loss (its first
  /// result) with respect to its parameters, those whose names contain one
  /// of the comma-separated `frozen` substrings aside.
  bool train = false;
  std::string frozen;
  /// The memory phase, for a training step: weft-rematerialize's policy
  /// (none, full, selective, mincut, auto) and auto's budget in bytes.
  std::string remat = "none";
  int64_t rematBudget = 0;
  /// With `train`: the optimizer step after the backward (weft-optimizer's
  /// options); without it the training plan returns the gradients.
  std::optional<OptimizerOptions> optimizer;
  /// The partition phase: data-parallel ranks (weft-data-parallel; the
  /// model is built at one rank's share of the batch).
  int64_t dp = 1;
  /// ZeRO stage (0-2) over the dp ranks.
  int64_t zero = 0;
  /// Sequence-parallel (Ulysses) ranks: weft-partition splits the global
  /// step's sequence over them.
  int64_t sp = 1;
  /// Tensor-parallel ranks: weft-partition splits the column- and
  /// row-parallel linears' weights over them.
  int64_t tp = 1;
  /// With `train`: ALST's tiled logits and loss in this many tiles of
  /// tokens (weft-tile-loss before the backward is built,
  /// weft-interleave-loss-tiles after); 1: none.
  int64_t lossTiles = 1;
  /// The memory phase, for a training step: weft-offload-activations after
  /// weft-rematerialize (what it saves waits in host memory).
  bool offloadActivations = false;
  /// The bufferize phase: the device ("cpu" or "cuda") whose kernels the
  /// workspace is planned for.
  std::string device = "cpu";
};

/// Adds the passes of every phase up to and including `options.compileTo` to
/// `pm` (anchored on builtin.module). Fails, naming the valid phases, when
/// compileTo is not a phase.
llvm::LogicalResult buildPipeline(mlir::OpPassManager &pm,
                                  const PipelineOptions &options,
                                  std::string &error);

/// Registers every weft pass, for weft-opt.
void registerPasses();

} // namespace weft

#endif // WEFT_PASSES_PIPELINE_H
