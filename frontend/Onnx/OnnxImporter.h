// Importing ONNX models (opset 13 to 20) into weft IR.
#ifndef WEFT_FRONTEND_ONNX_ONNXIMPORTER_H
#define WEFT_FRONTEND_ONNX_ONNXIMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>
#include <vector>

namespace weft::frontend {

struct OnnxImportOptions {
  /// Static shapes for graph inputs whose dimensions are symbolic
  /// (`--input-shape input_ids=1x2048`), by input name.
  std::map<std::string, std::vector<int64_t>> inputShapes;

  /// Graph inputs whose values are fixed at import, by name: they fold like
  /// initializers (a Split's sizes or a Trilu's k given as graph inputs) and
  /// are not inputs of the imported function. `ints` for integer and bool
  /// inputs, `floats` for FLOAT ones.
  struct KnownInput {
    std::vector<int64_t> shape;
    std::vector<int64_t> ints;
    std::vector<double> floats;
  };
  std::map<std::string, KnownInput> knownInputs;

  /// Elements that all values evaluated at import may hold together (512 MiB
  /// as the evaluator's doubles, four 4096² masks); past it the importer
  /// emits IR, so no chain of import-time arithmetic runs it out of memory
  /// or time.
  int64_t foldElements = int64_t{1} << 26;
};

/// An importer error: `unsupported` when the model uses an op, attribute or
/// type weft does not import (the conformance runner counts those apart from
/// failures).
struct OnnxImportError {
  std::string message;
  bool unsupported = false;
};

/// Imports the model at `path` as `func.func @forward(inputs...) ->
/// (outputs...)`, inputs and outputs named as in the graph (`weft.input`,
/// `weft.output`). Initializers (including external data) become constants.
/// Integer shape computations on known values (Shape → Gather → Concat →
/// Reshape and the like) are folded at import. Returns null and sets `error`
/// naming the file and the node on failure.
mlir::OwningOpRef<mlir::ModuleOp> importOnnx(mlir::MLIRContext &context,
                                             const std::string &path,
                                             const OnnxImportOptions &options,
                                             OnnxImportError &error);

/// The ONNX ops weft imports with the opset range of each ("Add 13-20"),
/// sorted; those evaluated only on values known at import say so.
std::vector<std::string> supportedOnnxOps();

} // namespace weft::frontend

#endif // WEFT_FRONTEND_ONNX_ONNXIMPORTER_H
