// The CUDA executor. Library calls take their buffers, ints and floats in the
// order the CPU executor documents (runtime/cpu/CpuExecutor.cpp).
#include "runtime/cuda/CudaExecutor.h"

#include "kernels/cpu/Kernels.h"
#include "kernels/cuda/Attention.h"
#include "kernels/cuda/Launch.h"
#include "kernels/cuda/Reduce.h"
#include "kernels/cuda/Training.h"
#include "runtime/ByteCount.h"
#include "runtime/Communicator.h"
#include "runtime/Error.h"
#include "runtime/LibraryCalls.h"
#include "runtime/PlanFile.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/Cudnn.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <optional>

using namespace weft::runtime;
using weft::kernels::cuda::gridFor;
using weft::plan::Buffer;

/// kernels/cuda/Library.cu compiled for sm_90a at build time.
extern "C" const unsigned char weft_cuda_library_cubin[];

namespace {
constexpr int64_t kAlignment = 256;
constexpr int64_t kGemmWorkspaceBytes = 32 << 20;
constexpr const char *kLibraryTarget = "sm_90a";
/// kernels/cuda/Library.cu's attention: head dimensions up to this.
constexpr int64_t kAttentionMaxDim = 128;
constexpr unsigned kAttentionWarps = 4;

int64_t alignUp(int64_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

std::string gibibytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB",
                static_cast<double>(bytes) / (1 << 30));
  return text;
}

/// Kernel arguments by value, for cuLaunchKernel's array of pointers.
class Arguments {
public:
  template <typename T> Arguments &add(const T &value) {
    storage.emplace_back(sizeof(T));
    std::memcpy(storage.back().data(), &value, sizeof(T));
    return *this;
  }
  void **pointers() {
    if (pointerArray.size() != storage.size()) {
      pointerArray.clear();
      for (auto &bytes : storage)
        pointerArray.push_back(bytes.data());
    }
    return pointerArray.data();
  }

private:
  std::vector<std::vector<char>> storage;
  std::vector<void *> pointerArray;
};

} // namespace

namespace weft::runtime {
namespace {
/// Where the runtime puts everything in its one device block: the plan's
/// regions, a status word per step, cuBLASLt's workspace, cross-entropy's
/// per-token losses, the norm's partial sums, then a reserve for the rope
/// tables (at most a few KiB a step).
struct BlockLayout {
  int64_t regionOffset[5] = {0, 0, 0, 0, 0}; // by plan::Region (not HOST)
  int64_t statusOffset = 0, gemmOffset = 0, scratchOffset = 0, normOffset = 0,
          tableOffset = 0, bytes = 0;
};

BlockLayout blockLayoutOf(const plan::Plan &plan) {
  const plan::Memory &m = plan.memory();
  int64_t stepCount = 0, scratchBytes = 0, normBytes = 0;
  for (const auto &stream : plan.streams())
    for (const auto &step : stream.steps()) {
      ++stepCount;
      if (!step.has_call())
        continue;
      const plan::LibraryCall &call = step.call();
      // Per-token losses of the largest cross-entropy.
      if ((call.function() == "cross_entropy" ||
           call.function() == "cross_entropy_bf16") &&
          call.ints_size() > 0)
        scratchBytes = std::max(scratchBytes, call.ints(0) * 8);
      // Each gradient's partial sums of squares, for the largest grad_norm.
      if (call.function() == "grad_norm")
        normBytes = std::max<int64_t>(
            normBytes,
            ((call.buffers_size() - 1) * kernels::cuda::training::kNormBlocks +
             1) *
                static_cast<int64_t>(sizeof(double)));
    }
  BlockLayout l;
  int64_t offset = 0;
  for (auto [region, bytes] : {std::pair{plan::ARENA, m.arena()},
                               {plan::PARAMETERS, m.parameters()},
                               {plan::CONSTANTS, m.constants()},
                               {plan::STATE, m.state()}}) {
    l.regionOffset[region] = offset;
    offset += alignUp(bytes);
  }
  l.statusOffset = offset;
  offset += alignUp(stepCount * 16);
  l.gemmOffset = offset;
  offset += kGemmWorkspaceBytes;
  l.scratchOffset = offset;
  offset += alignUp(scratchBytes);
  l.normOffset = offset;
  offset += alignUp(normBytes);
  l.tableOffset = offset;
  l.bytes = offset + alignUp(stepCount * 2048);
  return l;
}
} // namespace
} // namespace weft::runtime

struct CudaExecutor::State {
  const plan::Plan &plan;
  std::string planName;
  const CudaDriver &cu;
  const bool dry;
  static const CudaDriver &noDriver() {
    static const CudaDriver none; // every function null: never called
    return none;
  }
  CUdevice device = 0;
  CUcontext context = nullptr;
  CUstream stream = nullptr;
  CUevent start = nullptr, stop = nullptr;
  std::string description;
  // One block, laid out by blockLayoutOf.
  const BlockLayout layout;
  CUdeviceptr block = 0;
  std::vector<char> tables; // host copy of the tables
  CUmodule library = nullptr;
  std::vector<CUmodule> modules;
  std::vector<CUfunction> kernels;
  cublasLtHandle_t lt = nullptr;
  std::vector<cublasLtMatmulDesc_t> descs;
  std::vector<cublasLtMatrixLayout_t> layouts;
  std::map<std::string, cublasLtMatmulAlgo_t> algorithms;
  std::vector<std::function<void()>> steps; // every stream's, in order
  std::vector<size_t> streamBegin;          // each stream's first step
  std::vector<std::string> stepNames;
  std::vector<int64_t> stepBounds; // an index step's bound, for its message
  /// What a step's status means when it is not a bad index (the value
  /// follows).
  std::vector<std::string> stepMessages;
  // The inputs, in pinned host memory (so their copies in are
  // asynchronous), each at its offset; whether each was given.
  char *pinned = nullptr;
  std::vector<int64_t> inputOffset;
  std::vector<bool> given;
  // Plans with a mesh: MPI lays the ranks out and carries NCCL's unique
  // ids; one NCCL communicator per group of axes the steps use; the
  // collectives run on their own stream, joined to the compute stream by
  // events.
  Communicator *mpi = nullptr;
  std::map<uint32_t, ncclComm_t> comms;
  CUstream commStream = nullptr;
  // The HOST region (what weft.offload moved out), pinned, and the stream
  // its copies run on.
  char *host = nullptr;
  CUstream copyStream = nullptr;
  std::vector<CUevent> events; // every event the steps use, owned
  // cuDNN's SDPA where it takes an attention (bf16, full or causal): its
  // handle on the compute stream, the graphs, one workspace for them all
  // (allocated after the steps are prepared), and what was decided for each
  // attention step.
  void *cudnn = nullptr;
  std::vector<std::unique_ptr<CudnnSdpa>> sdpa;
  int64_t cudnnWorkspaceBytes = 0, cudnnBudget = 0;
  CUdeviceptr cudnnWorkspace = 0;
  std::vector<std::string> attentionNotes;
  /// Runs the step on cuDNN when it takes it: true and the step's closure
  /// pushed, or false (and why, in attentionNotes) for weft's own kernels.
  bool tryCudnn(const std::string &stepName, const SdpaShape &shape,
                CudnnSdpa::Pass pass, std::vector<uint64_t> pointers);
  /// Collectives left running that the compute stream waits for before a
  /// step that touches their buffers, and at the end of their stream.
  std::map<size_t, std::vector<CUevent>> waitsBefore;
  std::vector<std::vector<CUevent>> waitsAtEnd; // by stream
  struct Running {
    CUevent done;
    std::vector<int> buffers; // the call's
  };
  std::vector<Running> pending; // while preparing

  /// `dry`: no driver and no GPU; prepare() checks every step's arguments
  /// and builds closures that never run (CudaExecutor::checkPlan).
  State(const plan::Plan &plan, std::string planName, bool dry = false)
      : plan(plan), planName(std::move(planName)),
        cu(dry ? noDriver() : CudaDriver::get()), dry(dry),
        layout(blockLayoutOf(plan)) {}
  ~State();

