// weft-cuda-check: runs a CUDA plan against the CPU build of the same plan
// (same buffers and steps, `weft compile --device cpu|cuda`) on random
// parameters and inputs, and times it. Needs no MLIR, so it travels to a GPU
// machine with its runtime; scripts/gpu-check drives it.
//
//   weft-cuda-check CPU_PLAN CUDA_PLAN [--json OUT] [--seed S] [--max-id N]
//                   [--repeat N] [--no-steps]
//
// 1. Steps: for every step, the GPU starts from the CPU's memory before the
//    step, runs the step alone, and every buffer it writes is compared with
//    the CPU's: each generated kernel and library call on real data.
// 2. Forward: both run the whole plan from the same inputs; outputs compared.
// 3. Timing: the median of N GPU runs, and each step's median time.
#include "runtime/Error.h"
#include "runtime/PlanFile.h"
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

std::string what(const plan::Plan &plan, const plan::Step &step) {
  return step.has_launch() ? plan.kernels(step.launch().kernel()).name()
                           : step.call().function();
}
} // namespace

int main(int argc, char **argv) {
  std::vector<std::string> positional;
  std::string jsonPath;
  uint64_t seed = 1;
  int64_t maxId = 256;
  int repeat = 20;
  bool checkSteps = true;
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
    else if (!arg.empty() && arg[0] == '-') {
      std::cerr << "weft-cuda-check: unknown option " << arg << "\n";
      return 2;
    } else
      positional.push_back(arg);
  }
  if (positional.size() != 2) {
    std::cerr << "usage: weft-cuda-check CPU_PLAN CUDA_PLAN [--json OUT] "
                 "[--seed S] [--max-id N] [--repeat N] [--no-steps]\n";
    return 2;
  }
  nlohmann::json report;
  bool ok = true;
  try {
    const plan::Plan cpuPlan = readPlan(positional[0]);
    const plan::Plan cudaPlan = readPlan(positional[1]);
    if (cpuPlan.buffers_size() != cudaPlan.buffers_size() ||
        cpuPlan.memory().arena() != cudaPlan.memory().arena())
      throw Error(positional[0] + " and " + positional[1] +
                  " are not builds of the same plan");
    CpuExecutor cpu(cpuPlan, positional[0]);
    CudaExecutor gpu(cudaPlan, positional[1]);
    report["plan"] = positional[1];
    report["model"] = cudaPlan.model();
    report["device"] = gpu.deviceDescription();
    report["device_bytes"] = gpu.deviceBytes();
    report["planned_peak_bytes"] = cudaPlan.memory().peak();
    std::cout << positional[1] << " on " << gpu.deviceDescription() << "\n";

    cpu.initializeParameters(seed);
    gpu.upload(plan::PARAMETERS, cpu.region(plan::PARAMETERS));
    std::mt19937_64 rng(seed + 1);
    int64_t tokens = 0;
    for (const auto &input : cpuPlan.inputs()) {
      const plan::Buffer &buffer = cpuPlan.buffers(input.buffer());
      HostTensor tensor;
      tensor.dtype = buffer.dtype();
      tensor.shape.assign(buffer.shape().begin(), buffer.shape().end());
      tensor.bytes.resize(buffer.bytes());
      if (buffer.dtype() == plan::I64) {
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
    const auto &steps = cudaPlan.streams(0).steps();
    if (checkSteps) {
      std::vector<char> arena(cudaPlan.memory().arena()),
          gpuArena(cudaPlan.memory().arena());
      cpu.runSteps(0, 0); // copies the inputs in
      std::map<std::string, double> worst;
      std::map<std::string, int> count;
      nlohmann::json stepReports = nlohmann::json::array();
      for (int i = 0; i < steps.size(); ++i) {
        const plan::Step &step = steps[i];
        std::memcpy(arena.data(), cpu.region(plan::ARENA), arena.size());
        gpu.upload(plan::ARENA, arena.data());
        gpu.runStep(i);
        cpu.runSteps(i, i + 1);
        gpu.download(plan::ARENA, gpuArena.data());
        const std::string kind = what(cudaPlan, step);
        double rel = 0;
        bool stepOk = true;
        for (int id : step.writes()) {
          const plan::Buffer &buffer = cudaPlan.buffers(id);
          if (buffer.region() != plan::ARENA)
            continue;
          Difference d = compare(
              buffer.dtype(), gpuArena.data() + buffer.offset(),
              cpu.region(plan::ARENA) + buffer.offset(), buffer.bytes());
          rel = std::max(rel, d.relative());
          if (d.nonFinite || d.intMismatches > 0 ||
              d.relative() > tolerance(buffer.dtype()))
            stepOk = false;
          if (d.intMismatches > 0)
            rel = std::max(rel, 1.0);
        }
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

    // 2. The whole plan.
    cpu.run();
    gpu.run();
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
      const plan::Step &step = steps[i];
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
                              {"what", what(cudaPlan, step)},
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
    std::cerr << "weft-cuda-check: " << error.what() << "\n";
    report["error"] = error.what();
    ok = false;
  }
  report["ok"] = ok;
  if (!jsonPath.empty())
    std::ofstream(jsonPath) << report.dump(2) << "\n";
  return ok ? 0 : 1;
}
