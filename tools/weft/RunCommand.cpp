// weft run: one forward pass of a plan (or of a model compiled on the fly).
#include "Commands.h"
#include "ModelLoader.h"
#include "PlanCompiler.h"

#include "frontend/Onnx/OnnxTensor.h"
#include "ir/WeftDialect.h"
#include "runtime/Error.h"
#include "runtime/PlanFile.h"
#include "runtime/Safetensors.h"
#include "runtime/cpu/CpuExecutor.h"
#ifdef WEFT_HAVE_CUDA_RUNTIME
#include "runtime/cuda/CudaExecutor.h"
#endif

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>

using namespace mlir;
using namespace weft::cli;
namespace rt = weft::runtime;

const VerbSpec &weft::cli::runSpec() {
  static const VerbSpec spec = [] {
    VerbSpec s;
    s.name = "run";
    s.arguments = "PLAN_OR_MODEL";
    s.summary = "Run one forward pass on the CPU or a CUDA GPU.";
    s.details =
        "PLAN_OR_MODEL is a .plan file from 'weft compile', or a model that "
        "is\n"
        "compiled first (config.json, a model folder or a .mlir file). "
        "Weights\n"
        "come from --weights (a .safetensors file, or a folder with\n"
        "model.safetensors or a sharded index), from the model folder itself,\n"
        "or are drawn from --random-weights SEED. Inputs are .npy files or "
        "ONNX\n"
        "TensorProto .pb files (as the ONNX test data holds them); each\n"
        "output is written to OUT/<name>.npy. A plan runs on the device it\n"
        "was compiled for (weft compile --device); a model is compiled for\n"
        "--device.";
    s.options = shapeOptions();
    s.options.push_back({"device", "", "cpu|cuda",
                         "compile a model for this device (default: cpu)"});
    s.options.push_back(
        {"weights", "", "PATH", "safetensors checkpoint to load"});
    s.options.push_back(
        {"random-weights", "", "SEED", "draw weights from SEED instead"});
    s.options.push_back({"input", "", "NAME=FILE",
                         "an input as .npy or ONNX .pb (repeatable)"});
    s.options.push_back({"output-dir", "", "OUT",
                         "where outputs are written (default: nowhere)"});
    s.options.push_back({"trace", "", "FILE", "write a Chrome/Perfetto trace"});
    s.options.push_back(
        {"threads", "", "N", "threads to run with (at most the plan's)"});
    s.options.push_back({"repeat", "", "N",
                         "time N more runs after the first; print the median"});
    s.minPositional = s.maxPositional = 1;
    return s;
  }();
  return spec;
}

