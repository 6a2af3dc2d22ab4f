#include "runtime/Trainer.h"

#include "kernels/cpu/Kernels.h"
#include "runtime/Communicator.h"
#include "runtime/Error.h"
#include "runtime/PlanFile.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace weft::runtime;
namespace cpu = weft::kernels::cpu;

double LearningRateSchedule::at(double lr, int64_t step) const {
  if (kind == Kind::Constant)
    return lr;
  if (step < warmupSteps)
    return lr * static_cast<double>(step) /
           static_cast<double>(std::max<int64_t>(1, warmupSteps));
  if (kind == Kind::Warmup)
    return lr;
  const double progress =
      static_cast<double>(step - warmupSteps) /
      static_cast<double>(std::max<int64_t>(1, totalSteps - warmupSteps));
  const double cosine =
      std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * std::min(progress, 1.0))));
  return lr * (minRatio + (1.0 - minRatio) * cosine);
}

namespace {
bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Optimizer state a checkpoint keeps (gradient accumulators are zero
/// between steps).
bool isCheckpointed(const std::string &name) {
  return name.rfind("grad_acc.", 0) != 0;
}

HostTensor scalar(weft::plan::DType dtype, const void *value, size_t bytes) {
  HostTensor t{dtype, {}, {}};
  t.bytes.assign(static_cast<const char *>(value),
                 static_cast<const char *>(value) + bytes);
  return t;
}
} // namespace

OptimizerOptions weft::runtime::compiledOptions(const weft::plan::Plan &plan) {
  const weft::plan::Optimizer &o = plan.optimizer();
  OptimizerOptions options;
  options.beta1 = o.beta1();
  options.beta2 = o.beta2();
  options.eps = o.eps();
  options.weightDecay = o.weight_decay();
  options.maxGradNorm = o.max_grad_norm();
  options.noDecay.assign(o.no_decay().begin(), o.no_decay().end());
  return options;
}

Trainer::Trainer(Executor &executor, const std::string &planName,
                 OptimizerOptions options)
    : executor(executor), planName(planName), options(std::move(options)) {
  const plan::Plan &plan = executor.getPlan();
  const plan::Optimizer &compiled = plan.optimizer();
  if (compiled.kind() != "adamw" || plan.outputs_size() == 0 ||
      plan.outputs(0).name() != "loss")
    throw Error(planName + ": not a training plan (it needs the loss as its "
                           "first output and an AdamW step; compile it with "
                           "weft train or weft compile --train)");
  // What the plan computes must be what the run asks for.
  auto same = [&](const char *what, double planned, double wanted) {
    if (planned != wanted)
      throw Error(planName + ": the plan's AdamW has " + what + " " +
                  std::to_string(planned) + ", the run asks for " +
                  std::to_string(wanted) + "; recompile the plan");
  };
  const OptimizerOptions &o = this->options;
  same("beta1", compiled.beta1(), o.beta1);
  same("beta2", compiled.beta2(), o.beta2);
  same("eps", compiled.eps(), o.eps);
  same("weight decay", compiled.weight_decay(), o.weightDecay);
  same("gradient clipping", compiled.max_grad_norm(), o.maxGradNorm);
  if (std::vector<std::string>(compiled.no_decay().begin(),
                               compiled.no_decay().end()) != o.noDecay)
    throw Error(planName + ": the plan exempts other parameters from weight "
                           "decay than the run asks for; recompile the plan");
  microBatches = std::max(1, compiled.accumulation());

  // bf16 parameters start their master weights from the loaded values.
  for (const plan::Binding &state : plan.state()) {
    if (!endsWith(state.name(), ".master"))
      continue;
    const std::string param =
        state.name().substr(0, state.name().size() - std::strlen(".master"));
    // Under ZeRO the master weights are this rank's block.
    const int64_t count = plan.buffers(state.buffer()).bytes() / 4;
    const uint32_t group = shardGroup(plan, state);
    const int64_t first =
        group ? executor.getCommunicator()->groupRank(group) * count : 0;
    // (Under ZeRO-3 the bf16 parameter is that block itself.) A padded
    // block's tail past the tensor's end stays zero.
    std::vector<float> master(count);
    std::vector<std::vector<char>> copies;
    for (const plan::Binding &binding : plan.parameters()) {
      if (binding.name() != param)
        continue;
      const bool block = binding.global_elements() > 0;
      const int64_t kept =
          block || !group
              ? count
              : std::clamp<int64_t>(state.global_elements() - first, 0, count);
      cpu::bf16ToF32(reinterpret_cast<const uint16_t *>(
                         hostBytes(binding.buffer(), copies)) +
                         (block ? 0 : first),
                     master.data(), kept);
    }
    writeBuffer(state.buffer(), reinterpret_cast<const char *>(master.data()));
  }
}

const char *Trainer::hostBytes(int bufferId,
                               std::vector<std::vector<char>> &copies) const {
  if (const char *data = executor.hostData(bufferId))
    return data;
  copies.emplace_back(executor.getPlan().buffers(bufferId).bytes());
  executor.copyOut(bufferId, copies.back().data());
  return copies.back().data();
}

void Trainer::writeBuffer(int bufferId, const char *bytes) {
  if (char *data = executor.hostData(bufferId))
    std::memcpy(data, bytes, executor.getPlan().buffers(bufferId).bytes());
  else
    executor.copyIn(bufferId, bytes);
}

StepStats Trainer::step(const std::vector<HostTensor> &batches,
                        TraceWriter *trace) {
  if (static_cast<int64_t>(batches.size()) != microBatches)
    throw Error(planName + ": an optimizer step of this plan takes " +
                std::to_string(microBatches) + " micro-batches, given " +
                std::to_string(batches.size()));
  const double lr = options.schedule.at(options.lr, stepsDone);
  const int64_t step = stepsDone + 1; // AdamW counts from 1
  executor.setInput("lr", scalar(plan::F64, &lr, sizeof(lr)));
  executor.setInput("step", scalar(plan::I64, &step, sizeof(step)));
  double loss = 0;
  for (const HostTensor &batch : batches) {
    executor.setInput("input_ids", batch);
    executor.setInput("labels", batch);
    executor.run(trace);
    float value;
    std::memcpy(&value, executor.output("loss").bytes.data(), sizeof(value));
    loss += value;
  }
  if (microBatches > 1)
    executor.runProgram("optimizer_step", trace);
  float norm;
  std::memcpy(&norm, executor.output("grad_norm").bytes.data(), sizeof(norm));
  ++stepsDone;
  return {loss / static_cast<double>(batches.size()), lr, norm};
}

std::vector<TensorView> Trainer::state() {
  const plan::Plan &plan = executor.getPlan();
  std::vector<TensorView> out;
  gathered.clear();
  gathered.reserve(plan.state_size());
  for (const plan::Binding &state : plan.state()) {
    if (!isCheckpointed(state.name()))
      continue;
    const plan::Buffer &buffer = plan.buffers(state.buffer());
    const char *data = nullptr;
    int64_t bytes = buffer.bytes();
    if (shardGroup(plan, state)) {
      gathered.push_back(gatherWhole(state));
      data = gathered.back().data();
      bytes = gathered.back().size();
    } else {
      data = hostBytes(state.buffer(), gathered);
    }
    out.push_back({state.name(), plan::F32, {bytes / 4}, data, bytes});
  }
  return out;
}

std::vector<char> Trainer::gatherWhole(const plan::Binding &binding) {
  const plan::Plan &plan = executor.getPlan();
  const plan::Buffer &buffer = plan.buffers(binding.buffer());
  const int64_t element = dtypeBytes(buffer.dtype()),
                local = buffer.bytes() / element;
  const ShardLayout layout = ShardLayout::of(plan, binding, local);
  std::vector<char> blocks(layout.members * buffer.bytes());
  std::vector<std::vector<char>> copy;
  executor.getCommunicator()->allGather(hostBytes(binding.buffer(), copy),
                                        blocks.data(), local, buffer.dtype(),
                                        shardGroup(plan, binding));
  std::vector<char> whole(binding.global_elements() * element);
  layout.place(blocks.data(), whole.data(), element);
  return whole;
}

std::vector<TensorView> Trainer::parameters() {
  const plan::Plan &plan = executor.getPlan();
  std::vector<TensorView> out;
  gatheredParameters.clear();
  gatheredParameters.reserve(plan.parameters_size());
  for (const plan::Binding &param : plan.parameters()) {
    const plan::Buffer &buffer = plan.buffers(param.buffer());
    const char *data = nullptr;
    std::vector<int64_t> shape(buffer.shape().begin(), buffer.shape().end());
    int64_t bytes = buffer.bytes();
    if (shardGroup(plan, param)) {
      gatheredParameters.push_back(gatherWhole(param));
      data = gatheredParameters.back().data();
      shape.assign(param.global_shape().begin(), param.global_shape().end());
      bytes = gatheredParameters.back().size();
    } else {
      data = hostBytes(param.buffer(), gatheredParameters);
    }
    out.push_back({param.name(), buffer.dtype(), shape, data, bytes});
  }
  return out;
}

void Trainer::loadState(const std::string &source,
                        const SafetensorsCheckpoint &checkpoint,
                        int64_t steps) {
  const plan::Plan &plan = executor.getPlan();
  for (const plan::Binding &state : plan.state()) {
    if (!isCheckpointed(state.name()))
      continue;
    const plan::Buffer &buffer = plan.buffers(state.buffer());
    const auto *tensor = checkpoint.find(state.name());
    if (!tensor)
      throw Error(source + ": no optimizer state '" + state.name() + "'");
    int64_t count = 1;
    for (int64_t d : tensor->shape)
      count *= d;
    const uint32_t group = shardGroup(plan, state);
    const int64_t expected =
        group ? state.global_elements() : buffer.bytes() / 4;
    if (count != expected)
      throw Error(source + ": optimizer state '" + state.name() + "' has " +
                  std::to_string(count) + " values, expected " +
                  std::to_string(expected));
    // Whole in the checkpoint, whatever the run that wrote it; under ZeRO
    // this rank keeps its block.
    std::vector<float> whole(count);
    checkpoint.read(state.name(), tensor->shape, plan::F32, whole.data());
    if (!group) {
      writeBuffer(state.buffer(), reinterpret_cast<const char *>(whole.data()));
      continue;
    }
    std::vector<char> block(buffer.bytes());
    ShardLayout::of(plan, state, buffer.bytes() / 4)
        .take(executor.getCommunicator()->groupRank(group),
              reinterpret_cast<const char *>(whole.data()), block.data(), 4);
    writeBuffer(state.buffer(), block.data());
  }
  stepsDone = steps;
}
