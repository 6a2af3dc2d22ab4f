// The compiler driver.
#include "PlanCompiler.h"

#include "codegen/PlanBuilder.h"
#include "passes/Pipeline.h"

#include "mlir/Pass/PassManager.h"

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
          {options.compileTo, options.threads, options.train, options.frozen},
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
  return std::move(*plan);
}
