// Runs a CUDA plan on a GPU: the driver loaded with dlopen, one device block
// allocated once (arena, parameters, constants), the plan's generated
// kernels and the runtime's library kernels loaded from their cubins, GEMMs
// through cuBLASLt (algorithm chosen once per shape), every step launched in
// order on one stream. A plan with a mesh runs under mpirun, a GPU per rank:
// its collectives run through NCCL (a communicator per group of mesh axes,
// the unique ids sent over MPI) on a stream of their own, joined to the
// compute stream by events: each is left running until a later step touches
// its memory. The same plan's CPU build has the same
// buffers and steps, so every step can be checked against the CPU runtime.
#ifndef WEFT_RUNTIME_CUDA_CUDAEXECUTOR_H
#define WEFT_RUNTIME_CUDA_CUDAEXECUTOR_H

#include "runtime/Executor.h"
#include "runtime/plan.pb.h"

#include <memory>
#include <string>
#include <vector>

namespace weft::runtime {

/// Throws Error unless `plan` is a CUDA plan whose kernels (and this
/// runtime's) run on `architecture` ("sm_90"); `gpu` describes the GPU in the
/// message ("GPU 0 is NVIDIA ... (sm_89, ...)").
void checkPlanForGpu(const plan::Plan &plan, const std::string &planName,
                     const std::string &architecture, const std::string &gpu);

/// The most workspace cuDNN's attention may take beside the plan: the plan's
/// arena, or 256 MiB (cudnn-frontend's own default bound on its dP
/// workspace) where that is more. The device then holds at most about twice
/// what the plan computes in, and a workspace quadratic in the sequence
/// (cuDNN's deterministic backward decomposes dP in b·h·s_q·s_kv·2 bytes)
/// gives way to weft's kernels, linear in it. WEFT_CUDNN_WORKSPACE=BYTES
/// (K, M or G suffix) sets another; Error names a value that is not one.
int64_t cudnnWorkspaceBudget(const plan::Plan &plan,
                             const std::string &planName);

class CudaExecutor : public Executor {
public:
  /// Checks the plan and the GPU (driver, architecture, free memory) before
  /// any work starts, allocates and loads; a plan with a mesh connects its
  /// NCCL communicators (every rank takes part). `device` -1: the rank's
  /// place on its node (Communicator::localRank) modulo the GPUs. Throws
  /// Error naming `planName`.
  CudaExecutor(const plan::Plan &plan, std::string planName, int device = -1);
  ~CudaExecutor() override;
  /// Prepares every step of a CUDA plan as the constructor does, without a
  /// driver or a GPU: each library call's buffers, dtypes, shapes and
  /// workspace, each collective's group against the plan's mesh, each
  /// kernel's launch shape (what cuBLASLt and NCCL decide on the GPU aside).
  /// `weft compile --device cuda` runs it, so that a plan this runtime
  /// would refuse is refused where it is made. Throws Error naming the step.
  static void checkPlan(const plan::Plan &plan, const std::string &planName);
  /// The device memory an executor of `plan` allocates, known before
  /// launch: one block of the plan's regions (`block`, of which `runtime`
  /// is the runtime's own: a status word per step, cuBLASLt's 32 MiB
  /// workspace, cross-entropy's losses, the norm's partial sums, the rope
  /// tables) and, where the plan has bf16 attention, cuDNN's workspace of at
  /// most `cudnnAtMost` (cudnnWorkspaceBudget). deviceBytes() is at most
  /// block + cudnnAtMost.
  struct DeviceMemory {
    int64_t block = 0, runtime = 0, cudnnAtMost = 0;
  };
  static DeviceMemory deviceMemory(const plan::Plan &plan,
                                   const std::string &planName);

  void loadParameters(const SafetensorsCheckpoint &checkpoint) override;
  void initializeParameters(uint64_t seed) override;
  void setInput(const std::string &name, const HostTensor &tensor) override;
  /// Runs the main program on the GPU and waits for it; a trace gets each
  /// step's GPU time (events between the steps). Throws Error naming the
  /// step when a kernel met an index out of range.
  void run(TraceWriter *trace = nullptr) override;
  /// Runs the plan's program `program` (plan.proto, Stream.program; a
  /// training plan's optimizer_step under accumulation) as run() does: its
  /// inputs are copied in, then its streams' steps run in order.
  void runProgram(const std::string &program,
                  TraceWriter *trace = nullptr) override;
  HostTensor output(const std::string &name) const override;
  int64_t arenaBytes() const override;
  const plan::Plan &getPlan() const override;
  /// Device memory: null; copyOut and copyIn wait for the GPU's work.
  char *hostData(int) const override { return nullptr; }
  void copyOut(int bufferId, char *host) const override;
  void copyIn(int bufferId, const char *host) override;
  /// MPI, for the Trainer's checkpoint gathers and the byte counts (NCCL's
  /// collectives count there too).
  Communicator *getCommunicator() const override;
  /// Milliseconds the last run() or runProgram() took on the GPU (events
  /// around each of its streams).
  float lastRunMilliseconds() const { return lastMilliseconds; }

  /// For checks against the CPU runtime: copy a whole region in or out, and
  /// run one step (waiting for it).
  void upload(plan::Region region, const char *host);
  void download(plan::Region region, char *host) const;
  /// The same for bytes [offset, offset + bytes) of the region (`host` is
  /// the whole region's image).
  void upload(plan::Region region, const char *host, int64_t offset,
              int64_t bytes);
  void download(plan::Region region, char *host, int64_t offset,
                int64_t bytes) const;
  void runStep(size_t index);
  size_t stepCount() const;
  /// Each step's GPU time in milliseconds, the median of `repeat` runs
  /// (events between the steps; the inputs as the last run left them).
  std::vector<float> profileSteps(int repeat);
  /// The same for steps [begin, end) (stream order over every program).
  std::vector<float> timeSteps(size_t begin, size_t end, int repeat);

  /// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)".
  std::string deviceDescription() const;
  /// Device bytes this executor allocated (cuDNN's workspace too), and of
  /// them cuDNN's workspace.
  int64_t deviceBytes() const;
  int64_t cudnnWorkspaceBytes() const;
  /// What runs each bf16 attention step: "step 'x': cuDNN SDPA", or weft's
  /// kernels and why not cuDNN (it declines, or its workspace is over
  /// cudnnWorkspaceBudget; WEFT_CUDNN=0 turns cuDNN off).
  const std::vector<std::string> &attentionNotes() const;

private:
  struct State;
  std::unique_ptr<State> state;
  float lastMilliseconds = 0;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_CUDA_CUDAEXECUTOR_H
