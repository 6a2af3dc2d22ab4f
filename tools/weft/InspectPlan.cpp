// weft inspect of a .plan file: memory, kernels, steps and buffers.
#include "Commands.h"
#include "Format.h"

#include "runtime/Error.h"
#include "runtime/HostTensor.h"
#include "runtime/PlanFile.h"
#ifdef WEFT_HAVE_CUDA_RUNTIME
#include "runtime/cuda/CudaExecutor.h"
#endif

#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <sstream>

namespace rt = weft::runtime;

namespace {
std::string describeBuffer(const weft::plan::Buffer &buffer) {
  return rt::describe(buffer.dtype(),
                      {buffer.shape().begin(), buffer.shape().end()});
}

const char *regionName(weft::plan::Region region) {
  switch (region) {
  case weft::plan::ARENA:
    return "arena";
  case weft::plan::PARAMETERS:
    return "parameters";
  case weft::plan::CONSTANTS:
    return "constants";
  case weft::plan::STATE:
    return "state";
  case weft::plan::HOST:
    return "host";
  default:
    return "?";
  }
}

/// "add, rms_norm over 128 rows of 256" from the source's first line.
std::string kernelSummary(const weft::plan::Kernel &kernel) {
  llvm::StringRef first = llvm::StringRef(kernel.source()).split('\n').first;
  first.consume_front("// weft fusion group: ");
  return first.str();
}

/// "sm_90a, 24 registers, 0 B spilled, 64 × 128 threads" for CUDA kernels;
/// the target for CPU ones.
std::string kernelResources(const weft::plan::Kernel &kernel) {
  if (kernel.backend() != weft::plan::Kernel::CUDA_CUBIN)
    return kernel.target();
  return kernel.target() + ", " + std::to_string(kernel.registers()) +
         " registers, " + weft::cli::binary(kernel.spill_bytes()) +
         " spilled, " + std::to_string(kernel.grid_blocks()) + " × " +
         std::to_string(kernel.block_threads()) + " threads";
}

/// The step during which the planner holds the most arena bytes live (the
/// first of them): where a plan's memory peaks.
struct MostLive {
  const weft::plan::Stream *stream = nullptr;
  int step = -1;
  int64_t bytes = 0;
};

MostLive mostLive(const weft::plan::Plan &plan) {
  MostLive most;
  for (const auto &stream : plan.streams())
    for (int i = 0; i < stream.steps_size(); ++i)
      if (!most.stream || stream.steps(i).live_bytes() > most.bytes)
        most = {&stream, i, stream.steps(i).live_bytes()};
  return most;
}

/// The largest arena buffers live at `most`'s step, at most `count`, each
/// memory once: a buffer is live from the first step of its stream that
/// touches it (its program's inputs from the start) to the last (its
/// outputs to the end); of buffers sharing memory (views, results written
/// over their inputs) the largest stands for them. The workspace is not
/// among them.
std::vector<int> largestLive(const weft::plan::Plan &plan, const MostLive &most,
                             size_t count) {
  const weft::plan::Stream &stream = *most.stream;
  const int end = stream.steps_size();
  std::map<int, std::pair<int, int>> range; // buffer -> [first, last] step
  auto touch = [&](int id, int step) {
    if (id < 0 || plan.buffers(id).region() != weft::plan::ARENA ||
        plan.buffers(id).name() == "workspace")
      return;
    auto [it, added] = range.try_emplace(id, step, step);
    it->second.first = std::min(it->second.first, step);
    it->second.second = std::max(it->second.second, step);
  };
  for (const auto &input : plan.inputs())
    if (input.program() == stream.program())
      touch(input.buffer(), 0);
  for (const auto &output : plan.outputs())
    if (output.program() == stream.program())
      touch(output.buffer(), end);
  for (int i = 0; i < end; ++i) {
    const weft::plan::Step &step = stream.steps(i);
    for (int id :
         step.has_launch() ? step.launch().buffers() : step.call().buffers())
      touch(id, i);
  }
  std::vector<int> live;
  for (auto [id, span] : range)
    if (span.first <= most.step && most.step <= span.second)
      live.push_back(id);
  std::stable_sort(live.begin(), live.end(), [&](int a, int b) {
    return plan.buffers(a).bytes() > plan.buffers(b).bytes();
  });
  std::vector<int> largest;
  for (int id : live) {
    const auto &b = plan.buffers(id);
    if (largest.size() == count)
      break;
    if (llvm::none_of(largest, [&](int other) {
          const auto &o = plan.buffers(other);
          return b.offset() < o.offset() + o.bytes() &&
                 o.offset() < b.offset() + b.bytes();
        }))
      largest.push_back(id);
  }
  return largest;
}
} // namespace

