// weft-cuda-check: runs a CUDA plan against the CPU build of the same plan
// (same buffers and steps, `weft compile --device cpu|cuda`) on random
// parameters and inputs, and times it. Needs no MLIR, so it travels to a GPU
// machine with its runtime; scripts/gpu-check drives it.
//
//   weft-cuda-check CPU_PLAN CUDA_PLAN [--json OUT] [--seed S] [--max-id N]
//                   [--repeat N] [--no-steps] [--train-steps N] [--no-cudnn]
//                   [--cudnn-workspace BYTES]
//   weft-cuda-check --collectives [options]   every collective on a mesh
//                   of the launch's ranks (CollectivesPlan.h)
//
// 1. Steps: for every step, the GPU starts from the CPU's memory before the
//    step, runs the step alone, and every buffer it writes is compared with
//    the CPU's: each generated kernel and library call on real data (a
//    training plan's AdamW steps too: their parameters and state; every
//    program's steps, the optimizer_step of gradient accumulation too).
// 2. Forward: both run the whole plan (each program once, in order) from the
//    same inputs; outputs compared.
//    A training plan then takes --train-steps optimizer steps on both, each
//    through a runtime::Trainer (the GPU's is what `weft train --device
//    cuda` runs) on the same batches: each step's loss and gradient norm,
//    then the trained parameters, compared.
// 3. Timing: the median of N GPU runs, and each step's median time.
//
// A plan with a mesh runs under mpirun, a GPU per rank: the CPU runtime's
// collectives go through MPI, the GPU's through NCCL, and every rank checks
// its own part; rank 0 prints and writes the report (the others' failures
// show in their messages and the exit status).
#include "CollectivesPlan.h"

#include "runtime/Communicator.h"
#include "runtime/Error.h"
#include "runtime/PlanFile.h"
#include "runtime/Trainer.h"
#include "runtime/cpu/CpuExecutor.h"
#include "runtime/cuda/CudaExecutor.h"

#include "kernels/cpu/Kernels.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include <fcntl.h>
#include <unistd.h>

using namespace weft;
using namespace weft::runtime;