  CUdeviceptr address(int bufferId) const {
    if (bufferId < 0)
      return 0;
    const Buffer &buffer = plan.buffers(bufferId);
    if (buffer.region() == plan::HOST) // pinned: one address space (UVA)
      return reinterpret_cast<CUdeviceptr>(host) + buffer.offset();
    return block + layout.regionOffset[buffer.region()] + buffer.offset();
  }
  CUdeviceptr status(size_t step) const {
    return block + layout.statusOffset + static_cast<int64_t>(step) * 16;
  }
  CUfunction libraryFunction(const char *name) {
    if (dry)
      return nullptr;
    CUfunction function;
    cu.check(cu.cuModuleGetFunction(&function, library, name),
             planName + ": the runtime's kernel " + name);
    return function;
  }
  CUevent newEvent() {
    if (dry)
      return nullptr;
    CUevent event;
    cu.check(cu.cuEventCreate(&event, CU_EVENT_DISABLE_TIMING),
             "cuEventCreate");
    events.push_back(event);
    return event;
  }
  /// Queues `work` on `side` (the collective or the copy stream) after
  /// what the compute stream has queued (`ready` marks that); the compute
  /// stream waits for it (`done`) unless it is left running.
  void onStream(CUstream side, CUevent ready, CUevent done, bool joined,
                const std::string &where, const std::function<void()> &work) {
    cu.check(cu.cuEventRecord(ready, stream), where + "cuEventRecord");
    cu.check(cu.cuStreamWaitEvent(side, ready, 0), where + "cuStreamWaitEvent");
    work();
    cu.check(cu.cuEventRecord(done, side), where + "cuEventRecord");
    if (joined)
      cu.check(cu.cuStreamWaitEvent(stream, done, 0),
               where + "cuStreamWaitEvent");
  }
  /// `rows` on device memory, queued on `on`.
  void copyRows(const CollectiveCall::RowCopy &rows, CUdeviceptr dst,
                CUdeviceptr src, CUstream on, const std::string &where) {
    CUDA_MEMCPY2D copy{};
    copy.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    copy.srcDevice = src + rows.src;
    copy.srcPitch = static_cast<size_t>(rows.srcPitch);
    copy.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    copy.dstDevice = dst + rows.dst;
    copy.dstPitch = static_cast<size_t>(rows.dstPitch);
    copy.WidthInBytes = static_cast<size_t>(rows.width);
    copy.Height = static_cast<size_t>(rows.rows);
    if (rows.width > 0 && rows.rows > 0)
      cu.check(cu.cuMemcpy2DAsync(&copy, on), where + "cuMemcpy2DAsync");
  }
  void addCollective(const plan::Step &step, const std::string &where);
  /// The NCCL communicator of a group (none when dry), made the first
  /// time a step names the group: the plan's order, the same on every
  /// rank, so each group's members make it together.
  ncclComm_t commOf(uint32_t mask);
  /// NCCL (not loaded when dry).
  const Nccl *nccl() const { return dry ? nullptr : &Nccl::get(); }
  /// The member of its group whose block a sharded binding holds.
  int64_t memberOf(const plan::Binding &binding) const;
  /// The compute stream waits for the collectives stream `index` left
  /// running and no step waited for.
  void joinRunning(int index) {
    for (CUevent event : waitsAtEnd[index])
      cu.check(cu.cuStreamWaitEvent(stream, event, 0),
               planName + ": cuStreamWaitEvent");
  }
  /// Waits for every stream (host reads and writes of device memory).
  void synchronize(const std::string &what) const {
    for (CUstream each : {stream, commStream, copyStream})
      if (each)
        cu.check(cu.cuStreamSynchronize(each), what);
  }
  void launch(CUfunction function, unsigned gridX, unsigned gridY,
              unsigned block, Arguments &args, unsigned sharedBytes = 0) {
    cu.check(cu.cuLaunchKernel(function, gridX, gridY, 1, block, 1, 1,
                               sharedBytes, stream, args.pointers(), nullptr),
             planName + ": launch");
  }
  /// Column-major C[m, n] = Acc + op(A) op(B) (+ bias[m]) through
  /// cuBLASLt (beta = 1 with an accumulator, which may be C; 0: none),
  /// `batch` times at the given element strides.
  struct Gemm {
    cudaDataType type;
    bool ta, tb;
    int64_t m, n, k, lda, ldb, ldc, batch, strideA, strideB, strideC;
  };
  void addGemm(const Gemm &g, CUdeviceptr a, CUdeviceptr b, CUdeviceptr acc,
               CUdeviceptr c, CUdeviceptr bias, const std::string &where);
  void prepare();
};

CudaExecutor::State::~State() {
  sdpa.clear(); // before their handle
  if (cudnn) {
    cu.cuCtxSetCurrent(context);
    CudnnSdpa::destroyHandle(cudnn);
  }
  if (!comms.empty()) {
    const Nccl &nccl = Nccl::get();
    for (auto &[mask, comm] : comms)
      nccl.ncclCommDestroy(comm);
  }
  if (lt) {
    const Cublas &blas = Cublas::get();
    for (auto desc : descs)
      blas.cublasLtMatmulDescDestroy(desc);
    for (auto layout : layouts)
      blas.cublasLtMatrixLayoutDestroy(layout);
    blas.cublasLtDestroy(lt);
  }
  if (context) {
    cu.cuCtxSetCurrent(context);
    for (CUmodule module : modules)
      cu.cuModuleUnload(module);
    if (library)
      cu.cuModuleUnload(library);
    if (block)
      cu.cuMemFree(block);
    if (pinned)
      cu.cuMemFreeHost(pinned);
    if (cudnnWorkspace)
      cu.cuMemFree(cudnnWorkspace);
    if (host)
      cu.cuMemFreeHost(host);
    if (start)
      cu.cuEventDestroy(start);
    if (stop)
      cu.cuEventDestroy(stop);
    for (CUevent event : events)
      cu.cuEventDestroy(event);
    if (stream)
      cu.cuStreamDestroy(stream);
    if (commStream)
      cu.cuStreamDestroy(commStream);
    if (copyStream)
      cu.cuStreamDestroy(copyStream);
    cu.cuDevicePrimaryCtxRelease(device);
  }
}

void CudaExecutor::State::addGemm(const Gemm &g, CUdeviceptr a, CUdeviceptr b,
                                  CUdeviceptr acc, CUdeviceptr c,
                                  CUdeviceptr bias, const std::string &where) {
  if (dry) { // cuBLASLt chooses its algorithm on the GPU
    steps.push_back([] {});
    return;
  }
  const Cublas &blas = Cublas::get();
  if (!lt)
    blas.check(blas.cublasLtCreate(&lt), planName + ": cuBLASLt");
  cublasLtMatmulDesc_t desc;
  blas.check(
      blas.cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F),
      where);
  descs.push_back(desc);
  cublasOperation_t opA = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opB = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  blas.cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA,
                                      sizeof opA);
  blas.cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB,
                                      sizeof opB);
  if (bias) {
    cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    void *pointer = reinterpret_cast<void *>(bias);
    blas.cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                        &epilogue, sizeof epilogue);
    blas.cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                        &pointer, sizeof pointer);
  }
  auto matrixLayout = [&](int64_t rows, int64_t cols, int64_t ld,
                          int64_t stride) {
    cublasLtMatrixLayout_t l;
    blas.check(blas.cublasLtMatrixLayoutCreate(&l, g.type, rows, cols, ld),
               where);
    layouts.push_back(l);
    int32_t count = static_cast<int32_t>(g.batch);
    blas.cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                          &count, sizeof count);
    blas.cublasLtMatrixLayoutSetAttribute(
        l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride);
    return l;
  };
  cublasLtMatrixLayout_t la = g.ta ? matrixLayout(g.k, g.m, g.lda, g.strideA)
                                   : matrixLayout(g.m, g.k, g.lda, g.strideA);
  cublasLtMatrixLayout_t lb = g.tb ? matrixLayout(g.n, g.k, g.ldb, g.strideB)
                                   : matrixLayout(g.k, g.n, g.ldb, g.strideB);
  cublasLtMatrixLayout_t lc = matrixLayout(g.m, g.n, g.ldc, g.strideC);
  // One algorithm per shape, chosen once.
  std::string key =
      std::to_string(g.type) + " " + std::to_string(g.ta) +
      std::to_string(g.tb) + (bias ? "b" : "") + (acc ? "+" : "") + " " +
      std::to_string(g.m) + "x" + std::to_string(g.n) + "x" +
      std::to_string(g.k) + " " + std::to_string(g.lda) + "," +
      std::to_string(g.ldb) + "," + std::to_string(g.ldc) + " batch " +
      std::to_string(g.batch) + " " + std::to_string(g.strideA) + "," +
      std::to_string(g.strideB) + "," + std::to_string(g.strideC);
  auto it = algorithms.find(key);
  if (it == algorithms.end()) {
    cublasLtMatmulPreference_t preference;
    blas.cublasLtMatmulPreferenceCreate(&preference);
    uint64_t workspace = kGemmWorkspaceBytes;
    blas.cublasLtMatmulPreferenceSetAttribute(
        preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
        sizeof workspace);
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t status = blas.cublasLtMatmulAlgoGetHeuristic(
        lt, desc, la, lb, lc, lc, preference, 1, &result, &found);
    blas.cublasLtMatmulPreferenceDestroy(preference);
    if (status != CUBLAS_STATUS_SUCCESS || found == 0)
      throw Error(where + "cuBLASLt has no algorithm for the GEMM " + key);
    it = algorithms.emplace(key, result.algo).first;
  }
  const cublasLtMatmulAlgo_t algo = it->second;
  const CUdeviceptr workspace = block + layout.gemmOffset;
  steps.push_back(
      [this, desc, la, lb, lc, algo, a, b, acc, c, workspace, where] {
        const float alpha = 1.0f, beta = acc ? 1.0f : 0.0f;
        const Cublas &blas = Cublas::get();
        blas.check(blas.cublasLtMatmul(
                       lt, desc, &alpha, reinterpret_cast<const void *>(a), la,
                       reinterpret_cast<const void *>(b), lb, &beta,
                       reinterpret_cast<const void *>(acc ? acc : c), lc,
                       reinterpret_cast<void *>(c), lc, &algo,
                       reinterpret_cast<void *>(workspace), kGemmWorkspaceBytes,
                       reinterpret_cast<cudaStream_t>(stream)),
                   where);
      });
}

