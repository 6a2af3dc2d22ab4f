// The compiler driver behind `weft compile` and `weft run`: the pipeline of
// passes, then code generation into a Plan.
#ifndef WEFT_TOOLS_WEFT_PLANCOMPILER_H
#define WEFT_TOOLS_WEFT_PLANCOMPILER_H

#include "CommandLine.h"
#include "codegen/PlanBuilder.h"
#include "passes/Pipeline.h"
#include "runtime/Trainer.h"
#include "runtime/plan.pb.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>

namespace weft::cli {

struct CompileOptions {
  std::string model;          // recorded in the plan
  std::string compileTo;      // stop after this phase (no plan then)
  int threads = 0;            // 0: this machine's cores
  std::string dumpKernelsDir; // write generated kernel sources here
  codegen::Device device = codegen::Device::Cpu;
  bool train = false;         // a training step: the loss's gradients too
  std::string frozen;         // parameters (name substrings) without gradients
  std::string remat = "none"; // weft-rematerialize's policy
  int64_t rematBudget = 0;    // bytes, for remat "auto"
  /// With train: AdamW's update in the plan (weft-optimizer); without it the
  /// plan returns the gradients.
  std::optional<weft::OptimizerOptions> optimizer;
  int64_t dp = 1;   // data-parallel ranks (the model built at one's share)
  int64_t zero = 0; // ZeRO stage over them
  int64_t sp = 1;   // sequence-parallel (Ulysses) ranks
  int64_t tp = 1;   // tensor-parallel ranks (column/row-parallel linears)
  bool offloadActivations = false; // saved activations in host memory
  int64_t lossTiles = 1;           // tiles of the logits and loss (ALST)
};

/// The --remat, --remat-budget, --offload-activations and --loss-tiles
/// options of a training step, and reading them (the budget takes a K, M or
/// G suffix: KiB, MiB, GiB).
std::vector<OptionSpec> rematOptions();
llvm::Error readRematOptions(const ParsedArgs &args, CompileOptions &options);

/// weft-optimizer's options for a run's AdamW settings and micro-batches.
weft::OptimizerOptions adamwPassOptions(const runtime::OptimizerOptions &adamw,
                                        int64_t accumulation);

/// --device cpu|cuda (default cpu); the error names the value.
llvm::Expected<codegen::Device> readDevice(std::optional<std::string> value);

/// Runs the pipeline on `module` in place. Diagnostics go to the context's
/// handler; the error then says the compilation failed.
llvm::Error runPipeline(mlir::ModuleOp module, const CompileOptions &options);

/// Runs the whole pipeline and builds the plan for `options.device`.
llvm::Expected<plan::Plan> compilePlan(mlir::ModuleOp module,
                                       const CompileOptions &options);

} // namespace weft::cli

#endif // WEFT_TOOLS_WEFT_PLANCOMPILER_H
