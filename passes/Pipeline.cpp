// The pipeline of named phases. Phases without passes yet are kept in order so
// that --compile-to accepts every name of DESIGN.md from the start.
#include "passes/Pipeline.h"

#include "passes/Bufferize/Passes.h"
#include "passes/ImportCleanup/Passes.h"
#include "passes/Memory/Passes.h"
#include "passes/Partition/Passes.h"
#include "passes/Schedule/Passes.h"
#include "passes/Train/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;

namespace {
constexpr llvm::StringLiteral kPhases[] = {
    "import-cleanup", "model",  "train",    "strategy",
    "partition",      "memory", "schedule", "bufferize",
};

void addImportCleanup(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addNestedPass<func::FuncOp>(weft::createCheckStaticShapes());
}
} // namespace

llvm::ArrayRef<llvm::StringRef> weft::getPhaseNames() {
  static const llvm::SmallVector<llvm::StringRef> names(std::begin(kPhases),
                                                        std::end(kPhases));
  return names;
}

LogicalResult weft::buildPipeline(OpPassManager &pm,
                                  const PipelineOptions &options,
                                  std::string &error) {
  llvm::StringRef last = options.compileTo.empty()
                             ? llvm::StringRef(kPhases[std::size(kPhases) - 1])
                             : llvm::StringRef(options.compileTo);
  if (!llvm::is_contained(getPhaseNames(), last)) {
    error = "unknown phase '" + last.str() + "'; the phases are " +
            llvm::join(getPhaseNames(), ", ");
    return failure();
  }
  for (llvm::StringRef phase : getPhaseNames()) {
    if (phase == "import-cleanup")
      addImportCleanup(pm);
    if (phase == "train" && options.train) {
      const bool tiled = options.lossTiles > 1;
      if (tiled && options.sp > 1) {
        error = "tiling the loss (" + std::to_string(options.lossTiles) +
                " tiles) with sequence parallelism (sp = " +
                std::to_string(options.sp) +
                ") is not supported yet: the tiles would cut the tokens "
                "before they are split over the ranks";
        return failure();
      }
      if (tiled && options.zero >= 3) {
        error = "tiling the loss (" + std::to_string(options.lossTiles) +
                " tiles) with ZeRO-3 is not supported yet: each tile would "
                "gather the output projection's weight again";
        return failure();
      }
      if (tiled)
        pm.addPass(
            weft::createTileLoss(weft::TileLossOptions{options.lossTiles}));
      pm.addNestedPass<func::FuncOp>(
          weft::createAutodiff(weft::AutodiffOptions{false, options.frozen}));
      pm.addPass(createCanonicalizerPass());
      pm.addPass(createCSEPass());
      if (options.optimizer)
        pm.addPass(weft::createOptimizer(*options.optimizer));
    }
    if (phase == "partition" && (options.sp > 1 || options.tp > 1))
      pm.addPass(weft::createPartition(
          weft::PartitionOptions{options.dp, options.sp, options.tp}));
    if (phase == "partition" &&
        (options.dp > 1 ||
         ((options.sp > 1 || options.tp > 1) && options.zero > 0)))
      pm.addPass(weft::createDataParallel(
          weft::DataParallelOptions{options.dp, options.zero}));
    if (phase == "memory" && options.train)
      pm.addNestedPass<func::FuncOp>(weft::createRematerialize(
          weft::RematerializeOptions{options.remat, options.rematBudget}));
    if (phase == "memory" && options.train && options.offloadActivations)
      pm.addNestedPass<func::FuncOp>(weft::createOffloadActivations());
    if (phase == "memory" && options.train && options.lossTiles > 1)
      pm.addNestedPass<func::FuncOp>(weft::createInterleaveLossTiles());
    if (phase == "schedule") {
      pm.addNestedPass<func::FuncOp>(weft::createAccumulateProducts());
      pm.addNestedPass<func::FuncOp>(weft::createLegalizeCpuTypes());
      pm.addNestedPass<func::FuncOp>(weft::createFormFusionGroups());
    }
    if (phase == "bufferize")
      pm.addNestedPass<func::FuncOp>(weft::createAssignBuffers(
          weft::AssignBuffersOptions{options.threads, options.device}));
    if (phase == last)
      break;
  }
  return success();
}

void weft::registerPasses() {
  registerImportCleanupPasses();
  registerTrainPasses();
  registerPartitionPasses();
  registerMemoryPasses();
  registerSchedulePasses();
  registerBufferizePasses();
}