void CudaExecutor::State::prepare() {
  for (const auto &stream : plan.streams()) {
    streamBegin.push_back(steps.size());
    for (const auto &step : stream.steps()) {
      const size_t index = steps.size();
      stepNames.push_back(step.name());
      stepBounds.push_back(0);
      stepMessages.emplace_back();
      // A step that touches a running collective's memory waits for it.
      for (auto it = pending.begin(); it != pending.end();) {
        if (!stepTouches(plan, step, it->buffers)) {
          ++it;
          continue;
        }
        waitsBefore[index].push_back(it->done);
        it = pending.erase(it);
      }
      if (step.has_launch()) {
        const plan::Kernel &kernel = plan.kernels(step.launch().kernel());
        auto args = std::make_shared<Arguments>();
        for (int id : step.launch().buffers())
          args->add(address(id));
        CUfunction function = kernels[step.launch().kernel()];
        unsigned grid = static_cast<unsigned>(kernel.grid_blocks());
        unsigned threads = static_cast<unsigned>(kernel.block_threads());
        steps.push_back([this, function, grid, threads, args] {
          launch(function, grid, 1, threads, *args);
        });
        continue;
      }
      const auto &call = step.call();
      const std::string &fn = call.function();
      const std::string where =
          planName + ": step '" + step.name() + "' (" + fn + "): ";
      auto arity = [&](int buffers, int ints, int floats) {
        if (call.buffers_size() != buffers || call.ints_size() != ints ||
            call.floats_size() != floats)
          throw Error(where + "expects " + std::to_string(buffers) +
                      " buffers, " + std::to_string(ints) + " ints and " +
                      std::to_string(floats) + " floats");
      };
      auto p = [&](int i) { return address(call.buffers(i)); };
      auto in = [&](int i) { return call.ints(i); };
      // attention and attention_grad: ints batch, sq, skv, heads, kvHeads,
      // dqk, dv, ...
      auto checkHeads = [&] {
        if (in(4) <= 0 || in(3) % in(4) != 0)
          throw Error(where + std::to_string(in(3)) +
                      " query heads do not divide into " +
                      std::to_string(in(4)) + " kv heads");
      };
      auto checkHeadDims = [&] {
        if (in(5) > kAttentionMaxDim || in(6) > kAttentionMaxDim)
          throw Error(where + "head dimensions " + std::to_string(in(5)) +
                      " and " + std::to_string(in(6)) +
                      "; the CUDA attention kernels take up to " +
                      std::to_string(kAttentionMaxDim));
      };
      // cuDNN's SDPA takes a bf16 attention (or its gradient) that is full
      // or causal with no window, mask (buffer `maskAt`) or ALiBi slopes
      // (the next), equal head dimensions; its validation says the rest.
      auto sdpaShape = [&](int maskAt) -> std::optional<SdpaShape> {
        if ((in(7) != 0 && in(7) != 1) || in(9) != 0 ||
            call.buffers(maskAt) >= 0 || call.buffers(maskAt + 1) >= 0 ||
            in(5) != in(6))
          return std::nullopt;
        return SdpaShape{
            in(0), in(1), in(2),      in(3),
            in(4), in(5), in(7) == 1, static_cast<float>(call.floats(0))};
      };
      auto bytes = [&](int i) { return plan.buffers(call.buffers(i)).bytes(); };
      if (fn == "linear" || fn == "linear_bf16") {
        // x [rows, in], w [out, in], bias?, y [rows, out]: y = x wᵀ + bias,
        // column-major C[out, rows] = wᵀ x.
        arity(fn == "linear" ? 4 : 5, 3, 0);
        const int64_t rows = in(0), inner = in(1), outer = in(2);
        Gemm g{fn == "linear" ? CUDA_R_32F : CUDA_R_16BF,
               true,
               false,
               outer,
               rows,
               inner,
               inner,
               inner,
               outer,
               1,
               0,
               0,
               0};
        addGemm(g, p(1), p(0), 0, p(3), call.buffers(2) >= 0 ? p(2) : 0, where);
      } else if (fn == "matmul" || fn == "matmul_bf16") {
        // a, b, acc?, c (, the CPU's workspace); batch, m, n, k, ta, tb,
        // bStride (row-major): column-major C[n, m] = Acc + op(B) op(A).
        arity(fn == "matmul" ? 4 : 5, 7, 0);
        checkAccumulator(plan, call, 2, 3, where);
        const int64_t batch = in(0), m = in(1), n = in(2), k = in(3);
        const bool ta = in(4) != 0, tb = in(5) != 0;
        Gemm g{fn == "matmul" ? CUDA_R_32F : CUDA_R_16BF,
               tb,
               ta,
               n,
               m,
               k,
               tb ? k : n,
               ta ? m : k,
               n,
               batch,
               in(6),
               m * k,
               m * n};
        addGemm(g, p(1), p(0), call.buffers(2) >= 0 ? p(2) : 0, p(3), 0, where);
      } else if (fn == "attention" || fn == "attention_bf16") {
        // q, k, v, mask?, slopes?, out, workspace, lse?; batch, sq, skv,
        // heads, kvHeads, dqk, dv, kind, maskPerBatch, window; scale. bf16
        // with equal head dimensions of 64 or 128 runs on tensor cores; the
        // rest a warp per query row in fp32.
        arity(8, 10, 1);
        checkAttentionLse(plan, call, 7, where);
        const CUdeviceptr lse = p(7); // 0: not wanted
        const bool bf16 = fn == "attention_bf16";
        checkHeads();
        if (auto shape = bf16 ? sdpaShape(3) : std::nullopt;
            shape &&
            tryCudnn(step.name(), *shape,
                     lse ? CudnnSdpa::Pass::ForwardWithStats
                         : CudnnSdpa::Pass::Forward,
                     lse ? std::vector<uint64_t>{p(0), p(1), p(2), p(5), lse}
                         : std::vector<uint64_t>{p(0), p(1), p(2), p(5)}))
          continue;
        const bool tensorCores =
            bf16 && in(5) == in(6) && (in(5) == 64 || in(5) == 128);
        if (!tensorCores)
          checkHeadDims();
        auto args = std::make_shared<Arguments>();
        for (int i = 0; i < 6; ++i)
          args->add(p(i));
        if (tensorCores) {
          namespace tc = kernels::cuda::attention;
          for (int i : {1, 2, 3, 4})
            args->add(static_cast<long long>(in(i)));
          args->add(static_cast<int>(in(7))).add(static_cast<int>(in(8)));
          args->add(static_cast<long long>(in(9)));
          args->add(static_cast<float>(call.floats(0))).add(lse);
          const std::string name =
              "weft_attention_bf16_d" + std::to_string(in(5));
          CUfunction function = libraryFunction(name.c_str());
          const unsigned shared =
              static_cast<unsigned>(tc::layout(static_cast<int>(in(5))).bytes);
          if (!dry)
            cu.check(cu.cuFuncSetAttribute(
                         function,
                         CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                         static_cast<int>(shared)),
                     where + "shared memory");
          unsigned gridX =
              static_cast<unsigned>((in(1) + tc::kQueries - 1) / tc::kQueries);
          unsigned gridY = static_cast<unsigned>(in(0) * in(3));
          steps.push_back([this, function, gridX, gridY, shared, args] {
            launch(function, gridX, gridY, tc::kWarps * 32, *args, shared);
          });
          continue;
        }
        for (int i = 0; i < 7; ++i)
          args->add(static_cast<long long>(in(i)));
        args->add(static_cast<int>(in(7))).add(static_cast<int>(in(8)));
        args->add(static_cast<long long>(in(9)));
        args->add(static_cast<float>(call.floats(0))).add(lse);
        unsigned gridX = static_cast<unsigned>((in(1) + kAttentionWarps - 1) /
                                               kAttentionWarps);
        unsigned gridY = static_cast<unsigned>(in(0) * in(3));
        CUfunction function = libraryFunction(bf16 ? "weft_attention_bf16_rows"
                                                   : "weft_attention");
        steps.push_back([this, function, gridX, gridY, args] {
          launch(function, gridX, gridY, kAttentionWarps * 32, *args);
        });
      } else if (fn == "rope" || fn == "rope_bf16") {
        // x, positions, y; batch, seq, heads, dim, interleaved; theta,
        // frequencies...? (_bf16: bf16 x and y)
        if (call.buffers_size() != 3 || call.ints_size() != 5 ||
            (call.floats_size() != 1 && call.floats_size() != 1 + in(3) / 2))
          throw Error(where + "expects 3 buffers, 5 ints and 1 or 1 + dim / 2 "
                              "floats");
        const bool bf16 = fn == "rope_bf16";
        const plan::DType element = bf16 ? plan::BF16 : plan::F32;
        if (plan.buffers(call.buffers(0)).dtype() != element ||
            plan.buffers(call.buffers(2)).dtype() != element)
          throw Error(where + "expects " + dtypeName(element) + " x and y");
        const int64_t half = in(3) / 2;
        const int64_t offset = static_cast<int64_t>(tables.size());
        tables.resize(tables.size() + alignUp(half * 4));
        for (int64_t j = 0; j < half; ++j) {
          const float f = static_cast<float>(
              call.floats_size() > 1
                  ? call.floats(1 + j)
                  : 1.0 / std::pow(call.floats(0),
                                   static_cast<double>(2 * j) / in(3)));
          std::memcpy(tables.data() + offset + j * 4, &f, 4);
        }
        auto args = std::make_shared<Arguments>();
        args->add(p(0)).add(p(1)).add(p(2));
        args->add(static_cast<long long>(in(0) * in(1)))
            .add(static_cast<long long>(in(2)))
            .add(static_cast<long long>(in(3)));
        args->add(block + layout.tableOffset + offset);
        args->add(static_cast<int>(in(4)));
        const int64_t total = in(0) * in(1) * in(2) * half;
        CUfunction function =
            libraryFunction(bf16 ? "weft_rope_bf16" : "weft_rope");
        steps.push_back([this, function, total, args] {
          launch(function, gridFor(total), 1, 256, *args);
        });
      } else if (fn == "gather") { // table, indices, out; outer, size, inner,
                                   // count
        arity(3, 4, 0);
        const plan::DType element = plan.buffers(call.buffers(0)).dtype();
        if (plan.buffers(call.buffers(2)).dtype() != element)
          throw Error(where + "gathers " + dtypeName(element) + " into " +
                      dtypeName(plan.buffers(call.buffers(2)).dtype()));
        const int64_t innerBytes = in(2) * dtypeBytes(element);
        stepBounds.back() = in(1);
        auto args = std::make_shared<Arguments>();
        args->add(p(0)).add(p(1)).add(p(2));
        args->add(static_cast<long long>(in(0)))
            .add(static_cast<long long>(in(1)))
            .add(static_cast<long long>(innerBytes))
            .add(static_cast<long long>(in(3)));
        args->add(status(index));
        const int64_t total =
            in(0) * in(3) * (innerBytes % 4 == 0 ? innerBytes / 4 : innerBytes);
        CUfunction function = libraryFunction("weft_gather");
        steps.push_back([this, function, total, args] {
          launch(function, gridFor(total), 1, 256, *args);
        });
      } else if (fn == "iota") { // y (i64); outer, size, inner
        arity(1, 3, 0);
        auto args = std::make_shared<Arguments>();
        args->add(p(0));
        for (int i = 0; i < 3; ++i)
          args->add(static_cast<long long>(in(i)));
        const int64_t total = in(0) * in(1) * in(2);
        CUfunction function = libraryFunction("weft_iota");
        steps.push_back([this, function, total, args] {
          launch(function, gridFor(total), 1, 256, *args);
        });
      } else if (fn == "softmax") { // x, y; outer, dim, inner, logarithm
        arity(2, 4, 0);
        auto args = std::make_shared<Arguments>();
        args->add(p(0)).add(p(1));
        for (int i = 0; i < 3; ++i)
          args->add(static_cast<long long>(in(i)));
        args->add(static_cast<int>(in(3)));
        const int64_t lines = in(0) * in(2);
        CUfunction function = libraryFunction("weft_softmax");
        steps.push_back([this, function, lines, args] {
          launch(function, gridFor(lines), 1, 256, *args);
        });
      } else if (fn == "copy_strided") {
        kernels::cpu::StridedCopy copy = readStridedCopy(plan, call, where);
        auto args = std::make_shared<Arguments>();
        args->add(p(0)).add(p(1)).add(copy);
        int64_t total = 1;
        for (int d = 0; d < copy.rank; ++d)
          total *= copy.shape[d];
        CUfunction function = libraryFunction("weft_copy_strided");
        steps.push_back([this, function, total, args] {
          launch(function, gridFor(total), 1, 256, *args);
        });
      } else if (fn == "cross_entropy" || fn == "cross_entropy_bf16") {
        // logits, labels, out; tokens, vocab, ignore, reduction (_bf16: bf16
        // logits)
        arity(3, 4, 0);
        if (in(3) < 0 || in(3) > 2)
          throw Error(where + "has an unknown reduction " +
                      std::to_string(in(3)));
        stepBounds.back() = in(1);
        auto args = std::make_shared<Arguments>();
        const CUdeviceptr losses = block + layout.scratchOffset;
        args->add(p(0)).add(p(1)).add(losses);
        args->add(static_cast<long long>(in(1)))
            .add(static_cast<long long>(in(2)))
            .add(status(index));
        auto reduce = std::make_shared<Arguments>();
        reduce->add(losses).add(p(1)).add(p(2));
        reduce->add(static_cast<long long>(in(0)))
            .add(static_cast<long long>(in(2)))
            .add(static_cast<int>(in(3)));
        const unsigned tokens = static_cast<unsigned>(in(0));
        CUfunction perToken =
            libraryFunction(fn == "cross_entropy" ? "weft_cross_entropy"
                                                  : "weft_cross_entropy_bf16");
        CUfunction total = libraryFunction("weft_cross_entropy_reduce");
        steps.push_back([this, perToken, total, tokens, args, reduce] {
          if (tokens > 0)
            launch(perToken, tokens, 1, 256, *args);
          launch(total, 1, 1, 256, *reduce);
        });
      } else if (fn == "reduce") { // x, y; kind, rank, shape..., reduced...
        if (call.buffers_size() != 2 || call.ints_size() < 2 ||
            call.ints_size() != 2 + 2 * in(1) || in(1) > 8 || in(1) < 0)
          throw Error(where + "expects 2 buffers and 2 + 2 × rank ints, rank "
                              "at most 8");
        const int rank = static_cast<int>(in(1));
        std::vector<int64_t> dims(rank);
        std::vector<bool> reduced(rank);
        int64_t elements = 1;
        for (int d = 0; d < rank; ++d) {
          dims[d] = in(2 + d);
          reduced[d] = in(2 + rank + d) != 0;
          elements *= dims[d];
        }
        if (elements * 4 != bytes(0))
          throw Error(where + "input does not hold the reduced shape");
        const kernels::cuda::ReduceShape shape =
            kernels::cuda::reduceShapeOf(dims, reduced);
        auto args = std::make_shared<Arguments>();
        args->add(p(0)).add(p(1)).add(shape).add(static_cast<int>(in(0)));
        CUfunction function = libraryFunction("weft_reduce");
        // A block per output, or per 32 of them (weft_reduce).
        const unsigned blocks =
            gridFor(shape.outputs, shape.innerReduced ? 1 : 32);
        steps.push_back([this, function, blocks, args] {
          launch(function, blocks, 1, 256, *args);
        });
      } else if (fn == "scatter_add") { // base, indices, updates, out; outer,
                                        // size, inner, count
        arity(4, 4, 0);
        stepBounds.back() = in(1);
        const CUdeviceptr base = p(0), out = p(3);
        const int64_t baseBytes = bytes(0);
        auto args = std::make_shared<Arguments>();
        args->add(p(1)).add(p(2)).add(out);
        for (int i = 0; i < 4; ++i)
          args->add(static_cast<long long>(in(i)));
        args->add(status(index));
        const kernels::cuda::ScatterAddGrid grid =
            kernels::cuda::scatterAddGrid(in(0) * in(2), in(1));
        CUfunction function = libraryFunction("weft_scatter_add");
        steps.push_back([this, function, base, out, baseBytes, grid, args,
                         where] {
          if (out != base)
            cu.check(cu.cuMemcpyDtoDAsync(out, base, baseBytes, this->stream),
                     where);
          launch(function, grid.x, grid.y, kernels::cuda::kScatterThreads,
                 *args);
        });
      } else if (fn == "copy") { // src, dst; bytes
        arity(2, 1, 0);
        CUdeviceptr src = p(0), dst = p(1);
        const int64_t n = in(0);
        steps.push_back([this, src, dst, n, where] {
          cu.check(cu.cuMemcpyDtoDAsync(dst, src, n, this->stream), where);
        });
      } else if (fn == "concat") { // inputs..., out; outer, rowBytes...
        const int count = call.buffers_size() - 1;
        if (count < 1 || call.ints_size() != 1 + count)
          throw Error(where + "expects n + 1 buffers and n + 1 ints");
        int64_t total = 0;
        for (int k = 0; k < count; ++k) {
          if (in(1 + k) < 0 || in(1 + k) * in(0) != bytes(k))
            throw Error(where + "input " + std::to_string(k) +
                        " does not hold " + std::to_string(in(0)) +
                        " rows of " + std::to_string(in(1 + k)) + " bytes");
          total += in(1 + k);
        }
        if (total * in(0) != bytes(count))
          throw Error(where + "output does not hold the concatenation");
        // Input k's rows into its columns of the output's.
        std::vector<std::pair<CUdeviceptr, CollectiveCall::RowCopy>> copies;
        int64_t column = 0;
        for (int k = 0; k < count; ++k) {
          copies.push_back(
              {p(k), {column, total, 0, in(1 + k), in(1 + k), in(0)}});
          column += in(1 + k);
        }
        const CUdeviceptr out = p(count);
        steps.push_back([this, copies, out, where] {
          for (const auto &[src, rows] : copies)
            copyRows(rows, out, src, this->stream, where);
        });
      } else if (fn == "attention_grad" || fn == "attention_grad_bf16") {
        // q, k, v, out, dout, mask?, slopes?, dq, dk, dv, workspace, lse?;
        // the ints and floats of attention. fp32 math (bf16 tensors read
        // widened, gradients rounded once); δ (and lse when the forward did
        // not give it) in the workspace.
        arity(12, 10, 1);
        checkAttentionGrad(plan, call, where);
        const bool bf16 = fn == "attention_grad_bf16";
        checkHeads();
        // cuDNN's backward reads the forward's log-sum-exp.
        if (auto shape =
                bf16 && call.buffers(11) >= 0 ? sdpaShape(5) : std::nullopt;
            shape &&
            tryCudnn(step.name(), *shape, CudnnSdpa::Pass::Backward,
                     {p(0), p(1), p(2), p(3), p(4), p(11), p(7), p(8), p(9)}))
          continue;
        checkHeadDims();
        namespace tr = kernels::cuda::training;
        const int64_t rows = in(0) * in(3) * in(1);
        if (const int64_t needed =
                tr::attentionGradWorkspaceBytes(in(0), in(3), in(1));
            bytes(10) < needed)
          throw Error(where + "its workspace holds " +
                      std::to_string(bytes(10)) + " bytes, not the " +
                      std::to_string(needed) +
                      " of each query row's log-sum-exp and δ");
        tr::AttentionGrad g{};
        g.q = p(0), g.k = p(1), g.v = p(2), g.out = p(3), g.dout = p(4);
        g.mask = p(5), g.slopes = p(6), g.dq = p(7), g.dk = p(8), g.dv = p(9);
        g.lse = call.buffers(11) >= 0 ? p(11) : p(10);
        g.lseGiven = call.buffers(11) >= 0;
        g.delta = p(10) + rows * 4;
        g.batch = in(0), g.sq = in(1), g.skv = in(2), g.heads = in(3);
        g.kvHeads = in(4), g.dimQK = in(5), g.dimV = in(6);
        g.kind = static_cast<int>(in(7));
        g.maskPerBatch = static_cast<int>(in(8));
        g.window = in(9);
        g.scale = static_cast<float>(call.floats(0));
        auto args = std::make_shared<Arguments>();
        args->add(g);
        const unsigned rowsPerBlock = tr::kAttentionGradWarps;
        const unsigned queryBlocks =
            static_cast<unsigned>((g.sq + rowsPerBlock - 1) / rowsPerBlock);
        const unsigned keyBlocks =
            static_cast<unsigned>((g.skv + rowsPerBlock - 1) / rowsPerBlock);
        const unsigned queryHeads = static_cast<unsigned>(g.batch * g.heads);
        const unsigned keyHeads = static_cast<unsigned>(g.batch * g.kvHeads);
        const std::string kernel =
            bf16 ? "weft_attention_grad_bf16" : "weft_attention_grad";
        CUfunction stats = libraryFunction((kernel + "_stats").c_str());
        CUfunction keys = libraryFunction((kernel + "_kv").c_str());
        CUfunction queries = libraryFunction((kernel + "_q").c_str());
        steps.push_back([=] {
          if (queryBlocks == 0)
            return;
          launch(stats, queryBlocks, queryHeads, rowsPerBlock * 32, *args);
          if (keyBlocks > 0)
            launch(keys, keyBlocks, keyHeads, rowsPerBlock * 32, *args);
          launch(queries, queryBlocks, queryHeads, rowsPerBlock * 32, *args);
        });
      } else if (fn == "grad_norm") { // grads (f32 or bf16)..., norm (f32);
                                      // group; grad_scale
        namespace tr = kernels::cuda::training;
        // Over a group (the gradients are blocks), the squares' sum is
        // added across its members before the root.
        const GradNormCall checked = readGradNorm(plan, call, where);
        const uint32_t group = checked.group;
        const int count = static_cast<int>(checked.counts.size());
        const CUdeviceptr partials = block + layout.normOffset;
        std::vector<std::shared_ptr<Arguments>> squares;
        for (int i = 0; i < count; ++i) {
          auto args = std::make_shared<Arguments>();
          args->add(p(i))
              .add(static_cast<long long>(checked.counts[i]))
              .add(static_cast<int>(checked.bf16[i]))
              .add(checked.scale)
              .add(partials + static_cast<CUdeviceptr>(i) * tr::kNormBlocks *
                                  sizeof(double));
          squares.push_back(args);
        }
        // The squares' total (a double) follows the partial sums.
        const CUdeviceptr total = partials + static_cast<CUdeviceptr>(count) *
                                                 tr::kNormBlocks *
                                                 sizeof(double);
        auto finish = std::make_shared<Arguments>();
        finish->add(partials)
            .add(static_cast<long long>(count) * tr::kNormBlocks)
            .add(total)
            .add(group == 0 ? p(count) : CUdeviceptr{0});
        auto root = std::make_shared<Arguments>();
        root->add(total).add(p(count));
        CUfunction sum = libraryFunction("weft_sum_squares");
        CUfunction add = libraryFunction("weft_norm_finish");
        CUfunction sqrt = libraryFunction("weft_norm_root");
        const CUevent ready = group ? newEvent() : nullptr;
        const CUevent done = group ? newEvent() : nullptr;
        ncclComm_t comm = group ? commOf(group) : nullptr;
        const Nccl *nccl = group ? this->nccl() : nullptr;
        Communicator *counter = mpi;
        steps.push_back([=] {
          for (const auto &args : squares)
            launch(sum, tr::kNormBlocks, 1, tr::kNormThreads, *args);
          launch(add, 1, 1, tr::kNormThreads, *finish);
          if (group == 0)
            return;
          onStream(commStream, ready, done, true, where, [&] {
            nccl->check(
                nccl->ncclAllReduce(reinterpret_cast<const void *>(total),
                                    reinterpret_cast<void *>(total), 1,
                                    ncclFloat64, ncclSum, comm,
                                    reinterpret_cast<cudaStream_t>(commStream)),
                where + "ncclAllReduce", comm);
          });
          counter->countCollective("all_reduce", 1, plan::F64, group);
          launch(sqrt, 1, 1, 32, *root);
        });
      } else if (fn == "adamw") {
        // param, grad, exp_avg, exp_avg_sq, lr (f64), step (i64), norm,
        // new param, new exp_avg, new exp_avg_sq, optionally the new param
        // rounded to bf16; beta1, beta2, eps, weight_decay, max_grad_norm,
        // grad_scale. The results may be the operands' memory (in place).
        namespace tr = kernels::cuda::training;
        const AdamWCall checked = readAdamW(plan, call, where);
        const int64_t count = checked.count;
        tr::AdamW a{checked.beta1,       checked.beta2,
                    checked.eps,         checked.weightDecay,
                    checked.maxGradNorm, checked.gradMultiplier,
                    checked.bf16Grad};
        stepMessages.back() = "AdamW counts steps from 1; this run's step is ";
        auto args = std::make_shared<Arguments>();
        args->add(p(7)).add(p(8)).add(p(9)).add(p(1));
        args->add(checked.rounded ? p(10) : CUdeviceptr(0));
        args->add(static_cast<long long>(count));
        args->add(p(4)).add(p(5)).add(p(6)).add(a).add(status(index));
        std::vector<std::pair<CUdeviceptr, CUdeviceptr>> copies;
        for (auto [result, operand] : {std::pair{7, 0}, {8, 2}, {9, 3}})
          if (p(result) != p(operand))
            copies.push_back({p(result), p(operand)});
        const int64_t size = count * 4;
        CUfunction function = libraryFunction("weft_adamw");
        steps.push_back([=] {
          for (auto [dst, src] : copies)
            cu.check(cu.cuMemcpyDtoDAsync(dst, src, size, this->stream), where);
          launch(function, gridFor(count), 1, 256, *args);
        });
      } else if (fn == "all_reduce" || fn == "reduce_scatter" ||
                 fn == "all_gather" || fn == "all_gather_start" ||
                 fn == "all_slice" || fn == "all_to_all") {
        addCollective(step, where);
      } else if (fn == "offload" || fn == "reload") { // src, dst; bytes
        // On the copy stream, left running: the first later step that
        // touches either side waits for it (a reload issued ahead of its
        // use overlaps the compute before it).
        const int64_t n = readTransfer(plan, call, where);
        const bool out = fn == "offload";
        const CUdeviceptr src = p(0), dst = p(1);
        const CUevent ready = newEvent(), done = newEvent();
        pending.push_back({done, {call.buffers(0), call.buffers(1)}});
        steps.push_back([=, this] {
          onStream(copyStream, ready, done, false, where, [&] {
            cu.check(out ? cu.cuMemcpyDtoHAsync(reinterpret_cast<void *>(dst),
                                                src, n, copyStream)
                         : cu.cuMemcpyHtoDAsync(
                               dst, reinterpret_cast<const void *>(src), n,
                               copyStream),
                     where + (out ? "cuMemcpyDtoHAsync" : "cuMemcpyHtoDAsync"));
          });
        });
      } else {
        throw Error(where + "the CUDA runtime has no kernel for '" + fn +
                    "' yet; run this model with a CPU plan");
      }
    }
    // What is still in flight when the stream ends is waited for there.
    waitsAtEnd.emplace_back();
    for (const Running &running : pending)
      waitsAtEnd.back().push_back(running.done);
    pending.clear();
  }
  for (auto &[index, waits] : waitsBefore) {
    std::function<void()> body = std::move(steps[index]);
    steps[index] = [this, waits = waits, body] {
      for (CUevent event : waits)
        cu.check(cu.cuStreamWaitEvent(stream, event, 0),
                 planName + ": cuStreamWaitEvent");
      body();
    };
  }
}

