// The ONNX backend conformance runner: imports each test model of the ONNX
// backend test data (Debian's libonnx-testdata), compiles it for the CPU,
// runs it on the test's inputs and compares with its expected outputs.
// Prints passed / failed / unsupported per op and in total; exits non-zero
// when a test of a supported op fails.
//
// With --known-inputs every test input is given to the importer as a known
// value, so the importer's host evaluator computes the outputs at import:
// the same tests check it.
//
//   weft-onnx-conformance DIR... [--known-inputs] [--verbose]
#include "codegen/PlanBuilder.h"
#include "frontend/Onnx/OnnxImporter.h"
#include "frontend/Onnx/OnnxTensor.h"
#include "passes/Pipeline.h"
#include "runtime/Error.h"
#include "runtime/cpu/CpuExecutor.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

using namespace weft;
namespace rt = weft::runtime;

namespace {
enum class Outcome { Passed, Failed, Unsupported };

struct Result {
  Outcome outcome;
  std::string why;
};

/// A test data file as a host tensor, or why it is not run (a sequence, a
/// map, an element type weft has no kernels for).
std::optional<rt::HostTensor> readData(const std::string &file,
                                       std::string &why) {
  try {
    return frontend::readOnnxTensor(file);
  } catch (const rt::Error &e) {
    why = e.what();
    return std::nullopt;
  }
}

std::vector<std::string> dataFiles(const std::string &dir, const char *kind) {
  std::vector<std::string> files;
  for (int i = 0;; ++i) {
    std::string file = dir + "/" + kind + "_" + std::to_string(i) + ".pb";
    if (!llvm::sys::fs::exists(file))
      return files;
    files.push_back(file);
  }
}

/// Compares as numpy.testing.assert_allclose(actual, expected, rtol=1e-3,
/// atol=1e-5) does; NaN equals NaN.
std::string compare(const rt::HostTensor &actual,
                    const rt::HostTensor &expected) {
  if (actual.shape != expected.shape || actual.dtype != expected.dtype)
    return "output is " + rt::describe(actual.dtype, actual.shape) +
           ", expected " + rt::describe(expected.dtype, expected.shape);
  const int64_t n = expected.numElements();
  auto element = [](const rt::HostTensor &t, int64_t i) -> double {
    auto load = [&](auto typed) {
      decltype(typed) v;
      std::memcpy(&v, t.bytes.data() + i * sizeof(v), sizeof(v));
      return static_cast<double>(v);
    };
    switch (t.dtype) {
    case plan::F32:
      return load(float());
    case plan::I64:
      return load(int64_t());
    case plan::I32:
      return load(int32_t());
    default: // bool
      return t.bytes[i] != 0;
    }
  };
  for (int64_t i = 0; i < n; ++i) {
    const double a = element(actual, i), e = element(expected, i);
    if (std::isnan(a) && std::isnan(e))
      continue;
    if (!(std::abs(a - e) <= 1e-5 + 1e-3 * std::abs(e)))
      return "element " + std::to_string(i) + " is " + std::to_string(a) +
             ", expected " + std::to_string(e);
  }
  return "";
}

/// Gives `t` to the importer as the known value of input `name`.
void makeKnown(frontend::OnnxImportOptions &options, const std::string &name,
               const rt::HostTensor &t) {
  auto &known = options.knownInputs[name];
  known.shape = t.shape;
  for (int64_t e = 0; e < t.numElements(); ++e) {
    switch (t.dtype) {
    case plan::F32:
      known.floats.push_back(
          reinterpret_cast<const float *>(t.bytes.data())[e]);
      break;
    case plan::I64:
      known.ints.push_back(
          reinterpret_cast<const int64_t *>(t.bytes.data())[e]);
      break;
    case plan::I32:
      known.ints.push_back(
          reinterpret_cast<const int32_t *>(t.bytes.data())[e]);
      break;
    default: // bool
      known.ints.push_back(t.bytes[e] != 0);
    }
  }
}

Result runTest(const std::string &dir, bool allKnown) {
  const std::string model = dir + "/model.onnx";
  const std::string data = dir + "/test_data_set_0";
  std::vector<rt::HostTensor> inputs, outputs;
  std::vector<std::string> inputNames;
  std::string why;
  for (const std::string &file : dataFiles(data, "input")) {
    auto host = readData(file, why);
    if (!host)
      return {Outcome::Unsupported, "input not run: " + why};
    inputs.push_back(*host);
  }
  for (const std::string &file : dataFiles(data, "output")) {
    auto host = readData(file, why);
    if (!host)
      return {Outcome::Unsupported, "output not run: " + why};
    outputs.push_back(*host);
  }
  // Input names and static shapes come from the graph and the data.
  onnx::ModelProto proto;
  {
    std::ifstream in(model, std::ios::binary);
    if (!proto.ParseFromIstream(&in))
      return {Outcome::Failed, model + " does not parse"};
  }
  std::vector<std::string> graphInputs;
  std::set<std::string> initializers;
  for (const auto &init : proto.graph().initializer())
    initializers.insert(init.name());
  for (const auto &input : proto.graph().input())
    if (!initializers.count(input.name()))
      graphInputs.push_back(input.name());
  if (graphInputs.size() != inputs.size())
    return {Outcome::Unsupported, "optional inputs are not run"};
  frontend::OnnxImportOptions options;
  for (size_t i = 0; i < inputs.size(); ++i)
    options.inputShapes[graphInputs[i]] = inputs[i].shape;

  if (allKnown)
    for (size_t i = 0; i < inputs.size(); ++i)
      makeKnown(options, graphInputs[i], inputs[i]);

  mlir::MLIRContext context;
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    diagnostics += d.str() + "; ";
    return mlir::success();
  });
  frontend::OnnxImportError error;
  auto module = frontend::importOnnx(context, model, options, error);
  // An integer input that a node needs at import (a Split's sizes, a
  // Trilu's k) is given as a known value, as a user with a fixed model
  // would, one at a time as the importer names them.
  while (!module) {
    const size_t at = error.message.find("computed at run time");
    const size_t close = error.message.rfind('\'', at);
    const size_t open = close == std::string::npos || close == 0
                            ? std::string::npos
                            : error.message.rfind('\'', close - 1);
    if (at == std::string::npos || open == std::string::npos)
      break;
    const std::string name = error.message.substr(open + 1, close - open - 1);
    auto input = std::find(graphInputs.begin(), graphInputs.end(), name);
    if (input == graphInputs.end() || options.knownInputs.count(name))
      break;
    const rt::HostTensor &t = inputs[input - graphInputs.begin()];
    if (t.dtype != plan::I64 && t.dtype != plan::I32)
      break;
    makeKnown(options, name, t);
    module = frontend::importOnnx(context, model, options, error);
  }
  if (!module)
    return {error.unsupported ? Outcome::Unsupported : Outcome::Failed,
            error.message};
  mlir::PassManager pm(&context);
  std::string pipelineError;
  if (failed(buildPipeline(pm, {"", 2}, pipelineError)) ||
      failed(pm.run(*module)))
    return {Outcome::Failed, "compile: " + diagnostics};
  auto plan = codegen::buildPlan(*module, {model, ""});
  if (failed(plan))
    return {Outcome::Unsupported, "no CPU lowering: " + diagnostics};
  try {
    rt::CpuExecutor executor(*plan, model, 2);
    for (size_t i = 0; i < inputs.size(); ++i)
      if (!options.knownInputs.count(graphInputs[i]))
        executor.setInput(graphInputs[i], inputs[i]);
    executor.run();
    for (size_t i = 0; i < outputs.size(); ++i) {
      std::string mismatch =
          compare(executor.output(proto.graph().output(i).name()), outputs[i]);
      if (!mismatch.empty())
        return {Outcome::Failed,
                proto.graph().output(i).name() + ": " + mismatch};
    }
  } catch (const rt::Error &e) {
    return {Outcome::Failed, std::string("run: ") + e.what()};
  }
  return {Outcome::Passed, ""};
}

