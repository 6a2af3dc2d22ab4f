// Loads what a user names on the command line into weft IR: a Hugging Face
// config.json (or a folder holding one) through the graph builder, an ONNX
// file through the ONNX importer, or a .mlir file.
#ifndef WEFT_TOOLS_WEFT_MODELLOADER_H
#define WEFT_TOOLS_WEFT_MODELLOADER_H

#include "CommandLine.h"
#include "frontend/HuggingFace/ModelBuilder.h"
#include "frontend/Onnx/OnnxImporter.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/SourceMgr.h"

namespace weft::cli {

/// Build options for a config.json, and whether the user set any of them
/// (they do not apply to a .mlir file, whose shapes are fixed).
struct ModelShapeOptions {
  frontend::BuildOptions build;
  bool givenByUser = false;
  /// --input-shape NAME=AxB (repeatable), for ONNX models.
  frontend::OnnxImportOptions onnx;
};

/// The options that set a config.json's graph: --batch, --seq, --dtype,
/// --loss.
std::vector<OptionSpec> shapeOptions();

/// Reads the shapeOptions() from parsed arguments; errors name the option.
llvm::Expected<ModelShapeOptions> readShapeOptions(const ParsedArgs &args);

/// A training graph for `sp` sequence-parallel ranks whose sequence they do
/// not divide: built at the next multiple of sp, the padding at the end no
/// target (BuildOptions::tokens). Returns the padded length, or an error
/// when the sequence is too short for sp (a rank would hold padding only).
llvm::Expected<int64_t> padForSequenceParallel(ModelShapeOptions &shape,
                                               int64_t sp);

/// An MLIR context with weft's dialects whose diagnostics print with the
/// file:line:col of the source, and the models loaded into it (which must not
/// outlive it).
class ModelLoader {
public:
  ModelLoader();
  /// Loads `path`: a config.json or a folder holding one (built with
  /// `options`), or a .mlir file. Diagnostics of a .mlir file are printed; the
  /// returned error then says the file is invalid.
  llvm::Expected<mlir::OwningOpRef<mlir::ModuleOp>>
  load(llvm::StringRef path, const ModelShapeOptions &options);

private:
  mlir::MLIRContext context;
  llvm::SourceMgr sourceMgr;
  mlir::SourceMgrDiagnosticHandler diagnostics;
};

} // namespace weft::cli

#endif // WEFT_TOOLS_WEFT_MODELLOADER_H
