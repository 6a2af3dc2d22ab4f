// The training loop: runs a training plan's programs per optimizer step on
// its executor (CPU or GPU) — the plan computes the loss, the gradients,
// their global norm and AdamW's update in place (passes/Train/Optimizer) —
// and feeds it the learning rate of its schedule and the step. The optimizer
// state lives in the plan's STATE region; checkpoints read and restore it by
// name.
#ifndef WEFT_RUNTIME_TRAINER_H
#define WEFT_RUNTIME_TRAINER_H

#include "runtime/Checkpoint.h"
#include "runtime/Executor.h"
#include "runtime/HostTensor.h"
#include "runtime/Safetensors.h"

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

/// The AdamW settings `plan` was compiled with (learning rate and schedule
/// left at their defaults: a run gives them).
OptimizerOptions compiledOptions(const plan::Plan &plan);

struct StepStats {
  double loss, lr, gradNorm;
};

class Trainer {
public:
  /// Drives a training plan (weft-optimizer's: `@train_step` updates the
  /// parameters and the optimizer state in place, and under gradient
  /// accumulation `optimizer_step` follows the micro-batches). The plan's
  /// AdamW settings must be `options`' (they are compiled into it); the
  /// learning rate and its schedule are given per step. The executor's
  /// parameters must be loaded first: bf16 ones are widened into their
  /// master weights. Throws Error naming the plan and the setting.
  Trainer(Executor &executor, const std::string &planName,
          OptimizerOptions options);

  /// One optimizer step: runs the plan on each micro-batch (token ids
  /// [batch, seq], which are also the labels; as many as the plan
  /// accumulates), then the update. Returns the mean loss, the learning rate
  /// used and the global gradient norm before clipping. Each plan step is
  /// recorded in `trace` when given.
  StepStats step(const std::vector<HostTensor> &microBatches,
                 TraceWriter *trace = nullptr);

  /// Optimizer steps taken (restored by loadState).
  int64_t steps() const { return stepsDone; }
  /// Micro-batches per optimizer step, as the plan was compiled.
  int64_t accumulation() const { return microBatches; }

  /// The state a checkpoint keeps, whole and flat: "<param>.exp_avg",
  /// "<param>.exp_avg_sq" and, for bf16 parameters, "<param>.master" — f32
  /// views of the executor's memory (of a copy where that is a GPU's), or,
  /// for ZeRO's blocks, of every rank's gathered (a collective: every rank
  /// calls it; valid until the next call).
  std::vector<TensorView> state();
  /// The model's parameters as a checkpoint keeps them: views of the
  /// executor's memory (or of a copy), or, for ZeRO-3's blocks, whole
  /// tensors gathered from every rank (a collective; valid until the next
  /// call).
  std::vector<TensorView> parameters();
  /// Restores state() from `checkpoint` (whole tensors; under ZeRO each rank
  /// keeps its block) and the step count. Throws Error naming `source` and
  /// the tensor that is missing or of the wrong size.
  void loadState(const std::string &source,
                 const SafetensorsCheckpoint &checkpoint, int64_t steps);

private:
  Executor &executor;
  std::string planName;
  OptimizerOptions options;
  int64_t microBatches = 1;
  int64_t stepsDone = 0;
  /// Sharded `binding` (a ZeRO block, a tensor-parallel slice) whole: every
  /// rank's block gathered and put in place (a collective).
  std::vector<char> gatherWhole(const plan::Binding &binding);
  /// Buffer `bufferId`'s bytes in host memory: the executor's own, or a
  /// copy kept in `copies`.
  const char *hostBytes(int bufferId,
                        std::vector<std::vector<char>> &copies) const;
  /// Writes `bytes` into buffer `bufferId`.
  void writeBuffer(int bufferId, const char *bytes);
  std::vector<std::vector<char>> gathered;           // state()'s copies
  std::vector<std::vector<char>> gatheredParameters; // parameters()' copies
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_TRAINER_H
