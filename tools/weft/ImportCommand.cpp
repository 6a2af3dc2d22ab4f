// weft import: a model description to weft IR.
#include "Commands.h"
#include "ModelLoader.h"

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace weft::cli;

const VerbSpec &weft::cli::importSpec() {
  static const VerbSpec spec = [] {
    VerbSpec s;
    s.name = "import";
    s.arguments = "MODEL";
    s.summary = "Import a model into weft IR (a .mlir file).";
    s.details =
        "MODEL is a Hugging Face config.json, or a model folder holding one\n"
        "(Llama, Mistral, Qwen2, Mixtral, BLOOM): the result is func.func\n"
        "@forward(input_ids, parameters...) -> logits, each parameter named\n"
        "as in the checkpoint. Or an ONNX model (opset 13-17): inputs and\n"
        "outputs as in the graph, initializers as constants.";
    s.options = shapeOptions();
    s.options.push_back(
        {"list-ops", "", "", "print the ONNX ops weft imports and exit"});
    s.options.push_back(
        {"output", "o", "FILE", "write the IR here (default: stdout)"});
    s.minPositional = 0;
    s.maxPositional = 1;
    return s;
  }();
  return spec;
}

int weft::cli::runImport(llvm::ArrayRef<std::string> args) {
  ParsedArgs parsed;
  if (int code = parseOrReport(args, importSpec(), parsed); code >= 0)
    return code;
  auto fail = [](llvm::Error error) {
    llvm::errs() << "weft import: " << llvm::toString(std::move(error)) << "\n";
    return 1;
  };
  if (parsed.has("list-ops")) {
    for (const std::string &op : frontend::supportedOnnxOps())
      llvm::outs() << op << "\n";
    return 0;
  }
  if (parsed.positional.empty())
    return fail(llvm::createStringError(llvm::inconvertibleErrorCode(),
                                        "expected MODEL (see --help)"));
  llvm::Expected<ModelShapeOptions> shape = readShapeOptions(parsed);
  if (!shape)
    return fail(shape.takeError());

  ModelLoader loader;
  auto module = loader.load(parsed.positional[0], *shape);
  if (!module)
    return fail(module.takeError());

  std::string error;
  auto output = openOutputFile(parsed.get("output").value_or("-"), &error);
  if (!output) {
    llvm::errs() << "weft import: " << error << "\n";
    return 1;
  }
  (*module)->print(output->os());
  output->keep();
  return 0;
}
