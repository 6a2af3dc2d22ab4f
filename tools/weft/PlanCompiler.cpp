// The compiler driver.
#include "PlanCompiler.h"

#include "codegen/PlanBuilder.h"
#include "passes/Pipeline.h"
#include "runtime/ByteCount.h"
#ifdef WEFT_HAVE_CUDA_RUNTIME
#include "runtime/Error.h"
#include "runtime/cuda/CudaExecutor.h"
#endif

#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}
} // namespace

llvm::Expected<weft::codegen::Device>
weft::cli::readDevice(std::optional<std::string> value) {
  if (!value || *value == "cpu")
    return codegen::Device::Cpu;
  if (*value == "cuda")
    return codegen::Device::Cuda;
  return makeError("--device is cpu or cuda, not '" + *value + "'");
}

llvm::Error weft::cli::runPipeline(ModuleOp module,
                                   const CompileOptions &options) {
  PassManager pm(module->getContext());
  std::string error;
  if (failed(buildPipeline(
          pm,
          {options.compileTo, options.threads, options.train, options.frozen,
           options.remat, options.rematBudget, options.optimizer, options.dp,
           options.zero, options.sp, options.tp, options.lossTiles,
           options.offloadActivations,
           options.device == codegen::Device::Cuda ? "cuda" : "cpu"},
          error)))
    return makeError(error);
  if (failed(pm.run(module)))
    return makeError(options.model +
                     ": compilation failed (see the error above)");
  return llvm::Error::success();
}

llvm::Expected<weft::plan::Plan>
weft::cli::compilePlan(ModuleOp module, const CompileOptions &options) {
  CompileOptions all = options;
  all.compileTo.clear();
  if (llvm::Error error = runPipeline(module, all))
    return std::move(error);
  FailureOr<plan::Plan> plan = codegen::buildPlan(
      module, {options.model, options.dumpKernelsDir, options.device});
  if (failed(plan))
    return makeError(options.model +
                     ": code generation failed (see the error above)");
#ifdef WEFT_HAVE_CUDA_RUNTIME
  // Whatever the CUDA runtime would refuse at load, refused here.
  if (options.device == codegen::Device::Cuda) {
    try {
      runtime::CudaExecutor::checkPlan(*plan, options.model);
    } catch (const runtime::Error &error) {
      return makeError(error.what());
    }
  }
#endif
  return std::move(*plan);
}

std::vector<weft::cli::OptionSpec> weft::cli::rematOptions() {
  return {{"remat", "", "POLICY",
           "activation checkpointing of a training step: none (default), "
           "full (per layer), selective (keep linear/attention outputs), "
           "mincut, or auto (mincut layer by layer until --remat-budget)"},
          {"remat-budget", "", "BYTES",
           "with --remat auto: the most bytes of saved activations (K, M, G "
           "suffixes)"},
          {"offload-activations", "", "",
           "keep the activations the backward reads (after --remat: what it "
           "saves) in host memory between the forward and the backward, "
           "each brought back one ahead of its use (ALST's offload: a GPU's "
           "memory drops; on the CPU it is the same memory)"},
          {"loss-tiles", "", "N",
           "ALST's tiled logits and loss: the output projection, the loss "
           "and their gradients by N tiles of tokens, each tile's backward "
           "right after its forward, so that only one tile's logits are "
           "alive (default 1: untiled)"}};
}

llvm::Error weft::cli::readRematOptions(const ParsedArgs &args,
                                        CompileOptions &options) {
  options.remat = args.get("remat").value_or("none");
  options.offloadActivations = args.has("offload-activations");
  llvm::Expected<int64_t> tiles = args.getPositiveInt("loss-tiles", 1);
  if (!tiles)
    return tiles.takeError();
  options.lossTiles = *tiles;
  if (!llvm::is_contained({"none", "full", "selective", "mincut", "auto"},
                          options.remat))
    return makeError("--remat is '" + options.remat +
                     "'; expected none, full, selective, mincut or auto");
  std::optional<std::string> budget = args.get("remat-budget");
  if (options.remat == "auto" && !budget)
    return makeError("--remat auto needs --remat-budget BYTES");
  if (!budget)
    return llvm::Error::success();
  std::optional<int64_t> bytes = runtime::parseByteCount(*budget);
  if (!bytes)
    return makeError("--remat-budget expects bytes (with an optional K, M or "
                     "G suffix), found '" +
                     *budget + "'");
  options.rematBudget = *bytes;
  return llvm::Error::success();
}

weft::OptimizerOptions
weft::cli::adamwPassOptions(const runtime::OptimizerOptions &adamw,
                            int64_t accumulation) {
  weft::OptimizerOptions options;
  options.beta1 = adamw.beta1;
  options.beta2 = adamw.beta2;
  options.eps = adamw.eps;
  options.weightDecay = adamw.weightDecay;
  options.maxGradNorm = adamw.maxGradNorm;
  options.noDecay = llvm::join(adamw.noDecay, ",");
  options.accumulation = accumulation;
  return options;
}
