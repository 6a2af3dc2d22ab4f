// weft compile: a model to a Plan file (or to IR at a named phase).
#include "Commands.h"
#include "ModelLoader.h"
#include "PlanCompiler.h"

#include "ir/WeftDialect.h"
#include "passes/Pipeline.h"
#include "runtime/Error.h"
#include "runtime/PlanFile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace mlir;
using namespace weft::cli;

const VerbSpec &weft::cli::compileSpec() {
  static const VerbSpec spec = [] {
    VerbSpec s;
    s.name = "compile";
    s.arguments = "MODEL";
    s.summary = "Compile a model into a Plan for the CPU or a CUDA GPU.";
    s.details =
        "MODEL is a Hugging Face config.json, a folder holding one, or a "
        ".mlir\n"
        "file. The plan holds every buffer, kernel and step of one forward "
        "pass\n"
        "and its exact memory; 'weft inspect' shows it, 'weft run' runs it.\n"
        "--device cuda compiles its kernels for Hopper (sm_90a) with NVRTC; no "
        "GPU\nis needed to compile.\n"
        "--compile-to PHASE prints the IR after that phase instead (phases: " +
        llvm::join(weft::getPhaseNames(), ", ") + ").";
    s.options = shapeOptions();
    s.options.push_back({"output", "o", "FILE",
                         "the plan (or IR) to write (default: stdout for IR)"});
    s.options.push_back(
        {"compile-to", "", "PHASE", "stop after PHASE and print the IR"});
    s.options.push_back({"threads", "", "N",
                         "threads the plan is made for (default: all cores)"});
    s.options.push_back({"device", "", "cpu|cuda",
                         "the device the plan runs on (default: cpu)"});
    s.options.push_back({"dump-kernels", "", "DIR",
                         "write each generated kernel's source to DIR"});
    s.options.push_back(
        {"train", "", "",
         "a training step: the loss (--loss), the backward and AdamW's "
         "update in place (default settings; the learning rate and step are "
         "inputs)"});
    s.options.push_back(
        {"optimizer", "", "adamw|none",
         "with --train: none returns each parameter's gradient as "
         "grad.<name> instead of updating it (default adamw)"});
    s.options.push_back({"dp", "", "N",
                         "with --train: data-parallel ranks (the plan is "
                         "each rank's, --batch its micro-batch; run it under "
                         "mpirun -np N)"});
    s.options.push_back({"sp", "", "N",
                         "with --train: sequence-parallel ranks (Ulysses: "
                         "each takes --seq/N tokens, attention by heads; "
                         "the plan is for dp × sp ranks)"});
    s.options.push_back({"tp", "", "N",
                         "with --train: tensor-parallel ranks (Megatron's "
                         "column- and row-parallel linears: each holds 1/N "
                         "of q, k, v, o, gate, up and down; the plan is for "
                         "dp × tp ranks)"});
    s.options.push_back({"zero", "", "0|1|2|3",
                         "with --dp: ZeRO stage (1: sharded optimizer state, "
                         "2: and reduce-scattered gradients, 3: and sharded "
                         "parameters)"});
    s.options.push_back({"accumulation", "", "K",
                         "with --train: micro-batches per optimizer step; "
                         "K > 1 adds an optimizer_step program (default 1)"});
    s.options.push_back({"freeze", "", "PATTERN",
                         "with --train: no gradient for parameters whose "
                         "name contains PATTERN (repeatable)"});
    for (OptionSpec &option : rematOptions())
      s.options.push_back(option);
    s.minPositional = s.maxPositional = 1;
    return s;
  }();
  return spec;
}

