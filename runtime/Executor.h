// What runs a plan, on whichever device it was compiled for.
#ifndef WEFT_RUNTIME_EXECUTOR_H
#define WEFT_RUNTIME_EXECUTOR_H

#include "runtime/HostTensor.h"
#include "runtime/Safetensors.h"
#include "runtime/Trace.h"

#include <string>

namespace weft::runtime {

class Executor {
public:
  virtual ~Executor() = default;
  /// Loads every parameter by name. Throws Error naming the file and tensor.
  virtual void loadParameters(const SafetensorsCheckpoint &checkpoint) = 0;
  /// Fills the parameters from `seed` (fillParameters): the same values on
  /// every device.
  virtual void initializeParameters(uint64_t seed) = 0;
  /// Keeps an input for every following run; its dtype and shape must match
  /// the plan's (an f32 tensor is rounded for a bf16 input).
  virtual void setInput(const std::string &name, const HostTensor &tensor) = 0;
  /// Runs every step and waits for it; records each in `trace` when given.
  /// Throws Error naming the step when a kernel rejects its data.
  virtual void run(TraceWriter *trace = nullptr) = 0;
  virtual HostTensor output(const std::string &name) const = 0;
  /// Bytes allocated for the arena (the planned arena size).
  virtual int64_t arenaBytes() const = 0;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_EXECUTOR_H
