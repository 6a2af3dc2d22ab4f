// weft-opt: the MLIR driver for weft's dialect and passes, used by the lit
// tests. `--compile-to=<phase>` runs the pipeline up to that phase.
#include "ir/WeftDialect.h"
#include "passes/Pipeline.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"

using namespace mlir;

// cl::desc keeps a StringRef: the text must outlive the option.
static const std::string compileToHelp =
    "Run the weft pipeline up to and including this phase (" +
    llvm::join(weft::getPhaseNames(), ", ") + ")";
static llvm::cl::opt<std::string> compileTo("compile-to",
                                            llvm::cl::desc(compileToHelp),
                                            llvm::cl::value_desc("phase"),
                                            llvm::cl::init(""));

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  DialectRegistry registry;
  registry.insert<weft::WeftDialect, func::FuncDialect, arith::ArithDialect,
                  scf::SCFDialect, tensor::TensorDialect>();
  registerTransformsPasses();
  weft::registerPasses();

  auto [inputFile, outputFile] = registerAndParseCLIOptions(
      argc, argv, "weft optimizer driver\n", registry);
  MlirOptMainConfig config = MlirOptMainConfig::createFromCLOptions();
  if (!compileTo.empty()) {
    if (!llvm::is_contained(weft::getPhaseNames(), compileTo)) {
      llvm::errs() << "weft-opt: unknown phase '" << compileTo
                   << "' for --compile-to; the phases are "
                   << llvm::join(weft::getPhaseNames(), ", ") << "\n";
      return 1;
    }
    weft::PipelineOptions options{compileTo};
    config.setPassPipelineSetupFn([options](PassManager &pm) -> LogicalResult {
      std::string error;
      if (failed(weft::buildPipeline(pm, options, error)))
        return emitError(UnknownLoc::get(pm.getContext())) << error;
      return success();
    });
  }

  std::string errorMessage;
  auto input = openInputFile(inputFile, &errorMessage);
  if (!input) {
    llvm::errs() << errorMessage << "\n";
    return 1;
  }
  auto output = openOutputFile(outputFile, &errorMessage);
  if (!output) {
    llvm::errs() << errorMessage << "\n";
    return 1;
  }
  if (failed(MlirOptMain(output->os(), std::move(input), registry, config)))
    return 1;
  output->keep();
  return 0;
}
