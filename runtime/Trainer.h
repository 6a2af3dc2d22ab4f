// The training loop's optimizer step on the CPU: a training plan (the loss
// first, then `grad.<param>` for each trained parameter) runs once per
// micro-batch, the gradients are averaged, their global norm taken and
// clipped, and AdamW updates each parameter as torch.optim.AdamW does. bf16
// parameters keep fp32 master weights; the moments are fp32.
#ifndef WEFT_RUNTIME_TRAINER_H
#define WEFT_RUNTIME_TRAINER_H

#include "runtime/HostTensor.h"
#include "runtime/cpu/CpuExecutor.h"

#include <functional>
#include <string>
#include <vector>

namespace weft::runtime {

/// The learning rate of each optimizer step: constant; a linear warm-up over
/// `warmupSteps` then constant (DeepSpeed's WarmupLR, linear); or the
/// warm-up then a cosine decay to `minRatio` · lr at `totalSteps`, as
/// transformers' get_cosine_schedule_with_warmup computes it (step s, from
/// 0, gets lr · s / warmup during the warm-up).
struct LearningRateSchedule {
  enum class Kind { Constant, Warmup, WarmupCosine };
  Kind kind = Kind::Constant;
  int64_t warmupSteps = 0, totalSteps = 0;
  double minRatio = 0.0;
  double at(double lr, int64_t step) const;
};

struct OptimizerOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weightDecay = 0.01; // torch.optim.AdamW's default, on every parameter
  double maxGradNorm = 0.0;  // 0: no clipping
  /// Parameters whose names contain one of these get no weight decay.
  std::vector<std::string> noDecay;
  LearningRateSchedule schedule;
};

struct StepStats {
  double loss, lr, gradNorm;
};

class Trainer {
public:
  /// Binds the plan's trained parameters (those with a `grad.` output) to
  /// their gradients and fresh optimizer state; the executor's parameters
  /// must be loaded first (bf16 ones are copied into the master weights).
  /// Throws Error naming the plan when it is not a training plan.
  Trainer(CpuExecutor &executor, const std::string &planName,
          OptimizerOptions options);

  /// One optimizer step: runs the plan on each micro-batch (token ids
  /// [batch, seq], which are also the labels), averages the gradients and
  /// updates every trained parameter. Returns the mean loss, the learning
  /// rate used and the global gradient norm before clipping.
  StepStats step(const std::vector<HostTensor> &microBatches);

  /// Optimizer steps taken (restored by loadState).
  int64_t steps() const { return stepsDone; }

  /// The state a checkpoint keeps, by name: "<param>.exp_avg",
  /// "<param>.exp_avg_sq" and, for bf16 parameters, "<param>.master" (f32).
  std::vector<std::pair<std::string, const std::vector<float> *>> state() const;
  /// Restores state() and the step count. Throws Error naming the tensor
  /// that is missing or of the wrong size.
  void
  loadState(const std::string &source,
            const std::function<const std::vector<float> *(const std::string &)>
                &find,
            int64_t steps);

private:
  struct Parameter {
    std::string name;
    int param, grad; // buffers
    bool bf16, decay;
    int64_t count;
    std::vector<float> master, m, v, accumulated;
  };
  CpuExecutor &executor;
  std::string planName;
  OptimizerOptions options;
  std::vector<Parameter> parameters;
  int64_t stepsDone = 0;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_TRAINER_H
