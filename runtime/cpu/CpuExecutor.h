// Runs a CPU plan: one arena allocated once at the planned size, the
// parameters, the constants, the plan's generated kernels and the library
// calls, step by step in stream order.
#ifndef WEFT_RUNTIME_CPU_CPUEXECUTOR_H
#define WEFT_RUNTIME_CPU_CPUEXECUTOR_H

#include "runtime/HostTensor.h"
#include "runtime/Safetensors.h"
#include "runtime/Trace.h"
#include "runtime/plan.pb.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace weft::runtime {

class CpuExecutor {
public:
  /// Checks that the plan targets the CPU, allocates its memory and loads its
  /// kernels. `threads` 0 uses the plan's thread count (never more). Throws
  /// Error naming `planName`.
  CpuExecutor(const plan::Plan &plan, std::string planName, int threads = 0);
  ~CpuExecutor();

  /// Loads every parameter by name. Throws Error naming the file and tensor.
  void loadParameters(const SafetensorsCheckpoint &checkpoint);
  /// Fills the parameters from `seed`: normal(0, 0.02), norm weights one.
  void initializeParameters(uint64_t seed);

  /// Keeps an input for every following run; its dtype and shape must match
  /// the plan's exactly.
  void setInput(const std::string &name, const HostTensor &tensor);
  /// Runs every step; records each in `trace` when given. Throws Error naming
  /// the step when a kernel rejects its data (an index out of range).
  void run(TraceWriter *trace = nullptr);
  HostTensor output(const std::string &name) const;

  /// Runs steps [begin, end) in stream order; begin 0 first copies the
  /// inputs in. run() is runSteps(0, stepCount()).
  void runSteps(size_t begin, size_t end, TraceWriter *trace = nullptr);
  size_t stepCount() const { return steps.size(); }
  /// The memory of a region (ARENA, PARAMETERS, CONSTANTS), for comparing
  /// with another device's run of the same plan.
  char *region(plan::Region region);

  /// Bytes allocated for the arena (the planned arena size).
  int64_t arenaBytes() const { return arenaSize; }
  const plan::Plan &getPlan() const { return plan; }

private:
  struct Loaded;
  char *address(int bufferId) const;
  void prepareSteps();

  const plan::Plan &plan;
  std::string planName;
  int threads;
  int64_t arenaSize = 0;
  std::unique_ptr<Loaded> loaded;
  std::vector<HostTensor> inputs; // dtype unspecified until given
  std::vector<std::function<void()>> steps;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_CPU_CPUEXECUTOR_H