/// The op a node test is for: its graph's first node's type.
std::string opOf(const std::string &dir) {
  onnx::ModelProto proto;
  std::ifstream in(dir + "/model.onnx", std::ios::binary);
  if (!proto.ParseFromIstream(&in) || proto.graph().node_size() == 0)
    return "?";
  return proto.graph().node(0).op_type();
}
} // namespace

int main(int argc, char **argv) {
  bool verbose = false, allKnown = false;
  std::vector<std::string> roots;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--known-inputs")
      allKnown = true;
    else if (std::string(argv[i]) == "--verbose")
      verbose = true;
    else
      roots.push_back(argv[i]);
  }
  struct Counts {
    int passed = 0, failed = 0, unsupported = 0;
  };
  std::map<std::string, Counts> byOp;
  Counts total;
  std::vector<std::string> failures;
  for (const std::string &root : roots) {
    std::error_code ec;
    std::vector<std::string> dirs;
    for (llvm::sys::fs::directory_iterator it(root, ec), end; it != end && !ec;
         it.increment(ec))
      if (llvm::sys::fs::exists(it->path() + "/model.onnx"))
        dirs.push_back(it->path());
    std::sort(dirs.begin(), dirs.end());
    for (const std::string &dir : dirs) {
      if (verbose)
        std::fprintf(stderr, "running %s\n", dir.c_str());
      Result r;
      try {
        r = runTest(dir, allKnown);
      } catch (const std::exception &e) {
        r = {Outcome::Failed, std::string("exception: ") + e.what()};
      }
      Counts &c = byOp[opOf(dir)];
      std::string name = llvm::sys::path::filename(dir).str();
      switch (r.outcome) {
      case Outcome::Passed:
        ++c.passed, ++total.passed;
        break;
      case Outcome::Failed:
        ++c.failed, ++total.failed;
        failures.push_back(name + ": " + r.why);
        break;
      case Outcome::Unsupported:
        ++c.unsupported, ++total.unsupported;
        if (verbose)
          std::printf("unsupported %s: %s\n", name.c_str(), r.why.c_str());
      }
    }
  }
  std::printf("%-28s %7s %7s %12s\n", "op", "passed", "failed", "unsupported");
  for (const auto &[op, c] : byOp)
    if (c.passed || c.failed)
      std::printf("%-28s %7d %7d %12d\n", op.c_str(), c.passed, c.failed,
                  c.unsupported);
  int unsupportedOps = 0;
  for (const auto &[op, c] : byOp)
    unsupportedOps += !c.passed && !c.failed;
  std::printf("(%d more ops with every test unsupported)\n", unsupportedOps);
  std::printf("total: %d passed, %d failed, %d unsupported\n", total.passed,
              total.failed, total.unsupported);
  for (const std::string &f : failures)
    std::printf("FAILED %s\n", f.c_str());
  return total.failed == 0 ? 0 : 1;
}