namespace {
struct Difference {
  double maxAbs = 0, maxRef = 0;
  int64_t intMismatches = 0;
  bool nonFinite = false;
  double relative() const { return maxAbs / std::max(maxRef, 1e-30); }
};

/// Compares `count` elements of `dtype` at `got` and `want`.
Difference compare(plan::DType dtype, const char *got, const char *want,
                   int64_t bytes) {
  Difference d;
  const int64_t count = bytes / dtypeBytes(dtype);
  auto floats = [&](auto read) {
    for (int64_t i = 0; i < count; ++i) {
      double g = read(got, i), w = read(want, i);
      if (std::isfinite(w) && !std::isfinite(g))
        d.nonFinite = true;
      if (std::isfinite(w) && std::isfinite(g)) {
        d.maxAbs = std::max(d.maxAbs, std::abs(g - w));
        d.maxRef = std::max(d.maxRef, std::abs(w));
      }
    }
  };
  if (dtype == plan::F32)
    floats([](const char *p, int64_t i) {
      return reinterpret_cast<const float *>(p)[i];
    });
  else if (dtype == plan::BF16)
    floats([](const char *p, int64_t i) {
      return kernels::cpu::bf16ToFloat(
          reinterpret_cast<const uint16_t *>(p)[i]);
    });
  else {
    const int64_t size = dtypeBytes(dtype);
    for (int64_t i = 0; i < count; ++i)
      d.intMismatches +=
          std::memcmp(got + i * size, want + i * size, size) != 0;
  }
  return d;
}

double tolerance(plan::DType dtype) {
  return dtype == plan::BF16 ? 2e-2 : 1e-4;
}

/// Random token ids in [0, maxId) of `shape`.
HostTensor randomTokens(const std::vector<int64_t> &shape, int64_t maxId,
                        std::mt19937_64 &rng) {
  HostTensor t{plan::I64, shape, {}};
  t.bytes.resize(t.numElements() * sizeof(int64_t));
  std::uniform_int_distribution<int64_t> id(0, maxId - 1);
  for (int64_t i = 0; i < t.numElements(); ++i)
    reinterpret_cast<int64_t *>(t.bytes.data())[i] = id(rng);
  return t;
}

template <typename T> HostTensor scalar(plan::DType dtype, T value) {
  HostTensor t{dtype, {}, std::vector<char>(sizeof(T))};
  std::memcpy(t.bytes.data(), &value, sizeof(T));
  return t;
}
} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> positional;
  std::string jsonPath;
  uint64_t seed = 1;
  int64_t maxId = 256;
  int repeat = 20, trainSteps = 10;
  bool checkSteps = true, collectives = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "weft-cuda-check: " << arg << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--json")
      jsonPath = value();
    else if (arg == "--seed")
      seed = std::stoull(value());
    else if (arg == "--max-id")
      maxId = std::stoll(value());
    else if (arg == "--repeat")
      repeat = std::stoi(value());
    else if (arg == "--no-steps")
      checkSteps = false;
    else if (arg == "--train-steps")
      trainSteps = std::stoi(value());
    else if (arg == "--collectives")
      collectives = true;
    else if (arg == "--no-cudnn") // weft's own attention kernels throughout
      ::setenv("WEFT_CUDNN", "0", 1);
    else if (arg == "--cudnn-workspace") // cuDNN where its workspace fits
      ::setenv("WEFT_CUDNN_WORKSPACE", value().c_str(), 1);
    else if (!arg.empty() && arg[0] == '-') {
      std::cerr << "weft-cuda-check: unknown option " << arg << "\n";
      return 2;
    } else
      positional.push_back(arg);
  }
  if (positional.size() != (collectives ? 0 : 2)) {
    std::cerr << "usage: weft-cuda-check CPU_PLAN CUDA_PLAN [--json OUT] "
                 "[--seed S] [--max-id N] [--repeat N] [--no-steps] "
                 "[--train-steps N] [--no-cudnn] [--cudnn-workspace BYTES]\n"
                 "       weft-cuda-check --collectives [--json OUT] "
                 "[--seed S] [--repeat N]\n";
    return 2;
  }
  if (collectives)
    positional = {"collectives (cpu)", "collectives (cuda)"};
  if (Communicator::launchedRanks() > 1 && Communicator::world().rank() != 0) {
    std::cout.flush();
    if (int null = ::open("/dev/null", O_WRONLY); null >= 0)
      ::dup2(null, STDOUT_FILENO);
    jsonPath.clear();
  }
  nlohmann::json report;
  bool ok = true;
  try {
    const int64_t ranks = Communicator::launchedRanks();
    const plan::Plan cpuPlan = collectives
                                   ? cudacheck::collectivesPlan(ranks, "cpu")
                                   : readPlan(positional[0]);
    const plan::Plan cudaPlan = collectives
                                    ? cudacheck::collectivesPlan(ranks, "cuda")
                                    : readPlan(positional[1]);
    // The same plan but for the workspace (each device's kernels take their
    // own scratch from it).
    if (cpuPlan.buffers_size() != cudaPlan.buffers_size() ||
        cpuPlan.memory().activations() != cudaPlan.memory().activations())
      throw Error(positional[0] + " and " + positional[1] +
                  " are not builds of the same plan");
    CpuExecutor cpu(cpuPlan, positional[0]);
    CudaExecutor gpu(cudaPlan, positional[1]);
    report["plan"] = positional[1];
    report["model"] = cudaPlan.model();
    report["device"] = gpu.deviceDescription();
    report["device_bytes"] = gpu.deviceBytes();
    report["cudnn_workspace_bytes"] = gpu.cudnnWorkspaceBytes();
    report["planned_peak_bytes"] = cudaPlan.memory().peak();
    std::cout << positional[1] << " on " << gpu.deviceDescription() << "\n";
    // What the runtime allocates stays within what it said before launch.
    const CudaExecutor::DeviceMemory planned =
        CudaExecutor::deviceMemory(cudaPlan, positional[1]);
    report["device_bytes_at_most"] = planned.block + planned.cudnnAtMost;
    if (gpu.deviceBytes() > planned.block + planned.cudnnAtMost) {
      ok = false;
      std::cout << "  MISMATCH device memory: " << gpu.deviceBytes()
                << " bytes, over the " << planned.block + planned.cudnnAtMost
                << " known before launch\n";
    }
    // Which bf16 attention steps run on cuDNN's SDPA, and why the others do
    // not (WEFT_CUDNN=0 turns it off).
    if (!gpu.attentionNotes().empty()) {
      int onCudnn = 0;
      for (const std::string &note : gpu.attentionNotes())
        onCudnn += note.find(": cuDNN SDPA") != std::string::npos;
      std::cout << "  attention: " << onCudnn << " of "
                << gpu.attentionNotes().size() << " bf16 steps on cuDNN SDPA\n";
      for (const std::string &note : gpu.attentionNotes())
        if (note.find(": cuDNN SDPA") == std::string::npos) {
          std::cout << "    " << note << "\n";
          break; // one reason is enough here; the JSON has them all
        }
      report["attention"] = gpu.attentionNotes();
    }

    cpu.initializeParameters(seed);
    // A training plan: the CPU's Trainer widens bf16 parameters into their
    // master weights; the GPU starts from the same state.
    const bool training = cpuPlan.optimizer().kind() == "adamw";
    std::unique_ptr<Trainer> trainer;
    if (training)
      trainer = std::make_unique<Trainer>(cpu, positional[0],
                                          compiledOptions(cpuPlan));
    // The GPU takes the CPU's parameters and training state.
    auto syncState = [&] {
      gpu.upload(plan::PARAMETERS, cpu.region(plan::PARAMETERS));
      if (cudaPlan.memory().state() > 0)
        gpu.upload(plan::STATE, cpu.region(plan::STATE));
    };
    syncState();
    std::mt19937_64 rng(seed + 1);
    int64_t tokens = 0;
    for (const auto &input : cpuPlan.inputs()) {
      const plan::Buffer &buffer = cpuPlan.buffers(input.buffer());
      HostTensor tensor;
      tensor.dtype = buffer.dtype();
      tensor.shape.assign(buffer.shape().begin(), buffer.shape().end());
      tensor.bytes.resize(buffer.bytes());
      if (training && input.name() == "lr") {
        tensor = scalar(plan::F64, 1e-3);
      } else if (training && input.name() == "step") {
        tensor = scalar<int64_t>(plan::I64, 1);
      } else if (buffer.dtype() == plan::I64) {
        std::uniform_int_distribution<int64_t> id(0, maxId - 1);
        for (int64_t i = 0; i < tensor.numElements(); ++i)
          reinterpret_cast<int64_t *>(tensor.bytes.data())[i] = id(rng);
        tokens = std::max(tokens, tensor.numElements());
      } else if (buffer.dtype() == plan::F32) {
        std::normal_distribution<float> normal;
        for (int64_t i = 0; i < tensor.numElements(); ++i)
          reinterpret_cast<float *>(tensor.bytes.data())[i] = normal(rng);
      } else {
        throw Error("input '" + input.name() + "' is " +
                    dtypeName(buffer.dtype()) +
                    "; this check makes i64 and f32 inputs");
      }
      cpu.setInput(input.name(), tensor);
      gpu.setInput(input.name(), tensor);
    }

    // 1. Every step from the CPU's state before it.
    // Every program's steps, in the executors' order (a training plan under
    // gradient accumulation has an optimizer_step program after the main).
    std::vector<const plan::Step *> steps;
    for (const plan::Stream &stream : cudaPlan.streams())
      for (const plan::Step &step : stream.steps())
        steps.push_back(&step);
    if (checkSteps) {
      std::vector<char> arena(cudaPlan.memory().arena()),
          gpuArena(cudaPlan.memory().arena()),
          gpuHost(cudaPlan.memory().host());
      // A step that writes parameters or state (AdamW) leaves them as the
      // GPU computed them: after the comparison they are the CPU's again.
      std::vector<char> gpuParameters(cudaPlan.memory().parameters()),
          gpuState(cudaPlan.memory().state());
      auto kept = [&](const plan::Buffer &buffer) -> std::vector<char> * {
        return buffer.region() == plan::PARAMETERS ? &gpuParameters
               : buffer.region() == plan::STATE    ? &gpuState
                                                   : nullptr;
      };
      cpu.runSteps(0, 0); // copies the main program's inputs in
      std::map<std::string, double> worst;
      std::map<std::string, int> count;
      nlohmann::json stepReports = nlohmann::json::array();
      for (int i = 0; i < steps.size(); ++i) {
        const plan::Step &step = *steps[i];
        cpu.runSteps(i, i); // a program's first step: its inputs copied in
        // The activations (and as much of the workspaces as both have).
        std::memcpy(
            arena.data(), cpu.region(plan::ARENA),
            std::min(cpuPlan.memory().arena(), cudaPlan.memory().arena()));
        gpu.upload(plan::ARENA, arena.data());
        if (!gpuHost.empty()) // what weft.offload moved out
          gpu.upload(plan::HOST, cpu.region(plan::HOST));
        gpu.runStep(i);
        cpu.runSteps(i, i + 1);
        gpu.download(plan::ARENA, gpuArena.data());
        if (!gpuHost.empty())
          gpu.download(plan::HOST, gpuHost.data());
        for (int id : step.writes())
          if (std::vector<char> *image = kept(cudaPlan.buffers(id)))
            gpu.download(cudaPlan.buffers(id).region(), image->data(),
                         cudaPlan.buffers(id).offset(),
                         cudaPlan.buffers(id).bytes());
        const std::string kind = stepFunction(cudaPlan, step);
        double rel = 0;
        bool stepOk = true;
        for (int id : step.writes()) {
          const plan::Buffer &buffer = cudaPlan.buffers(id);
          const char *got = buffer.region() == plan::ARENA  ? gpuArena.data()
                            : buffer.region() == plan::HOST ? gpuHost.data()
                            : kept(buffer) ? kept(buffer)->data()
                                           : nullptr;
          if (!got)
            continue;
          Difference d = compare(buffer.dtype(), got + buffer.offset(),
                                 cpu.region(buffer.region()) + buffer.offset(),
                                 buffer.bytes());
          rel = std::max(rel, d.relative());
          if (d.nonFinite || d.intMismatches > 0 ||
              d.relative() > tolerance(buffer.dtype()))
            stepOk = false;
          if (d.intMismatches > 0)
            rel = std::max(rel, 1.0);
        }
        for (int id : step.writes())
          if (kept(cudaPlan.buffers(id)))
            gpu.upload(cudaPlan.buffers(id).region(),
                       cpu.region(cudaPlan.buffers(id).region()),
                       cudaPlan.buffers(id).offset(),
                       cudaPlan.buffers(id).bytes());
        worst[kind] = std::max(worst[kind], rel);
        count[kind] += 1;
        stepReports.push_back({{"step", i},
                               {"name", step.name()},
                               {"what", kind},
                               {"max_relative_error", rel},
                               {"ok", stepOk}});
        if (!stepOk) {
          ok = false;
          std::cout << "  MISMATCH step " << i << " " << step.name() << " ("
                    << kind << "): max relative error " << rel << "\n";
        }
      }
      report["steps"] = stepReports;
      std::cout << "  every step against the CPU runtime (max |gpu - cpu| / "
                   "max |cpu| over the buffers it writes):\n";
      for (auto &[kind, rel] : worst) {
        char line[160];
        std::snprintf(line, sizeof line, "    %-28s %3d steps  %.2e\n",
                      kind.c_str(), count[kind], rel);
        std::cout << line;
      }
    }

    // 2. The whole plan, from the same parameters and state.
    // Every program in the plan's order (a training plan under gradient
    // accumulation: one micro-batch, then optimizer_step, which leaves the
    // accumulators at zero for the training below).
    syncState();
    cpu.run();
    gpu.run();
    for (int i = 1; i < cudaPlan.streams_size(); ++i)
      if (cudaPlan.streams(i).program() != cudaPlan.streams(i - 1).program()) {
        cpu.runProgram(cudaPlan.streams(i).program());
        gpu.runProgram(cudaPlan.streams(i).program());
      }
    nlohmann::json outputs;
    for (const auto &output : cudaPlan.outputs()) {
      HostTensor want = cpu.output(output.name());
      HostTensor got = gpu.output(output.name());
      Difference d = compare(got.dtype, got.bytes.data(), want.bytes.data(),
                             static_cast<int64_t>(got.bytes.size()));
      // Whole-model tolerance: errors of every step compound.
      const double limit = got.dtype == plan::BF16 ? 5e-2 : 1e-3;
      const bool outputOk = !d.nonFinite && d.relative() <= limit;
      ok = ok && outputOk;
      outputs[output.name()] = {{"max_relative_error", d.relative()},
                                {"tolerance", limit},
                                {"ok", outputOk}};
      std::printf("  forward: output %s max relative error %.2e (%s)\n",
                  output.name().c_str(), d.relative(),
                  outputOk ? "ok" : "MISMATCH");
    }
    report["outputs"] = outputs;

    // 2b. Optimizer steps: a Trainer on each executor (the GPU's is what
    // weft train --device cuda runs), from the same state and batches.
    if (training && trainSteps > 0) {
      Trainer gpuTrainer(gpu, positional[1], compiledOptions(cudaPlan));
      syncState(); // the CPU's master weights, not the GPU's bf16 widened
      std::vector<int64_t> shape;
      for (const auto &input : cpuPlan.inputs())
        if (input.name() == "input_ids")
          shape.assign(cpuPlan.buffers(input.buffer()).shape().begin(),
                       cpuPlan.buffers(input.buffer()).shape().end());
      // bf16 parameters and activations part from the CPU's by rounding.
      bool bf16 = false;
      for (const auto &param : cpuPlan.parameters())
        bf16 = bf16 || cpuPlan.buffers(param.buffer()).dtype() == plan::BF16;
      const double lossLimit = bf16 ? 2e-2 : 1e-3;
      nlohmann::json trained = nlohmann::json::array();
      double worstLoss = 0, worstNorm = 0;
      // The trained parameters as a checkpoint would take them (the GPU's
      // copied out): the worst tensor's relative error and its name.
      auto parameterError = [&]() -> std::pair<double, std::string> {
        std::vector<TensorView> wantParams = trainer->parameters(),
                                gotParams = gpuTrainer.parameters();
        std::pair<double, std::string> worst{0.0, ""};
        for (size_t i = 0; i < wantParams.size(); ++i) {
          Difference d = compare(wantParams[i].dtype,
                                 static_cast<const char *>(gotParams[i].data),
                                 static_cast<const char *>(wantParams[i].data),
                                 wantParams[i].bytes);
          const double rel = d.nonFinite ? 1.0 : d.relative();
          if (rel >= worst.first)
            worst = {rel, wantParams[i].name};
        }
        return worst;
      };
      std::pair<double, std::string> worstParam{0.0, ""};
      for (int t = 0; t < trainSteps; ++t) {
        std::vector<HostTensor> batches;
        for (int64_t a = 0; a < trainer->accumulation(); ++a)
          batches.push_back(randomTokens(shape, maxId, rng));
        const int64_t step = trainer->steps() + 1;
        const StepStats want = trainer->step(batches);
        const StepStats got = gpuTrainer.step(batches);
        const double loss = got.loss, norm = got.gradNorm;
        const double lossError = std::abs(loss - want.loss) /
                                 std::max(std::abs(want.loss), 1e-30),
                     normError = std::abs(norm - want.gradNorm) /
                                 std::max(std::abs(want.gradNorm), 1e-30);
        worstLoss = std::max(worstLoss, lossError);
        worstNorm = std::max(worstNorm, normError);
        const std::pair<double, std::string> params = parameterError();
        if (params.first >= worstParam.first)
          worstParam = params;
        trained.push_back({{"step", step},
                           {"loss_cpu", want.loss},
                           {"loss_gpu", loss},
                           {"grad_norm_cpu", want.gradNorm},
                           {"grad_norm_gpu", norm},
                           {"max_relative_parameter_error", params.first},
                           {"worst_parameter", params.second}});
        std::printf("  train step %lld: loss %.6f (cpu %.6f), grad norm %.5f "
                    "(cpu %.5f), parameters %.2e (%s)\n",
                    static_cast<long long>(step), loss, want.loss, norm,
                    want.gradNorm, params.first, params.second.c_str());
      }
      const bool trainOk = std::isfinite(worstLoss) &&
                           std::isfinite(worstNorm) && worstLoss <= lossLimit &&
                           worstNorm <= 10 * lossLimit &&
                           worstParam.first <= 10 * lossLimit;
      ok = ok && trainOk;
      report["training"] = {{"steps", trained},
                            {"max_relative_loss_error", worstLoss},
                            {"max_relative_grad_norm_error", worstNorm},
                            {"max_relative_parameter_error", worstParam.first},
                            {"worst_parameter", worstParam.second},
                            {"tolerance", lossLimit},
                            {"ok", trainOk}};
      std::printf("  training: %d optimizer steps, max relative error loss "
                  "%.2e, grad norm %.2e, parameters %.2e (worst %s) (%s)\n",
                  trainSteps, worstLoss, worstNorm, worstParam.first,
                  worstParam.second.c_str(), trainOk ? "ok" : "MISMATCH");
    }

    // 3. Timing.
    std::vector<float> times;
    for (int r = 0; r < repeat + 2; ++r) {
      gpu.run();
      if (r >= 2)
        times.push_back(gpu.lastRunMilliseconds());
    }
    std::sort(times.begin(), times.end());
    const double median = times.empty() ? 0 : times[times.size() / 2];
    report["forward_ms"] = median;
    report["tokens"] = tokens;
    report["tokens_per_s"] = median > 0 ? tokens / (median / 1e3) : 0;
    std::printf("  forward: %.3f ms median of %d, %.0f tokens/s, device "
                "memory %.1f MiB\n",
                median, repeat, median > 0 ? tokens / (median / 1e3) : 0.0,
                gpu.deviceBytes() / 1048576.0);
    std::vector<float> stepTimes = gpu.profileSteps(std::max(repeat / 2, 3));
    nlohmann::json profile = nlohmann::json::array();
    for (int i = 0; i < steps.size(); ++i) {
      const plan::Step &step = *steps[i];
      int64_t written = 0, read = 0;
      for (int id : step.writes())
        written += cudaPlan.buffers(id).bytes();
      std::vector<int> ids;
      if (step.has_launch())
        ids.assign(step.launch().buffers().begin(),
                   step.launch().buffers().end());
      else
        ids.assign(step.call().buffers().begin(), step.call().buffers().end());
      for (int id : ids)
        if (id >= 0 && cudaPlan.buffers(id).name() != "workspace")
          read += cudaPlan.buffers(id).bytes();
      read -= written;
      nlohmann::json entry = {{"step", i},
                              {"name", step.name()},
                              {"what", stepFunction(cudaPlan, step)},
                              {"ms", stepTimes[i]},
                              {"bytes_read", read},
                              {"bytes_written", written}};
      if (!step.has_launch())
        entry["ints"] = std::vector<int64_t>(step.call().ints().begin(),
                                             step.call().ints().end());
      profile.push_back(entry);
    }
    report["step_profile"] = profile;
  } catch (const Error &error) {
    // One rank's error ends every rank (the others would wait for it in a
    // collective).
    if (Communicator::launchedRanks() > 1)
      Communicator::world().abort("weft-cuda-check: rank " +
                                  std::to_string(Communicator::world().rank()) +
                                  ": " + error.what());
    std::cerr << "weft-cuda-check: " << error.what() << "\n";
    report["error"] = error.what();
    ok = false;
  }
  report["ok"] = ok;
  if (!jsonPath.empty())
    std::ofstream(jsonPath) << report.dump(2) << "\n";
  return ok ? 0 : 1;
}