bool CudaExecutor::State::tryCudnn(const std::string &stepName,
                                   const SdpaShape &shape, CudnnSdpa::Pass pass,
                                   std::vector<uint64_t> pointers) {
  const char *disabled = std::getenv("WEFT_CUDNN");
  if (dry || (disabled && std::string(disabled) == "0"))
    return false;
  try {
    auto graph = std::make_unique<CudnnSdpa>(shape, pass, cudnnBudget);
    if (!cudnn)
      cudnn = CudnnSdpa::createHandle(stream);
    if (const int64_t bytes = graph->build(cudnn); bytes > cudnnBudget)
      throw Error("cuDNN's workspace of " + std::to_string(bytes) +
                  " bytes is over the " + std::to_string(cudnnBudget) +
                  " it may take beside the plan (WEFT_CUDNN_WORKSPACE)");
    else
      cudnnWorkspaceBytes = std::max(cudnnWorkspaceBytes, bytes);
    const CudnnSdpa *run = graph.get();
    sdpa.push_back(std::move(graph));
    steps.push_back(
        [this, run, pointers] { run->run(cudnn, pointers, cudnnWorkspace); });
    attentionNotes.push_back("step '" + stepName + "': cuDNN SDPA");
    return true;
  } catch (const Error &error) {
    attentionNotes.push_back("step '" + stepName + "': weft's kernels (" +
                             error.what() + ")");
    return false;
  }
}

