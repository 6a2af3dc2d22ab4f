// Runs a CPU plan: one arena allocated once at the planned size, the
// parameters, the constants, the plan's generated kernels and the library
// calls, step by step in stream order.
#ifndef WEFT_RUNTIME_CPU_CPUEXECUTOR_H
#define WEFT_RUNTIME_CPU_CPUEXECUTOR_H

#include "runtime/Communicator.h"
#include "runtime/Executor.h"
#include "runtime/plan.pb.h"

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace weft::runtime {

class CpuExecutor : public Executor {
public:
  /// Checks that the plan targets the CPU, allocates its memory and loads its
  /// kernels. `threads` 0 uses the plan's thread count (never more). Throws
  /// Error naming `planName`.
  CpuExecutor(const plan::Plan &plan, std::string planName, int threads = 0);
  ~CpuExecutor() override;

  void loadParameters(const SafetensorsCheckpoint &checkpoint) override;
  void initializeParameters(uint64_t seed) override;
  void setInput(const std::string &name, const HostTensor &tensor) override;
  void run(TraceWriter *trace = nullptr) override;
  HostTensor output(const std::string &name) const override;

  /// Runs the plan's program `program` (plan.proto, Stream.program): its
  /// inputs are copied in, then its streams' steps run in order. run() runs
  /// the main program. Throws Error naming a missing program or input.
  void runProgram(const std::string &program,
                  TraceWriter *trace = nullptr) override;
  /// Runs steps [begin, end) in stream order; beginning at a stream's first
  /// step first copies its program's inputs in (runSteps(0, 0): the main
  /// program's).
  void runSteps(size_t begin, size_t end, TraceWriter *trace = nullptr);
  size_t stepCount() const { return steps.size(); }
  /// The memory of a region (ARENA, PARAMETERS, CONSTANTS, STATE), for
  /// comparing with another device's run of the same plan.
  char *region(plan::Region region);
  char *hostData(int bufferId) const override { return address(bufferId); }
  void copyOut(int bufferId, char *host) const override;
  void copyIn(int bufferId, const char *host) override;

  int64_t arenaBytes() const override { return arenaSize; }
  const plan::Plan &getPlan() const override { return plan; }
  Communicator *getCommunicator() const override { return communicator; }
  /// This rank's block index of a ZeRO block binding (0 for a whole one).
  int64_t memberOf(const plan::Binding &binding) const;

private:
  struct Loaded;
  char *address(int bufferId) const;
  void prepareSteps();
  /// The program run() runs: the first stream's.
  std::string mainProgram() const {
    return plan.streams_size() > 0 ? plan.streams(0).program() : "";
  }
  void copyInputs(const std::string &program);
  void runRange(int stream, size_t begin, size_t end, TraceWriter *trace);
  /// Waits for the started collectives (ZeRO-3's prefetched gathers) that
  /// write or read a buffer of `step`; all of them.
  void waitFor(const plan::Step &step);
  void waitAll();

  const plan::Plan &plan;
  std::string planName;
  int threads;
  int64_t arenaSize = 0;
  std::unique_ptr<Loaded> loaded;
  std::vector<HostTensor> inputs;           // dtype unspecified until given
  std::vector<std::function<void()>> steps; // every stream's, in order
  std::vector<size_t> streamBegin;          // each stream's first step
  Communicator *communicator = nullptr;     // plans with a mesh
  /// Started collectives and the buffers they read and write: a step that
  /// touches their memory (through any buffer: reshapes alias) waits.
  struct Started {
    std::shared_ptr<Communicator::Request> request;
    std::vector<int> buffers;
  };
  std::vector<Started> started;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_CPU_CPUEXECUTOR_H
