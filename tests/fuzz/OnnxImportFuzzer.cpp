// libFuzzer target: a model.onnx of arbitrary bytes is imported (protobuf
// parse, initializers and external data, every handler, folding, loop
// unrolling) and the result verified. Anything but a clean import error or
// a module that verifies (or fails verification with a diagnostic) is a
// finding.
#include "frontend/Onnx/OnnxImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // Its own folder, so external data named by a fuzzed model resolves
  // inside it (or not at all).
  static const std::string dir = [] {
    std::string d =
        std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
        "/weft-fuzz-onnx-" + std::to_string(::getpid());
    ::mkdir(d.c_str(), 0700);
    return d;
  }();
  const std::string path = dir + "/model.onnx";
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char *>(data), size);
  mlir::MLIRContext context;
  mlir::ScopedDiagnosticHandler quiet(
      &context, [](mlir::Diagnostic &) { return mlir::success(); });
  weft::frontend::OnnxImportError error;
  // Import-time folding at the default allowance (64M elements) takes
  // minutes under the fuzzer's instrumentation; the logic is the same at
  // 1M.
  weft::frontend::OnnxImportOptions options;
  options.foldElements = int64_t{1} << 20;
  auto module = weft::frontend::importOnnx(context, path, options, error);
  if (module)
    (void)mlir::verify(*module);
  return 0;
}