namespace {
ncclDataType_t ncclType(weft::plan::DType dtype) {
  switch (dtype) {
  case weft::plan::F32:
    return ncclFloat32;
  case weft::plan::I64:
    return ncclInt64;
  case weft::plan::F64:
    return ncclFloat64;
  default:
    throw Error(std::string("NCCL reduces f32, i64 and f64, not ") +
                dtypeName(dtype));
  }
}

ncclRedOp_t ncclOp(Communicator::Reduction reduction) {
  switch (reduction) {
  case Communicator::Reduction::Max:
    return ncclMax;
  case Communicator::Reduction::Mean:
    return ncclAvg;
  default:
    return ncclSum;
  }
}
} // namespace

void CudaExecutor::State::addCollective(const plan::Step &step,
                                        const std::string &where) {
  const plan::LibraryCall &call = step.call();
  const CollectiveCall c = readCollective(plan, call, where);
  if (c.reduction == Communicator::Reduction::Mean && c.dtype != plan::F32)
    throw Error(where + "a mean reduction takes f32");
  const Nccl *nccl = this->nccl();
  const CUdeviceptr x = address(call.buffers(0)), y = address(call.buffers(1));
  const CUdeviceptr workspace =
      call.buffers_size() > 2 ? address(call.buffers(2)) : 0;
  if (c.kind == "all_slice") { // nothing moves between ranks
    const CollectiveCall::RowCopy copy =
        c.sliceOf(dry ? 0 : mpi->groupRank(c.mask));
    steps.push_back([=, this] { copyRows(copy, y, x, stream, where); });
    return;
  }
  ncclComm_t comm = commOf(c.mask);
  // Every collective is left running on its stream: the first later step
  // that touches its operand, result or staging memory waits for it (a
  // reduce-scatter of gradients overlaps the rest of the backward; ZeRO-3's
  // started gathers, the layers before their parameters' use).
  const CUevent ready = newEvent(), done = newEvent();
  pending.push_back(
      {done, std::vector<int>(call.buffers().begin(), call.buffers().end())});
  Communicator *counter = mpi;
  auto check = [nccl, comm, where](ncclResult_t result, const char *what) {
    nccl->check(result, where + what, comm);
  };
  cudaStream_t on = reinterpret_cast<cudaStream_t>(commStream);
  if (c.kind == "all_reduce" || c.kind == "reduce_scatter") {
    const ncclDataType_t type = ncclType(c.dtype);
    const ncclRedOp_t op = ncclOp(c.reduction);
    const bool all = c.kind == "all_reduce";
    steps.push_back([=, this] {
      onStream(commStream, ready, done, false, where, [&] {
        if (all)
          check(nccl->ncclAllReduce(reinterpret_cast<const void *>(x),
                                    reinterpret_cast<void *>(y),
                                    c.xBytes / c.element, type, op, comm, on),
                "ncclAllReduce");
        else
          check(nccl->ncclReduceScatter(reinterpret_cast<const void *>(x),
                                        reinterpret_cast<void *>(y),
                                        c.yBytes / c.element, type, op, comm,
                                        on),
                "ncclReduceScatter");
      });
      counter->countCollective(c.kind.c_str(),
                               (all ? c.xBytes : c.yBytes) / c.element, c.dtype,
                               c.mask);
    });
    return;
  }
  if (c.kind == "all_gather") {
    // Member m's block lands at m·size along the dimension: straight into
    // y when nothing is before it, else through the workspace. Blocks move
    // as bytes.
    const CUdeviceptr gathered = c.outer == 1 ? y : workspace;
    const auto placed = c.placeGathered();
    steps.push_back([=, this] {
      onStream(commStream, ready, done, false, where, [&] {
        check(nccl->ncclAllGather(reinterpret_cast<const void *>(x),
                                  reinterpret_cast<void *>(gathered), c.xBytes,
                                  ncclUint8, comm, on),
              "ncclAllGather");
        if (c.outer != 1)
          for (const auto &copy : placed)
            copyRows(copy, y, gathered, commStream, where);
      });
      counter->countCollective("all_gather", c.xBytes / c.element, c.dtype,
                               c.mask);
    });
    return;
  }
  // all_to_all: block m of the split dimension goes to member m; what
  // member m sends lands at block m of the concat dimension. The workspace
  // holds what is sent, then what is received, where either is staged.
  const CUdeviceptr send = c.outer == 1 ? x : workspace;
  const CUdeviceptr receive = c.recvOuter == 1 ? y : workspace + c.sendStaging;
  const auto staged = c.stageSent(), placed = c.placeReceived();
  steps.push_back([=, this] {
    onStream(commStream, ready, done, false, where, [&] {
      if (c.outer != 1)
        for (const auto &copy : staged)
          copyRows(copy, send, x, commStream, where);
      check(nccl->ncclGroupStart(), "ncclGroupStart");
      for (int64_t m = 0; m < c.members; ++m) {
        const int peer = static_cast<int>(m);
        check(nccl->ncclSend(reinterpret_cast<const void *>(send + m * c.chunk),
                             c.chunk, ncclUint8, peer, comm, on),
              "ncclSend");
        check(nccl->ncclRecv(reinterpret_cast<void *>(receive + m * c.chunk),
                             c.chunk, ncclUint8, peer, comm, on),
              "ncclRecv");
      }
      check(nccl->ncclGroupEnd(), "ncclGroupEnd");
      if (c.recvOuter != 1)
        for (const auto &copy : placed)
          copyRows(copy, y, receive, commStream, where);
    });
    counter->countCollective("all_to_all", c.chunk / c.element, c.dtype,
                             c.mask);
  });
}

