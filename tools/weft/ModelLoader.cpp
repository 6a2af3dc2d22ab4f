// Loading models named on the command line.
#include "ModelLoader.h"

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace mlir;
using namespace weft;
using namespace weft::cli;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}
} // namespace

std::vector<OptionSpec> weft::cli::shapeOptions() {
  return {
      {"batch", "", "B", "sequences per step for a config.json (default 1)"},
      {"seq", "", "N", "tokens per sequence for a config.json (default 128)"},
      {"dtype", "", "T",
       "parameter and activation type: f32 (default) or bf16"},
  };
}

llvm::Expected<ModelShapeOptions>
weft::cli::readShapeOptions(const ParsedArgs &args) {
  ModelShapeOptions shape;
  llvm::Expected<int64_t> batch = args.getPositiveInt("batch", 1);
  if (!batch)
    return batch.takeError();
  llvm::Expected<int64_t> seq = args.getPositiveInt("seq", 128);
  if (!seq)
    return seq.takeError();
  shape.build.batch = *batch;
  shape.build.seq = *seq;
  shape.build.dtype = args.get("dtype").value_or("f32");
  shape.givenByUser = args.has("batch") || args.has("seq") || args.has("dtype");
  return shape;
}

ModelLoader::ModelLoader() : diagnostics(sourceMgr, &context) {
  context.loadDialect<WeftDialect, func::FuncDialect>();
}

llvm::Expected<OwningOpRef<ModuleOp>>
ModelLoader::load(llvm::StringRef path, const ModelShapeOptions &options) {
  if (!llvm::sys::fs::exists(path))
    return makeError(path + ": no such file or folder");
  if (path.ends_with(".mlir")) {
    if (options.givenByUser)
      return makeError(path +
                       " has its shapes fixed; --batch, --seq and --dtype "
                       "apply to a config.json");
    auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
    if (!buffer)
      return makeError(path + ": " + buffer.getError().message());
    sourceMgr.AddNewSourceBuffer(std::move(*buffer), llvm::SMLoc());
    OwningOpRef<ModuleOp> module =
        parseSourceFile<ModuleOp>(sourceMgr, &context);
    if (!module)
      return makeError(path + " is not valid weft IR (see the error above)");
    return std::move(module);
  }
  if (path.ends_with(".onnx"))
    return makeError(path + ": ONNX import is not available yet; give a "
                            "config.json or a .mlir file");
  llvm::Expected<frontend::ModelConfig> config =
      frontend::readModelConfig(path);
  if (!config)
    return config.takeError();
  OwningOpRef<ModuleOp> module =
      frontend::buildForward(context, *config, options.build);
  if (!module)
    return makeError(path +
                     ": the graph could not be built (see the error above)");
  if (failed(verify(*module)))
    return makeError(path +
                     ": the built graph does not verify (see the error above)");
  return std::move(module);
}
