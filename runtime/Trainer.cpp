#include "runtime/Trainer.h"

#include "kernels/cpu/Kernels.h"
#include "runtime/Error.h"
#include "runtime/PlanFile.h"

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

Trainer::Trainer(CpuExecutor &executor, const std::string &planName,
                 OptimizerOptions options)
    : executor(executor), planName(planName), options(std::move(options)) {
  const plan::Plan &plan = executor.getPlan();
  for (const plan::Binding &binding : plan.parameters()) {
    int grad = -1;
    for (const plan::Binding &output : plan.outputs())
      if (output.name() == "grad." + binding.name())
        grad = output.buffer();
    if (grad < 0)
      continue; // frozen
    const plan::Buffer &buffer = plan.buffers(binding.buffer());
    Parameter p{binding.name(), binding.buffer(),
                grad,           buffer.dtype() == plan::BF16,
                true,           buffer.bytes() / dtypeBytes(buffer.dtype())};
    if (buffer.dtype() != plan::F32 && !p.bf16)
      throw Error(planName + ": parameter '" + p.name + "' is " +
                  dtypeName(buffer.dtype()) + "; training needs f32 or bf16");
    for (const std::string &pattern : this->options.noDecay)
      if (p.name.find(pattern) != std::string::npos)
        p.decay = false;
    p.m.assign(p.count, 0.0f);
    p.v.assign(p.count, 0.0f);
    if (p.bf16) {
      p.master.resize(p.count);
      cpu::bf16ToF32(
          reinterpret_cast<const uint16_t *>(executor.bufferData(p.param)),
          p.master.data(), p.count);
    }
    parameters.push_back(std::move(p));
  }
  if (parameters.empty() || plan.outputs_size() == 0 ||
      plan.outputs(0).name() != "loss")
    throw Error(planName + ": not a training plan (it needs the loss as its "
                           "first output and a grad.<parameter> output for "
                           "each trained parameter)");
}

StepStats Trainer::step(const std::vector<HostTensor> &microBatches) {
  if (microBatches.empty())
    throw Error(planName + ": an optimizer step needs at least one batch");
  const bool accumulate = microBatches.size() > 1;
  double loss = 0;
  for (size_t i = 0; i < microBatches.size(); ++i) {
    executor.setInput("input_ids", microBatches[i]);
    executor.setInput("labels", microBatches[i]);
    executor.run();
    float value;
    std::memcpy(&value, executor.output("loss").bytes.data(), sizeof(value));
    loss += value;
    if (!accumulate)
      continue;
    for (Parameter &p : parameters) {
      const char *grad = executor.bufferData(p.grad);
      if (i == 0)
        p.accumulated.assign(p.count, 0.0f);
      for (int64_t k = 0; k < p.count; ++k)
        p.accumulated[k] +=
            p.bf16
                ? cpu::bf16ToFloat(reinterpret_cast<const uint16_t *>(grad)[k])
                : reinterpret_cast<const float *>(grad)[k];
    }
  }
  // The mean over micro-batches, as a loss divided by their count and
  // backpropagated per micro-batch gives.
  if (accumulate) {
    const float inverse = 1.0f / static_cast<float>(microBatches.size());
    for (Parameter &p : parameters)
      for (float &g : p.accumulated)
        g *= inverse;
  }
  // Each parameter's gradient: the averaged fp32 one, or the plan's (f32 or
  // bf16) output.
  struct Gradient {
    const float *f32;
    const uint16_t *bf16;
  };
  auto gradientOf = [&](const Parameter &p) -> Gradient {
    if (accumulate)
      return {p.accumulated.data(), nullptr};
    const char *grad = executor.bufferData(p.grad);
    if (p.bf16)
      return {nullptr, reinterpret_cast<const uint16_t *>(grad)};
    return {reinterpret_cast<const float *>(grad), nullptr};
  };
  double squares = 0;
  for (const Parameter &p : parameters) {
    Gradient g = gradientOf(p);
    squares += g.bf16 ? cpu::sumOfSquaresBf16(g.bf16, p.count)
                      : cpu::sumOfSquares(g.f32, p.count);
  }
  const double norm = std::sqrt(squares);
  float scale = 1.0f;
  if (options.maxGradNorm > 0) // torch.nn.utils.clip_grad_norm_
    scale = std::min(1.0f, static_cast<float>(options.maxGradNorm) /
                               (static_cast<float>(norm) + 1e-6f));
  const double lr = options.schedule.at(options.lr, stepsDone);
  for (Parameter &p : parameters) {
    cpu::AdamWStep s{lr,
                     options.beta1,
                     options.beta2,
                     options.eps,
                     p.decay ? options.weightDecay : 0.0,
                     stepsDone + 1,
                     scale};
    char *param = executor.bufferData(p.param);
    float *master = p.bf16 ? p.master.data() : reinterpret_cast<float *>(param);
    uint16_t *narrow = p.bf16 ? reinterpret_cast<uint16_t *>(param) : nullptr;
    Gradient g = gradientOf(p);
    if (g.bf16)
      cpu::adamwUpdateBf16Grad(s, master, p.m.data(), p.v.data(), g.bf16,
                               narrow, p.count);
    else
      cpu::adamwUpdate(s, master, p.m.data(), p.v.data(), g.f32, narrow,
                       p.count);
  }
  ++stepsDone;
  return {loss / static_cast<double>(microBatches.size()), lr, norm};
}

std::vector<std::pair<std::string, const std::vector<float> *>>
Trainer::state() const {
  std::vector<std::pair<std::string, const std::vector<float> *>> out;
  for (const Parameter &p : parameters) {
    out.push_back({p.name + ".exp_avg", &p.m});
    out.push_back({p.name + ".exp_avg_sq", &p.v});
    if (p.bf16)
      out.push_back({p.name + ".master", &p.master});
  }
  return out;
}

void Trainer::loadState(
    const std::string &source,
    const std::function<const std::vector<float> *(const std::string &)> &find,
    int64_t steps) {
  for (Parameter &p : parameters) {
    std::vector<std::pair<std::string, std::vector<float> *>> wanted = {
        {p.name + ".exp_avg", &p.m}, {p.name + ".exp_avg_sq", &p.v}};
    if (p.bf16)
      wanted.push_back({p.name + ".master", &p.master});
    for (auto &[name, into] : wanted) {
      const std::vector<float> *found = find(name);
      if (!found)
        throw Error(source + ": no optimizer state '" + name + "'");
      if (static_cast<int64_t>(found->size()) != p.count)
        throw Error(source + ": optimizer state '" + name + "' has " +
                    std::to_string(found->size()) + " values, expected " +
                    std::to_string(p.count));
      *into = *found;
    }
  }
  stepsDone = steps;
}