ncclComm_t CudaExecutor::State::commOf(uint32_t mask) {
  if (dry)
    return nullptr;
  if (auto found = comms.find(mask); found != comms.end())
    return found->second;
  // (the step's group was checked against the plan's mesh as it was read)
  std::string axes;
  for (int a = 0; a < plan.mesh_size(); ++a)
    if (mask & (1u << a))
      axes += (axes.empty() ? "" : ",") + plan.mesh(a).name();
  const std::string what =
      planName + ": the NCCL communicator of mesh axes " + axes;
  const Nccl &nccl = Nccl::get();
  ncclUniqueId id{};
  const int64_t member = mpi->groupRank(mask);
  if (member == 0)
    nccl.check(nccl.ncclGetUniqueId(&id), what + " (ncclGetUniqueId)");
  mpi->broadcast(&id, sizeof id, 0, mask);
  ncclComm_t comm = nullptr;
  nccl.check(nccl.ncclCommInitRank(&comm,
                                   static_cast<int>(mpi->groupSize(mask)), id,
                                   static_cast<int>(member)),
             what + " (ncclCommInitRank)");
  return comms[mask] = comm;
}

void weft::runtime::checkPlanForGpu(const plan::Plan &plan,
                                    const std::string &planName,
                                    const std::string &architecture,
                                    const std::string &gpu) {
  if (plan.device() != "cuda")
    throw Error(planName + " is compiled for " +
                (plan.device().empty() ? "cpu" : plan.device()) +
                ", not CUDA; compile it with --device cuda");
  // sm_90a code runs on compute capability 9.0 only.
  for (const auto &kernel : plan.kernels()) {
    if (kernel.backend() != plan::Kernel::CUDA_CUBIN)
      throw Error(planName + ": kernel " + kernel.name() +
                  " is not a CUDA kernel");
    if (kernel.target() != architecture + "a" &&
        kernel.target() != architecture)
      throw Error(planName + ": kernel " + kernel.name() + " is compiled for " +
                  kernel.target() + "; " + gpu +
                  "; compile the plan for this GPU");
  }
  if (std::string(kLibraryTarget) != architecture + "a")
    throw Error(planName + ": this runtime's kernels are compiled for " +
                kLibraryTarget + "; " + gpu);
}

int64_t weft::runtime::cudnnWorkspaceBudget(const plan::Plan &plan,
                                            const std::string &planName) {
  const char *text = std::getenv("WEFT_CUDNN_WORKSPACE");
  if (!text)
    return std::max<int64_t>(plan.memory().arena(), 256 << 20);
  const std::optional<int64_t> bytes = parseByteCount(text);
  if (!bytes)
    throw Error(planName + ": WEFT_CUDNN_WORKSPACE is '" + text +
                "'; expected bytes, with an optional K, M or G suffix");
  return *bytes;
}

CudaExecutor::DeviceMemory
CudaExecutor::deviceMemory(const plan::Plan &plan,
                           const std::string &planName) {
  bool bf16Attention = false;
  for (const auto &stream : plan.streams())
    for (const auto &step : stream.steps())
      bf16Attention |=
          step.has_call() && (step.call().function() == "attention_bf16" ||
                              step.call().function() == "attention_grad_bf16");
  const BlockLayout layout = blockLayoutOf(plan);
  return {layout.bytes, layout.bytes - layout.statusOffset,
          bf16Attention ? cudnnWorkspaceBudget(plan, planName) : 0};
}