int weft::cli::runCompile(llvm::ArrayRef<std::string> args) {
  ParsedArgs parsed;
  if (int code = parseOrReport(args, compileSpec(), parsed); code >= 0)
    return code;
  auto fail = [](llvm::Error error) {
    llvm::errs() << "weft compile: " << llvm::toString(std::move(error))
                 << "\n";
    return 1;
  };
  llvm::Expected<ModelShapeOptions> shape = readShapeOptions(parsed);
  if (!shape)
    return fail(shape.takeError());
  shape->build.loss |= parsed.has("train");
  llvm::Expected<int64_t> threads = parsed.getPositiveInt("threads", 0);
  if (!threads)
    return fail(threads.takeError());
  CompileOptions options;
  options.model = parsed.positional[0];
  options.compileTo = parsed.get("compile-to").value_or("");
  options.threads = static_cast<int>(*threads);
  options.dumpKernelsDir = parsed.get("dump-kernels").value_or("");
  options.train = parsed.has("train");
  options.frozen = llvm::join(parsed.getAll("freeze"), ",");
  const std::string optimizer = parsed.get("optimizer").value_or("adamw");
  if (optimizer != "adamw" && optimizer != "none") {
    llvm::errs() << "weft compile: --optimizer is '" << optimizer
                 << "'; expected adamw or none\n";
    return 2;
  }
  llvm::Expected<int64_t> accumulation =
      parsed.getPositiveInt("accumulation", 1);
  if (!accumulation)
    return fail(accumulation.takeError());
  llvm::Expected<int64_t> dp = parsed.getPositiveInt("dp", 1);
  if (!dp)
    return fail(dp.takeError());
  options.dp = *dp;
  llvm::Expected<int64_t> sp = parsed.getPositiveInt("sp", 1);
  if (!sp)
    return fail(sp.takeError());
  options.sp = *sp;
  llvm::Expected<int64_t> tp = parsed.getPositiveInt("tp", 1);
  if (!tp)
    return fail(tp.takeError());
  options.tp = *tp;
  const std::string zero = parsed.get("zero").value_or("0");
  if (zero != "0" && zero != "1" && zero != "2" && zero != "3") {
    llvm::errs() << "weft compile: --zero is '" << zero
                 << "'; expected 0, 1, 2 or 3\n";
    return 2;
  }
  options.zero = zero[0] - '0';
  if ((options.dp > 1 || options.sp > 1 || options.tp > 1) &&
      !(options.train && optimizer == "adamw")) {
    llvm::errs() << "weft compile: --dp, --sp and --tp need --train with an "
                    "optimizer\n";
    return 2;
  }
  if (options.train && optimizer == "adamw") {
    options.optimizer.emplace();
    options.optimizer->accumulation = *accumulation;
  }
  if (llvm::Error error = readRematOptions(parsed, options))
    return fail(std::move(error));
  if (options.lossTiles > 1 && !options.train) {
    llvm::errs() << "weft compile: --loss-tiles needs --train (it tiles the "
                    "loss and its gradient)\n";
    return 2;
  }
  llvm::Expected<weft::codegen::Device> device =
      readDevice(parsed.get("device"));
  if (!device) {
    llvm::errs() << "weft compile: " << llvm::toString(device.takeError())
                 << "\n";
    return 2;
  }
  options.device = *device;
  if (!options.compileTo.empty() &&
      !llvm::is_contained(weft::getPhaseNames(), options.compileTo)) {
    llvm::errs() << "weft compile: unknown phase '" << options.compileTo
                 << "'; the phases are "
                 << llvm::join(weft::getPhaseNames(), ", ") << "\n";
    return 2;
  }
  if (!options.dumpKernelsDir.empty())
    if (std::error_code ec =
            llvm::sys::fs::create_directories(options.dumpKernelsDir))
      return fail(llvm::createStringError(ec, options.dumpKernelsDir + ": " +
                                                  ec.message()));

  if (llvm::Expected<int64_t> padded =
          padForSequenceParallel(*shape, options.sp);
      !padded)
    return fail(padded.takeError());
  if (shape->build.tokens > 0)
    llvm::errs() << "weft compile: --seq " << shape->build.tokens
                 << " is padded to " << shape->build.seq << " for --sp "
                 << options.sp
                 << " (the padding at the end of each sequence is no target; "
                    "feed input_ids and labels of "
                 << shape->build.seq << " tokens)\n";
  ModelLoader loader;
  auto module = loader.load(options.model, *shape);
  if (!module)
    return fail(module.takeError());

  std::string output = parsed.get("output").value_or("");
  if (!options.compileTo.empty()) {
    if (llvm::Error error = runPipeline(**module, options))
      return fail(std::move(error));
    std::string error;
    auto file = openOutputFile(output.empty() ? "-" : output, &error);
    if (!file) {
      llvm::errs() << "weft compile: " << error << "\n";
      return 1;
    }
    (*module)->print(file->os());
    file->keep();
    return 0;
  }
  if (output.empty()) {
    llvm::errs() << "weft compile: give the plan file with -o FILE\n\n"
                 << usage(compileSpec());
    return 2;
  }
  auto start = std::chrono::steady_clock::now();
  llvm::Expected<weft::plan::Plan> plan = compilePlan(**module, options);
  if (!plan)
    return fail(plan.takeError());
  try {
    weft::runtime::writePlan(std::move(*plan), output);
  } catch (const weft::runtime::Error &error) {
    llvm::errs() << "weft compile: " << error.what() << "\n";
    return 1;
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  llvm::errs() << "weft compile: wrote " << output << " in "
               << llvm::format("%.2f", seconds) << " s\n";
  return 0;
}
