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
      {"loss", "", "",
       "a config.json's graph also takes labels (BxS) and returns the "
       "causal-LM loss first"},
      {"input-shape", "", "NAME=AxB",
       "static shape of an ONNX input with symbolic dimensions (repeatable)"},
  };
}

llvm::Expected<int64_t>
weft::cli::padForSequenceParallel(ModelShapeOptions &shape, int64_t sp) {
  frontend::BuildOptions &build = shape.build;
  if (sp > 1 && build.loss && build.seq % sp != 0) {
    const int64_t padded = (build.seq + sp - 1) / sp * sp;
    // The last rank's block must hold a real token.
    if (padded - build.seq >= padded / sp)
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "--seq " + std::to_string(build.seq) + " is too short for --sp " +
              std::to_string(sp) + ": padded to " + std::to_string(padded) +
              ", the last rank's " + std::to_string(padded / sp) +
              " positions would all be padding (Ulysses needs at least " +
              std::to_string(padded - padded / sp + 1) + " tokens here)");
    build.tokens = build.seq;
    build.seq = padded;
  }
  return build.seq;
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
  shape.build.loss = args.has("loss");
  shape.givenByUser = args.has("batch") || args.has("seq") ||
                      args.has("dtype") || args.has("loss");
  for (const std::string &value : args.getAll("input-shape")) {
    size_t eq = value.find('=');
    std::vector<int64_t> dims;
    bool ok = eq != std::string::npos && eq > 0;
    llvm::SmallVector<llvm::StringRef> parts;
    llvm::StringRef(value).substr(eq + 1).split(parts, 'x');
    for (llvm::StringRef part : parts) {
      int64_t d;
      ok &= !part.getAsInteger(10, d) && d >= 0;
      dims.push_back(d);
    }
    if (!ok)
      return makeError("--input-shape " + value +
                       ": expected NAME=AxBx… with non-negative sizes");
    shape.onnx.inputShapes[value.substr(0, eq)] = dims;
  }
  return shape;
}

ModelLoader::ModelLoader() : diagnostics(sourceMgr, &context) {
  context.loadDialect<WeftDialect, func::FuncDialect>();
}

llvm::Expected<OwningOpRef<ModuleOp>>
ModelLoader::load(llvm::StringRef path, const ModelShapeOptions &options) {
  if (!llvm::sys::fs::exists(path))
    return makeError(path + ": no such file or folder");
  if (path.ends_with(".safetensors") || path.ends_with(".index.json"))
    return makeError(path + " holds weights, not a model: give the folder "
                            "that holds it and its config.json (or the "
                            "config.json), and the weights with --weights");
  if (llvm::sys::fs::is_directory(path) &&
      !llvm::sys::fs::exists(path + "/config.json"))
    return makeError(path + ": a folder without a config.json; weft imports "
                            "a Hugging Face model folder, a config.json, a "
                            ".onnx file or weft IR (.mlir)");
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
  if (path.ends_with(".onnx")) {
    if (options.givenByUser)
      return makeError(path + ": --batch, --seq and --dtype apply to a "
                              "config.json; give ONNX inputs' shapes with "
                              "--input-shape NAME=AxB");
    frontend::OnnxImportError error;
    OwningOpRef<ModuleOp> module =
        frontend::importOnnx(context, path.str(), options.onnx, error);
    if (!module)
      return makeError(error.message);
    if (failed(verify(*module)))
      return makeError(path + ": the imported graph does not verify (see the "
                              "error above)");
    return std::move(module);
  }
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