void CudaExecutor::checkPlan(const plan::Plan &plan,
                             const std::string &planName) {
  if (plan.device() != "cuda")
    checkPlanForGpu(plan, planName, "", "");
  for (const auto &kernel : plan.kernels())
    if (kernel.backend() != plan::Kernel::CUDA_CUBIN ||
        kernel.image().empty() || kernel.grid_blocks() < 1 ||
        kernel.block_threads() < 1)
      throw Error(planName + ": kernel " + kernel.name() +
                  " is not a CUDA kernel with a cubin and a launch shape");
  State s(plan, planName, /*dry=*/true);
  s.kernels.assign(plan.kernels_size(), nullptr);
  s.prepare();
}

CudaExecutor::CudaExecutor(const plan::Plan &plan, std::string planName,
                           int deviceIndex) {
  if (plan.device() != "cuda") // before looking for a driver
    checkPlanForGpu(plan, planName, "", "");
  const int64_t cudnnBudget = cudnnWorkspaceBudget(plan, planName);
  state = std::make_unique<State>(plan, planName);
  State &s = *state;
  s.cudnnBudget = cudnnBudget;
  const CudaDriver &cu = s.cu;
  int count = 0;
  cu.check(cu.cuDeviceGetCount(&count), "cuDeviceGetCount");
  // Under a launcher, each rank of a node takes its own GPU.
  if (deviceIndex < 0)
    deviceIndex = Communicator::localRank() % count;
  if (deviceIndex >= count)
    throw Error(planName + ": GPU " + std::to_string(deviceIndex) +
                " does not exist; the driver sees " + std::to_string(count));
  cu.check(cu.cuDeviceGet(&s.device, deviceIndex), "cuDeviceGet");
  char name[256] = {};
  cu.cuDeviceGetName(name, sizeof name, s.device);
  int major = 0, minor = 0;
  cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                          s.device);
  cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                          s.device);
  size_t totalMemory = 0;
  cu.cuDeviceTotalMem(&totalMemory, s.device);
  const std::string architecture =
      "sm_" + std::to_string(major) + std::to_string(minor);
  s.description = std::string(name) + " (" + architecture + ", " +
                  gibibytes(static_cast<int64_t>(totalMemory)) + ")";
  checkPlanForGpu(plan, planName, architecture,
                  "GPU " + std::to_string(deviceIndex) + " is " +
                      s.description);

  cu.check(cu.cuDevicePrimaryCtxRetain(&s.context, s.device),
           "cuDevicePrimaryCtxRetain");
  cu.check(cu.cuCtxSetCurrent(s.context), "cuCtxSetCurrent");

  // Memory, checked before anything is allocated.
  const plan::Memory &m = plan.memory();
  const BlockLayout &layout = s.layout;
  size_t freeBytes = 0, totalBytes = 0;
  cu.check(cu.cuMemGetInfo(&freeBytes, &totalBytes), "cuMemGetInfo");
  const int64_t tableReserve = layout.bytes - layout.tableOffset;
  if (layout.bytes > static_cast<int64_t>(freeBytes))
    throw Error(planName + " needs " + gibibytes(layout.bytes) +
                " of device memory; GPU " + std::to_string(deviceIndex) + " (" +
                s.description + ") has " +
                gibibytes(static_cast<int64_t>(freeBytes)) + " free");
  cu.check(cu.cuMemAlloc(&s.block, layout.bytes),
           planName + ": allocating " + gibibytes(layout.bytes));
  cu.check(cu.cuStreamCreate(&s.stream, CU_STREAM_NON_BLOCKING),
           "cuStreamCreate");
  cu.check(cu.cuStreamCreate(&s.commStream, CU_STREAM_NON_BLOCKING),
           "cuStreamCreate");
  cu.check(cu.cuStreamCreate(&s.copyStream, CU_STREAM_NON_BLOCKING),
           "cuStreamCreate");
  if (m.host() > 0) {
    void *host = nullptr;
    cu.check(cu.cuMemAllocHost(&host, m.host()),
             planName + ": pinning " + gibibytes(m.host()) +
                 " of host memory for offloaded tensors");
    s.host = static_cast<char *>(host);
  }
  cu.check(cu.cuEventCreate(&s.start, CU_EVENT_DEFAULT), "cuEventCreate");
  cu.check(cu.cuEventCreate(&s.stop, CU_EVENT_DEFAULT), "cuEventCreate");
  if (m.state() > 0)
    cu.check(cu.cuMemsetD8Async(s.block + s.layout.regionOffset[plan::STATE], 0,
                                m.state(), s.stream),
             planName + ": zeroing the training state");
  if (m.constants() > 0)
    cu.check(cu.cuMemcpyHtoD(s.block + s.layout.regionOffset[plan::CONSTANTS],
                             plan.constants().data(), plan.constants().size()),
             planName + ": constants");

  cu.check(cu.cuModuleLoadData(&s.library, weft_cuda_library_cubin),
           planName + ": loading the runtime's kernels");
  for (const auto &kernel : plan.kernels()) {
    CUmodule module;
    cu.check(cu.cuModuleLoadData(&module, kernel.image().data()),
             planName + ": loading kernel " + kernel.name());
    s.modules.push_back(module);
    CUfunction function;
    cu.check(cu.cuModuleGetFunction(&function, module, kernel.entry().c_str()),
             planName + ": kernel " + kernel.name());
    s.kernels.push_back(function);
  }
  int64_t pinnedBytes = 0;
  for (const auto &input : plan.inputs()) {
    s.inputOffset.push_back(pinnedBytes);
    pinnedBytes += alignUp(plan.buffers(input.buffer()).bytes());
  }
  s.given.assign(plan.inputs_size(), false);
  if (pinnedBytes > 0) {
    void *host = nullptr;
    cu.check(cu.cuMemAllocHost(&host, pinnedBytes),
             planName + ": pinning " + std::to_string(pinnedBytes) +
                 " bytes of host memory for the inputs");
    s.pinned = static_cast<char *>(host);
  }
  s.mpi = Communicator::forPlan(plan, planName); // a GPU per rank
  s.prepare();
  if (s.cudnnWorkspaceBytes > 0) {
    size_t freeNow = 0, totalNow = 0;
    cu.check(cu.cuMemGetInfo(&freeNow, &totalNow), "cuMemGetInfo");
    if (s.cudnnWorkspaceBytes > static_cast<int64_t>(freeNow))
      throw Error(planName + ": cuDNN's attention needs " +
                  gibibytes(s.cudnnWorkspaceBytes) +
                  " of workspace; the GPU has " +
                  gibibytes(static_cast<int64_t>(freeNow)) + " free");
    cu.check(cu.cuMemAlloc(&s.cudnnWorkspace, s.cudnnWorkspaceBytes),
             planName + ": cuDNN's workspace");
  }
  if (static_cast<int64_t>(s.tables.size()) > tableReserve)
    throw Error(planName + ": its rope tables outgrow their reserve");
  if (!s.tables.empty())
    cu.check(cu.cuMemcpyHtoD(s.block + s.layout.tableOffset, s.tables.data(),
                             s.tables.size()),
             planName + ": tables");
}

CudaExecutor::~CudaExecutor() = default;

int64_t CudaExecutor::State::memberOf(const plan::Binding &binding) const {
  return shardMember(plan, planName, mpi, binding);
}

void CudaExecutor::loadParameters(const SafetensorsCheckpoint &checkpoint) {
  std::vector<char> host(state->plan.memory().parameters());
  readParameters(
      state->plan, checkpoint, host.data(),
      [this](const plan::Binding &param) { return state->memberOf(param); });
  upload(plan::PARAMETERS, host.data());
}

void CudaExecutor::initializeParameters(uint64_t seed) {
  std::vector<char> host(state->plan.memory().parameters());
  fillParameters(
      state->plan, state->planName, seed, host.data(),
      [this](const plan::Binding &param) { return state->memberOf(param); });
  upload(plan::PARAMETERS, host.data());
}

Communicator *CudaExecutor::getCommunicator() const { return state->mpi; }

void CudaExecutor::setInput(const std::string &name, const HostTensor &tensor) {
  auto [index, staged] = bindInput(state->plan, state->planName, name, tensor);
  State &s = *state;
  // A run's copy in may still read the pinned memory.
  s.synchronize(s.planName + ": run");
  std::memcpy(s.pinned + s.inputOffset[index], staged.bytes.data(),
              staged.bytes.size());
  s.given[index] = true;
}

namespace {
int64_t regionBytes(const weft::plan::Plan &plan, weft::plan::Region region) {
  switch (region) {
  case weft::plan::ARENA:
    return plan.memory().arena();
  case weft::plan::PARAMETERS:
    return plan.memory().parameters();
  case weft::plan::CONSTANTS:
    return plan.memory().constants();
  case weft::plan::STATE:
    return plan.memory().state();
  case weft::plan::HOST:
    return plan.memory().host();
  default:
    throw Error("no such region");
  }
}
} // namespace

void CudaExecutor::upload(plan::Region region, const char *host) {
  upload(region, host, 0, regionBytes(state->plan, region));
}

void CudaExecutor::download(plan::Region region, char *host) const {
  download(region, host, 0, regionBytes(state->plan, region));
}

