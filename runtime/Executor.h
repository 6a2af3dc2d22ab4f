// What runs a plan, on whichever device it was compiled for.
#ifndef WEFT_RUNTIME_EXECUTOR_H
#define WEFT_RUNTIME_EXECUTOR_H

#include "runtime/HostTensor.h"
#include "runtime/Safetensors.h"
#include "runtime/Trace.h"
#include "runtime/plan.pb.h"

#include <string>

namespace weft::runtime {

class Communicator;

class Executor {
public:
  virtual ~Executor() = default;
  virtual const plan::Plan &getPlan() const = 0;
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
  /// Runs the plan's program `program` (plan.proto, Stream.program; a
  /// training plan's optimizer_step under gradient accumulation) as run()
  /// runs the main one. Throws Error naming a missing program or input.
  virtual void runProgram(const std::string &program,
                          TraceWriter *trace = nullptr) = 0;
  virtual HostTensor output(const std::string &name) const = 0;
  /// Bytes allocated for the arena (the planned arena size).
  virtual int64_t arenaBytes() const = 0;

  /// Where a parameter's or the training state's buffer `bufferId` lives
  /// when that is host memory (the CPU runtime), else null: then copyOut
  /// and copyIn move its bytes.
  virtual char *hostData(int bufferId) const = 0;
  virtual void copyOut(int bufferId, char *host) const = 0;
  virtual void copyIn(int bufferId, const char *host) = 0;
  /// The job's communicator when the plan has a mesh, else null.
  virtual Communicator *getCommunicator() const { return nullptr; }
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_EXECUTOR_H