int weft::cli::inspectPlan(const std::string &path, bool json) {
  plan::Plan plan;
  try {
    plan = rt::readPlan(path);
  } catch (const rt::Error &error) {
    llvm::errs() << "weft inspect: " << error.what() << "\n";
    return 1;
  }
  const plan::Memory &m = plan.memory();
  // One rank's model state: the gradients are what the optimizer's norm
  // reads (whole, or ZeRO blocks; in the arena, or accumulators in the
  // state), each buffer once.
  int64_t ranks = 1, gradients = 0;
  for (const auto &axis : plan.mesh())
    ranks *= axis.size();
  std::set<int> counted;
  for (const auto &stream : plan.streams())
    for (const auto &step : stream.steps())
      if (step.has_call() && step.call().function() == "grad_norm")
        for (int i = 0; i + 1 < step.call().buffers_size(); ++i)
          if (counted.insert(step.call().buffers(i)).second)
            gradients += plan.buffers(step.call().buffers(i)).bytes();
  if (json) {
    nlohmann::json out;
    out["plan"] = path;
    out["format_version"] = plan.format_version();
    out["model"] = plan.model();
    out["device"] = plan.device();
    out["threads"] = plan.threads();
    out["memory"] = {{"parameters", m.parameters()},
                     {"activations", m.activations()},
                     {"workspace", m.workspace()},
                     {"arena", m.arena()},
                     {"constants", m.constants()},
                     {"state", m.state()},
                     {"host", m.host()},
                     {"peak", m.peak()}};
    if (const MostLive most = mostLive(plan); most.stream) {
      const plan::Step &step = most.stream->steps(most.step);
      out["memory"]["most_live"] = {{"bytes", most.bytes},
                                    {"stream", most.stream->name()},
                                    {"step", most.step},
                                    {"name", step.name()},
                                    {"what", rt::stepFunction(plan, step)}};
      for (int id : largestLive(plan, most, 5))
        out["memory"]["most_live"]["largest"].push_back(
            {{"buffer", id},
             {"name", plan.buffers(id).name()},
             {"bytes", plan.buffers(id).bytes()},
             {"type", describeBuffer(plan.buffers(id))}});
    }
#ifdef WEFT_HAVE_CUDA_RUNTIME
    if (plan.device() == "cuda") {
      const runtime::CudaExecutor::DeviceMemory d =
          runtime::CudaExecutor::deviceMemory(plan, path);
      out["memory"]["gpu"] = {{"at_most", d.block + d.cudnnAtMost},
                              {"runtime", d.runtime},
                              {"cudnn_at_most", d.cudnnAtMost}};
    }
#endif
    out["per_rank"] = {{"ranks", ranks},
                       {"parameters", m.parameters()},
                       {"gradients", gradients},
                       {"optimizer_state", m.state()},
                       {"activations", m.activations()}};
    if (!plan.optimizer().kind().empty())
      out["optimizer"] = {{"kind", plan.optimizer().kind()},
                          {"beta1", plan.optimizer().beta1()},
                          {"beta2", plan.optimizer().beta2()},
                          {"eps", plan.optimizer().eps()},
                          {"weight_decay", plan.optimizer().weight_decay()},
                          {"max_grad_norm", plan.optimizer().max_grad_norm()},
                          {"accumulation", plan.optimizer().accumulation()}};
    out["cost"] = {{"flops", plan.cost().flops()},
                   {"memory_bytes", plan.cost().memory_bytes()}};
    out["kernels"] = nlohmann::json::array();
    for (const auto &k : plan.kernels())
      out["kernels"].push_back({{"name", k.name()},
                                {"target", k.target()},
                                {"image_bytes", k.image().size()},
                                {"registers", k.registers()},
                                {"spill_bytes", k.spill_bytes()},
                                {"stack_bytes", k.stack_bytes()},
                                {"grid_blocks", k.grid_blocks()},
                                {"block_threads", k.block_threads()},
                                {"summary", kernelSummary(k)}});
    int steps = 0;
    for (const auto &stream : plan.streams())
      steps += stream.steps_size();
    out["steps"] = steps;
    out["buffers"] = plan.buffers_size();
    llvm::outs() << out.dump(2) << "\n";
    return 0;
  }

  llvm::raw_ostream &os = llvm::outs();
  os << "plan         " << path << " (format " << plan.format_version()
     << ", from " << plan.model() << ", "
     << (plan.device().empty() ? "cpu" : plan.device()) << ", "
     << plan.strategy() << ", " << plan.threads() << " threads)\n";
  auto ofProgram = [](const std::string &program) {
    return program.empty() ? std::string() : " (" + program + ")";
  };
  for (const auto &input : plan.inputs())
    os << "input        " << input.name() << ": "
       << describeBuffer(plan.buffers(input.buffer()))
       << ofProgram(input.program()) << "\n";
  for (const auto &output : plan.outputs())
    os << "output       " << output.name() << ": "
       << describeBuffer(plan.buffers(output.buffer()))
       << ofProgram(output.program()) << "\n";
  auto number = [](double value) { // "0.9", "1e-08"
    std::ostringstream text;
    text << value;
    return text.str();
  };
  if (const plan::Optimizer &o = plan.optimizer(); !o.kind().empty())
    os << "optimizer    " << o.kind() << " (beta1 " << number(o.beta1())
       << ", beta2 " << number(o.beta2()) << ", eps " << number(o.eps())
       << ", weight decay " << number(o.weight_decay()) << ", clipping "
       << (o.max_grad_norm() > 0 ? number(o.max_grad_norm()) : "none") << ", "
       << o.accumulation() << " micro-batch"
       << (o.accumulation() == 1 ? "" : "es") << " per step), "
       << plan.state_size() << " state tensors\n";
  os << "memory       peak " << binary(m.peak()) << " = parameters "
     << binary(m.parameters()) << " + arena " << binary(m.arena())
     << " (activations " << binary(m.activations()) << ", workspace "
     << binary(m.workspace()) << ") + constants " << binary(m.constants())
     << (m.state() > 0 ? " + training state " + binary(m.state()) : "") << "\n";
  if (const MostLive most = mostLive(plan); most.stream) {
    const plan::Step &step = most.stream->steps(most.step);
    os << "             the arena holds the most, " << binary(most.bytes)
       << " live, at step " << most.step << " on stream " << most.stream->name()
       << ofProgram(most.stream->program()) << ": " << step.name() << " ("
       << rt::stepFunction(plan, step) << ")\n";
    std::string largest;
    for (int id : largestLive(plan, most, 5))
      largest += std::string(largest.empty() ? "" : ", ") +
                 plan.buffers(id).name() + " " +
                 describeBuffer(plan.buffers(id)) + " " +
                 binary(plan.buffers(id).bytes());
    if (!largest.empty())
      os << "             the largest there: " << largest << "\n";
  }
#ifdef WEFT_HAVE_CUDA_RUNTIME
  if (plan.device() == "cuda") {
    const runtime::CudaExecutor::DeviceMemory d =
        runtime::CudaExecutor::deviceMemory(plan, path);
    os << "on a GPU     at most " << binary(d.block + d.cudnnAtMost)
       << ": the peak, the CUDA runtime's " << binary(d.runtime)
       << " (cuBLASLt's workspace, step status, tables)"
       << (d.cudnnAtMost > 0
               ? " and cuDNN's attention workspace, up to " +
                     binary(d.cudnnAtMost) + " (WEFT_CUDNN_WORKSPACE)"
               : std::string())
       << "\n";
  }
#endif
  if (m.host() > 0)
    os << "host memory  " << binary(m.host())
       << " of offloaded tensors (weft.offload), outside the peak\n";
  if (!plan.optimizer().kind().empty())
    os << "per rank     "
       << (ranks > 1 ? "each of " + std::to_string(ranks) + " ranks: " : "")
       << "parameters " << binary(m.parameters()) << ", gradients "
       << binary(gradients) << " (what the optimizer reads), optimizer state "
       << binary(m.state()) << ", activations " << binary(m.activations())
       << " (the arena's peak, gradients in it)\n";
  os << "cost         " << decimal(plan.cost().flops(), "FLOP") << ", "
     << binary(plan.cost().memory_bytes()) << " of memory traffic per step\n";
  os << "kernels      " << plan.kernels_size() << " generated\n";
  for (const auto &k : plan.kernels())
    os << "  " << k.name() << "  " << kernelResources(k) << ", "
       << binary(k.image().size()) << ": " << kernelSummary(k) << "\n";
  for (const auto &stream : plan.streams()) {
    os << "steps        " << stream.steps_size() << " on stream "
       << stream.name() << ofProgram(stream.program()) << "\n";
    for (int i = 0; i < stream.steps_size(); ++i) {
      const auto &step = stream.steps(i);
      os << "  " << llvm::right_justify(std::to_string(i), 4) << "  "
         << llvm::left_justify(step.name(), 44) << " "
         << llvm::left_justify(rt::stepFunction(plan, step), 30) << " live "
         << binary(step.live_bytes()) << "\n";
    }
  }
  os << "buffers      " << plan.buffers_size() << "\n";
  for (int i = 0; i < plan.buffers_size(); ++i) {
    const auto &b = plan.buffers(i);
    os << "  " << llvm::right_justify(std::to_string(i), 4) << "  "
       << llvm::left_justify(b.name(), 48) << " "
       << llvm::left_justify(regionName(b.region()), 11)
       << llvm::right_justify(std::to_string(b.offset()), 12) << "  "
       << describeBuffer(b) << "\n";
  }
  return 0;
}