int weft::cli::runRun(llvm::ArrayRef<std::string> args) {
  ParsedArgs parsed;
  if (int code = parseOrReport(args, runSpec(), parsed); code >= 0)
    return code;
  auto fail = [](const std::string &message) {
    llvm::errs() << "weft run: " << message << "\n";
    return 1;
  };
  std::vector<std::pair<std::string, std::string>> inputs;
  for (const std::string &value : parsed.getAll("input")) {
    auto [name, file] = llvm::StringRef(value).split('=');
    if (name.empty() || file.empty()) {
      llvm::errs()
          << "weft run: --input expects NAME=FILE (.npy or .pb), found '"
          << value << "'\n";
      return 2;
    }
    inputs.push_back({name.str(), file.str()});
  }
  // Without --output-dir nothing is written (timing runs).
  std::optional<std::string> outputDir = parsed.get("output-dir");
  llvm::Expected<int64_t> threads = parsed.getPositiveInt("threads", 0);
  if (!threads)
    return fail(llvm::toString(threads.takeError()));
  llvm::Expected<int64_t> repeat = parsed.getPositiveInt("repeat", 0);
  if (!repeat)
    return fail(llvm::toString(repeat.takeError()));
  const std::string &model = parsed.positional[0];
  llvm::Expected<weft::codegen::Device> device =
      readDevice(parsed.get("device"));
  if (!device)
    return fail(llvm::toString(device.takeError()));

  try {
    weft::plan::Plan plan;
    if (llvm::StringRef(model).ends_with(".plan")) {
      plan = rt::readPlan(model);
    } else {
      llvm::Expected<ModelShapeOptions> shape = readShapeOptions(parsed);
      if (!shape)
        return fail(llvm::toString(shape.takeError()));
      ModelLoader loader;
      auto module = loader.load(model, *shape);
      if (!module)
        return fail(llvm::toString(module.takeError()));
      CompileOptions options;
      options.model = model;
      options.threads = static_cast<int>(*threads);
      options.device = *device;
      llvm::Expected<weft::plan::Plan> compiled =
          compilePlan(**module, options);
      if (!compiled)
        return fail(llvm::toString(compiled.takeError()));
      plan = std::move(*compiled);
    }

    std::unique_ptr<rt::Executor> executorOwner;
    if (plan.device() == "cuda") {
#ifdef WEFT_HAVE_CUDA_RUNTIME
      executorOwner = std::make_unique<rt::CudaExecutor>(plan, model);
#else
      return fail(model + " is a CUDA plan; this weft was built without the "
                          "CUDA runtime (-DWEFT_ENABLE_CUDA=ON)");
#endif
    } else {
      executorOwner = std::make_unique<rt::CpuExecutor>(
          plan, model, static_cast<int>(*threads));
    }
    rt::Executor &executor = *executorOwner;
    if (auto seed = parsed.get("random-weights")) {
      executor.initializeParameters(std::stoull(*seed));
    } else {
      std::string weights = parsed.get("weights").value_or("");
      if (weights.empty() && llvm::sys::fs::is_directory(model))
        weights = model;
      if (weights.empty() && plan.parameters_size() > 0)
        return fail(
            "the model has " + std::to_string(plan.parameters_size()) +
            " parameters: give --weights PATH or --random-weights SEED");
      if (!weights.empty())
        executor.loadParameters(rt::SafetensorsCheckpoint(weights));
    }
    for (const auto &[name, file] : inputs)
      executor.setInput(name, llvm::StringRef(file).ends_with(".pb")
                                  ? weft::frontend::readOnnxTensor(file)
                                  : rt::readNpy(file));

    std::unique_ptr<rt::TraceWriter> trace;
    if (parsed.has("trace"))
      trace = std::make_unique<rt::TraceWriter>();
    auto timed = [&](rt::TraceWriter *traceWriter) {
      auto start = std::chrono::steady_clock::now();
      executor.run(traceWriter);
      return std::chrono::duration<double, std::milli>(
                 std::chrono::steady_clock::now() - start)
          .count();
    };
    double ms = timed(trace.get());
    std::vector<double> times;
    for (int64_t i = 0; i < *repeat; ++i)
      times.push_back(timed(nullptr));

    if (outputDir)
      if (std::error_code ec = llvm::sys::fs::create_directories(*outputDir))
        return fail(*outputDir + ": " + ec.message());
    for (const auto &output : plan.outputs()) {
      if (!outputDir)
        break;
      llvm::SmallString<256> path(*outputDir);
      llvm::sys::path::append(path, output.name() + ".npy");
      // NumPy has no bf16: bf16 outputs are written widened to f32.
      rt::HostTensor tensor = rt::widenBf16(executor.output(output.name()));
      rt::writeNpy(std::string(path), tensor);
      llvm::outs() << "wrote " << path << " ("
                   << rt::describe(tensor.dtype, tensor.shape) << ")\n";
    }
    if (trace) {
      trace->write(*parsed.get("trace"));
      llvm::outs() << "wrote trace " << *parsed.get("trace") << "\n";
    }
    llvm::outs() << "ran " << plan.streams(0).steps_size() << " steps in "
                 << llvm::format("%.2f", ms) << " ms; arena "
                 << executor.arenaBytes() << " bytes (planned "
                 << plan.memory().arena() << ")\n";
    if (!times.empty()) {
      std::sort(times.begin(), times.end());
      llvm::outs() << "median " << llvm::format("%.3f", times[times.size() / 2])
                   << " ms over " << times.size() << " runs (min "
                   << llvm::format("%.3f", times.front()) << ", max "
                   << llvm::format("%.3f", times.back()) << ")\n";
    }
  } catch (const rt::Error &error) {
    return fail(error.what());
  } catch (const std::exception &error) {
    return fail(std::string("unexpected error: ") + error.what());
  }
  return 0;
}