void CudaExecutor::upload(plan::Region region, const char *host, int64_t offset,
                          int64_t bytes) {
  State &s = *state;
  if (offset < 0 || bytes < 0 || offset + bytes > regionBytes(s.plan, region))
    throw Error(s.planName + ": upload outside the region");
  if (region == plan::HOST) { // pinned host memory
    s.synchronize(s.planName + ": run");
    if (bytes > 0)
      std::memcpy(s.host + offset, host + offset, bytes);
    return;
  }
  if (bytes > 0)
    s.cu.check(
        s.cu.cuMemcpyHtoD(s.block + s.layout.regionOffset[region] + offset,
                          host + offset, bytes),
        s.planName + ": upload");
}

void CudaExecutor::download(plan::Region region, char *host, int64_t offset,
                            int64_t bytes) const {
  State &s = *state;
  if (offset < 0 || bytes < 0 || offset + bytes > regionBytes(s.plan, region))
    throw Error(s.planName + ": download outside the region");
  s.synchronize(s.planName + ": run");
  if (region == plan::HOST) {
    if (bytes > 0)
      std::memcpy(host + offset, s.host + offset, bytes);
    return;
  }
  if (bytes > 0)
    s.cu.check(s.cu.cuMemcpyDtoH(
                   host + offset,
                   s.block + s.layout.regionOffset[region] + offset, bytes),
               s.planName + ": download");
}

size_t CudaExecutor::stepCount() const { return state->steps.size(); }

std::string CudaExecutor::deviceDescription() const {
  return state->description;
}

int64_t CudaExecutor::deviceBytes() const {
  return state->layout.bytes + state->cudnnWorkspaceBytes;
}

int64_t CudaExecutor::cudnnWorkspaceBytes() const {
  return state->cudnnWorkspaceBytes;
}

const std::vector<std::string> &CudaExecutor::attentionNotes() const {
  return state->attentionNotes;
}

namespace {
/// Throws Error naming the first step whose kernel reported its status: a
/// bad index, or what `messages` says of the step.
void checkStatus(const CudaDriver &cu, CUdeviceptr status,
                 const std::vector<std::string> &names,
                 const std::vector<int64_t> &bounds,
                 const std::vector<std::string> &messages,
                 const std::string &planName) {
  std::vector<long long> words(names.size() * 2);
  cu.check(cu.cuMemcpyDtoH(words.data(), status, words.size() * 8),
           planName + ": status");
  for (size_t i = 0; i < names.size(); ++i) {
    if (words[2 * i] == 0)
      continue;
    if (!messages[i].empty())
      throw Error(planName + ": step '" + names[i] + "': " + messages[i] +
                  std::to_string(words[2 * i + 1]));
    throw Error(planName + ": step '" + names[i] + "': index " +
                std::to_string(words[2 * i + 1]) + " at position " +
                std::to_string(words[2 * i] - 1) + " is outside [0, " +
                std::to_string(bounds[i]) + ")");
  }
}
} // namespace

void CudaExecutor::run(TraceWriter *trace) {
  const plan::Plan &plan = state->plan;
  runProgram(plan.streams_size() > 0 ? plan.streams(0).program() : "", trace);
}

void CudaExecutor::runProgram(const std::string &program, TraceWriter *trace) {
  State &s = *state;
  const plan::Plan &plan = s.plan;
  std::vector<int> streams;
  for (int i = 0; i < plan.streams_size(); ++i)
    if (plan.streams(i).program() == program)
      streams.push_back(i);
  if (streams.empty())
    throw Error(s.planName + " has no program '" + program + "'");
  for (int i = 0; i < plan.inputs_size(); ++i)
    if (plan.inputs(i).program() == program && !s.given[i])
      throw Error("input '" + plan.inputs(i).name() + "' was not given");
  s.cu.check(s.cu.cuMemsetD8Async(s.block + s.layout.statusOffset, 0,
                                  s.steps.size() * 16, s.stream),
             s.planName + ": status");
  // The arena reuses an input's memory once it is dead: every run copies
  // its program's inputs in.
  for (int i = 0; i < plan.inputs_size(); ++i)
    if (plan.inputs(i).program() == program)
      s.cu.check(s.cu.cuMemcpyHtoDAsync(
                     s.address(plan.inputs(i).buffer()),
                     s.pinned + s.inputOffset[i],
                     plan.buffers(plan.inputs(i).buffer()).bytes(), s.stream),
                 s.planName + ": input " + plan.inputs(i).name());
  double at = trace ? trace->now() : 0;
  float total = 0;
  for (int stream : streams) {
    const size_t begin = s.streamBegin[stream],
                 end = begin + plan.streams(stream).steps_size();
    if (!trace) {
      s.cu.check(s.cu.cuEventRecord(s.start, s.stream), "cuEventRecord");
      for (size_t i = begin; i < end; ++i)
        s.steps[i]();
      s.joinRunning(stream);
      s.cu.check(s.cu.cuEventRecord(s.stop, s.stream), "cuEventRecord");
      s.synchronize(s.planName + ": run");
      float ms = 0;
      s.cu.cuEventElapsedTime(&ms, s.start, s.stop);
      total += ms;
      continue;
    }
    std::vector<float> stepMs = timeSteps(begin, end, 1);
    s.joinRunning(stream);
    for (size_t i = begin; i < end; ++i) {
      const plan::Step &step =
          plan.streams(stream).steps(static_cast<int>(i - begin));
      const double micros = stepMs[i - begin] * 1e3;
      trace->addStep(step.name(),
                     step.has_launch() ? "kernel" : step.call().function(), at,
                     micros, step.live_bytes());
      at += micros;
      total += stepMs[i - begin];
    }
  }
  lastMilliseconds = total;
  checkStatus(s.cu, s.block + s.layout.statusOffset, s.stepNames, s.stepBounds,
              s.stepMessages, s.planName);
}

int64_t CudaExecutor::arenaBytes() const {
  return state->plan.memory().arena();
}

const weft::plan::Plan &CudaExecutor::getPlan() const { return state->plan; }

void CudaExecutor::copyOut(int bufferId, char *host) const {
  State &s = *state;
  s.synchronize(s.planName + ": run");
  s.cu.check(s.cu.cuMemcpyDtoH(host, s.address(bufferId),
                               s.plan.buffers(bufferId).bytes()),
             s.planName + ": reading " + s.plan.buffers(bufferId).name());
}

void CudaExecutor::copyIn(int bufferId, const char *host) {
  State &s = *state;
  s.synchronize(s.planName + ": run");
  s.cu.check(s.cu.cuMemcpyHtoD(s.address(bufferId), host,
                               s.plan.buffers(bufferId).bytes()),
             s.planName + ": writing " + s.plan.buffers(bufferId).name());
}

void CudaExecutor::runStep(size_t index) {
  State &s = *state;
  if (index >= s.steps.size())
    throw Error(s.planName + " has no step " + std::to_string(index));
  s.cu.check(s.cu.cuMemsetD8Async(s.block + s.layout.statusOffset, 0,
                                  s.steps.size() * 16, s.stream),
             s.planName + ": status");
  s.steps[index]();
  s.synchronize(s.planName + ": step '" + s.stepNames[index] + "'");
  checkStatus(s.cu, s.block + s.layout.statusOffset, s.stepNames, s.stepBounds,
              s.stepMessages, s.planName);
}

std::vector<float> CudaExecutor::profileSteps(int repeat) {
  return timeSteps(0, state->steps.size(), repeat);
}

std::vector<float> CudaExecutor::timeSteps(size_t begin, size_t end,
                                           int repeat) {
  State &s = *state;
  std::vector<CUevent> events(end - begin + 1);
  for (CUevent &event : events)
    s.cu.check(s.cu.cuEventCreate(&event, CU_EVENT_DEFAULT), "cuEventCreate");
  std::vector<std::vector<float>> times(end - begin);
  for (int r = 0; r < repeat; ++r) {
    s.cu.check(s.cu.cuEventRecord(events[0], s.stream), "cuEventRecord");
    for (size_t i = 0; i < end - begin; ++i) {
      s.steps[begin + i]();
      s.cu.check(s.cu.cuEventRecord(events[i + 1], s.stream), "cuEventRecord");
    }
    s.synchronize(s.planName + ": run");
    for (size_t i = 0; i < end - begin; ++i) {
      float ms = 0;
      s.cu.cuEventElapsedTime(&ms, events[i], events[i + 1]);
      times[i].push_back(ms);
    }
  }
  for (CUevent event : events)
    s.cu.cuEventDestroy(event);
  std::vector<float> medians;
  for (auto &t : times) {
    std::sort(t.begin(), t.end());
    medians.push_back(t.empty() ? 0.0f : t[t.size() / 2]);
  }
  return medians;
}

HostTensor CudaExecutor::output(const std::string &name) const {
  State &s = *state;
  const int id = outputBuffer(s.plan, s.planName, name);
  const Buffer &buffer = s.plan.buffers(id);
  HostTensor tensor;
  tensor.dtype = buffer.dtype();
  tensor.shape.assign(buffer.shape().begin(), buffer.shape().end());
  tensor.bytes.resize(buffer.bytes());
  s.synchronize(s.planName + ": run");
  s.cu.check(
      s.cu.cuMemcpyDtoH(tensor.bytes.data(), s.address(id), buffer.bytes()),
      s.planName + ": output " + name);
  return tensor;
}
