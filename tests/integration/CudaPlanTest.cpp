// CUDA plans on this GPU-less machine: every kernel of the tiny and small
// Llama plans (f32 and bf16, forward and training) and of the other
// architectures' fixtures compiles through NVRTC for sm_90a with no
// local-memory spills, with the same buffers and steps as the CPU plan
// (what scripts/gpu-check compares step by step on a GPU); the runtimes
// refuse each other's plans and the CUDA runtime says clearly when there is
// no driver. The kernels' numbers are checked on a GPU by scripts/gpu-check
// (the generated ones also on the host: CudaEmulationTest.cpp).
#include "CompileModel.h"
#include "codegen/Cuda/NvrtcCompiler.h"
#include "kernels/cuda/Training.h"
#include "runtime/Error.h"
#include "runtime/cpu/CpuExecutor.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/CudaExecutor.h"
#include "runtime/cuda/Cudnn.h"

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <map>

using namespace weft;
namespace rt = weft::runtime;
using weft::testing::compileModel;

namespace {

struct Model {
  std::string dir;
  frontend::BuildOptions options;
};

std::vector<Model> models() {
  const std::string fixtures = WEFT_SOURCE_DIR "/tests/fixtures/";
  const std::string small = WEFT_SOURCE_DIR "/bench/configs/small-llama";
  return {{fixtures + "tiny-llama", {2, 64, "f32"}},
          {fixtures + "tiny-llama", {2, 64, "bf16"}},
          {fixtures + "tiny-bloom", {2, 64, "f32"}},
          {fixtures + "tiny-qwen2", {2, 64, "f32"}},
          {small, {1, 512, "f32"}},
          {small, {1, 512, "bf16"}}};
}
} // namespace

TEST(CudaPlan, EveryKernelCompilesForSm90aWithoutSpills) {
  int kernels = 0;
  for (const Model &model : models()) {
    SCOPED_TRACE(model.dir + " " + model.options.dtype);
    plan::Plan plan =
        compileModel(model.dir, model.options, codegen::Device::Cuda);
    EXPECT_EQ(plan.device(), "cuda");
    ASSERT_GT(plan.kernels_size(), 0);
    for (const plan::Kernel &kernel : plan.kernels()) {
      SCOPED_TRACE(kernel.name());
      ++kernels;
      EXPECT_EQ(kernel.backend(), plan::Kernel::CUDA_CUBIN);
      EXPECT_EQ(kernel.target(), "sm_90a");
      ASSERT_GT(kernel.image().size(), 4u);
      EXPECT_EQ(kernel.image().substr(1, 3), "ELF");
      EXPECT_NE(kernel.ptx().find(".target sm_90a"), std::string::npos);
      EXPECT_NE(kernel.ptx().find(".entry " + kernel.entry()),
                std::string::npos);
      EXPECT_EQ(kernel.spill_bytes(), 0);
      EXPECT_EQ(kernel.stack_bytes(), 0);
      EXPECT_GT(kernel.registers(), 0);
      EXPECT_LE(kernel.registers(), 64);
      EXPECT_GT(kernel.grid_blocks(), 0);
      EXPECT_EQ(kernel.block_threads() % 32, 0);
      // Row lengths here are multiples of 4: every access is a vector.
      EXPECT_EQ(kernel.ptx().find("ld.global.f32 "), std::string::npos);
      EXPECT_EQ(kernel.ptx().find("st.global.f32 "), std::string::npos);
      if (kernel.source().find("a block per row") != std::string::npos)
        EXPECT_NE(kernel.ptx().find("shfl.sync.bfly"), std::string::npos);
    }
  }
  EXPECT_GE(kernels, 20);
}

// The training plans (forward, backward, the global norm and AdamW): every
// generated kernel compiles for sm_90a with no spills (rank-0 groups such as
// the loss's mean make scalar accesses, so no vector check here).
TEST(CudaPlan, EveryTrainingKernelCompilesForSm90aWithoutSpills) {
  const std::string tiny = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama";
  const std::string small = WEFT_SOURCE_DIR "/bench/configs/small-llama";
  const std::vector<Model> training = {{tiny, {2, 64, "f32", true}},
                                       {tiny, {2, 64, "bf16", true}},
                                       {small, {1, 512, "bf16", true}}};
  int kernels = 0;
  for (const Model &model : training) {
    SCOPED_TRACE(model.dir + " " + model.options.dtype);
    plan::Plan plan =
        compileModel(model.dir, model.options, codegen::Device::Cuda,
                     /*train=*/true, "none", 0, OptimizerOptions{});
    EXPECT_EQ(plan.optimizer().kind(), "adamw");
    // bf16 plans keep the backward's products bf16 (cuBLASLt's tensor
    // cores), with no f32 copies of their operands; rope too.
    std::map<std::string, int> calls;
    for (const plan::Stream &stream : plan.streams())
      for (const plan::Step &step : stream.steps())
        if (step.has_call())
          ++calls[step.call().function()];
    const bool bf16 = model.options.dtype == "bf16";
    EXPECT_EQ(calls[bf16 ? "matmul" : "matmul_bf16"], 0);
    EXPECT_GT(calls[bf16 ? "matmul_bf16" : "matmul"], 0);
    EXPECT_EQ(calls[bf16 ? "rope" : "rope_bf16"], 0);
    EXPECT_GT(calls[bf16 ? "rope_bf16" : "rope"], 0);
    for (const plan::Kernel &kernel : plan.kernels()) {
      SCOPED_TRACE(kernel.name());
      ++kernels;
      EXPECT_EQ(kernel.target(), "sm_90a");
      EXPECT_EQ(kernel.spill_bytes(), 0);
      EXPECT_EQ(kernel.stack_bytes(), 0);
      EXPECT_GT(kernel.registers(), 0);
      EXPECT_LE(kernel.registers(), 64);
    }
  }
  EXPECT_GE(kernels, 30); // forward, backward and loss kernels of three plans
  std::printf("%d kernels of three training plans compiled, none spills\n",
              kernels);
}

// Every step prepared as the CUDA runtime prepares it at load, without a
// GPU: the distributed training plans' collectives against their meshes, the
// log-sum-exp attention passes its backward; and a call the runtime would
// refuse is refused by name.
TEST(CudaPlan, CheckPlanPreparesEveryStepWithoutAGpu) {
  const std::string tiny = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama";
  auto pipeline = [](int64_t dp, int64_t zero, int64_t sp, int64_t tp) {
    PipelineOptions options;
    options.threads = 2;
    options.train = true;
    options.optimizer = OptimizerOptions{};
    options.dp = dp, options.zero = zero, options.sp = sp, options.tp = tp;
    return options;
  };
  struct Strategy {
    const char *name;
    int64_t batch, dp, zero, sp, tp;
  };
  for (const Strategy &s :
       {Strategy{"single rank", 2, 1, 0, 1, 1},
        Strategy{"dp=2 ZeRO-3", 1, 2, 3, 1, 1}, Strategy{"sp=2", 2, 1, 0, 2, 1},
        Strategy{"tp=2", 2, 1, 0, 1, 2}}) {
    SCOPED_TRACE(s.name);
    plan::Plan plan =
        compileModel(tiny, {s.batch, 64, "f32", true}, codegen::Device::Cuda,
                     pipeline(s.dp, s.zero, s.sp, s.tp));
    EXPECT_NO_THROW(rt::CudaExecutor::checkPlan(plan, s.name));
    // Each attention hands its backward each row's log-sum-exp. The
    // workspace holds the largest backward's δ and log-sum-exp (and, with
    // more ranks, what the collectives stage), not the CPU's scratch.
    int attentions = 0, withLse = 0, grads = 0, gradsWithLse = 0;
    int64_t backwardBytes = 0;
    for (const plan::Step &step : plan.streams(0).steps()) {
      if (!step.has_call())
        continue;
      const plan::LibraryCall &call = step.call();
      if (call.function() == "attention") {
        ++attentions;
        withLse += call.buffers(7) >= 0;
      } else if (call.function() == "attention_grad") {
        ++grads;
        gradsWithLse += call.buffers(11) >= 0;
        backwardBytes = std::max<int64_t>(
            backwardBytes, kernels::cuda::training::attentionGradWorkspaceBytes(
                               call.ints(0), call.ints(3), call.ints(1)));
      }
    }
    if (s.sp == 1 && s.tp == 1 && s.dp == 1)
      EXPECT_EQ(plan.memory().workspace(), backwardBytes);
    else
      EXPECT_GE(plan.memory().workspace(), backwardBytes);
    EXPECT_GT(attentions, 0);
    EXPECT_EQ(withLse, attentions);
    EXPECT_EQ(grads, attentions);
    EXPECT_EQ(gradsWithLse, grads);
  }

  plan::Plan plan = compileModel(tiny, {2, 64, "f32", true},
                                 codegen::Device::Cuda, pipeline(1, 0, 1, 1));
  for (plan::Step &step : *plan.mutable_streams(0)->mutable_steps())
    if (step.has_call() && step.call().function() == "attention_grad") {
      step.mutable_call()->mutable_buffers()->RemoveLast(); // no lse slot
      break;
    }
  try {
    rt::CudaExecutor::checkPlan(plan, "tiny.plan");
    ADD_FAILURE() << "a malformed attention_grad was accepted";
  } catch (const rt::Error &error) {
    EXPECT_NE(std::string(error.what())
                  .find("(attention_grad): expects 12 buffers, 10 ints and 1 "
                        "floats"),
              std::string::npos)
        << error.what();
    EXPECT_EQ(std::string(error.what()).rfind("tiny.plan: step '", 0), 0u)
        << error.what();
  }
}

TEST(CudaPlan, HasTheCpuPlansBuffersAndSteps) {
  const std::string dir = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama";
  for (const char *dtype : {"f32", "bf16"}) {
    plan::Plan cpu = compileModel(dir, {2, 64, dtype}, codegen::Device::Cpu);
    plan::Plan cuda = compileModel(dir, {2, 64, dtype}, codegen::Device::Cuda);
    EXPECT_EQ(cpu.device(), "cpu");
    // The same buffers at the same places; the workspace is each device's
    // own (a forward's CUDA kernels take none: GEMMs use cuBLASLt's).
    ASSERT_EQ(cpu.buffers_size(), cuda.buffers_size());
    for (int i = 0; i < cpu.buffers_size(); ++i) {
      plan::Buffer a = cpu.buffers(i), b = cuda.buffers(i);
      if (a.name() == "workspace") {
        EXPECT_EQ(b.bytes(), 0);
        a.clear_bytes(), b.clear_bytes();
        a.clear_shape(), b.clear_shape();
      }
      EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
    }
    ASSERT_EQ(cpu.streams(0).steps_size(), cuda.streams(0).steps_size());
    for (int i = 0; i < cpu.streams(0).steps_size(); ++i) {
      const plan::Step &a = cpu.streams(0).steps(i),
                       &b = cuda.streams(0).steps(i);
      EXPECT_EQ(a.name(), b.name());
      EXPECT_EQ(a.has_launch(), b.has_launch());
      EXPECT_EQ(a.call().SerializeAsString(), b.call().SerializeAsString());
      EXPECT_EQ(a.launch().buffers_size(), b.launch().buffers_size());
      ASSERT_GT(b.writes_size(), 0) << "step " << i;
      EXPECT_EQ(std::vector<int>(a.writes().begin(), a.writes().end()),
                std::vector<int>(b.writes().begin(), b.writes().end()));
    }
    EXPECT_GT(cpu.memory().workspace(), 0);
    EXPECT_EQ(cuda.memory().workspace(), 0);
    plan::Memory a = cpu.memory(), b = cuda.memory();
    for (plan::Memory *m : {&a, &b})
      m->clear_workspace(), m->clear_arena(), m->clear_peak();
    EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
    EXPECT_EQ(cuda.memory().arena(), cuda.memory().activations());
  }
}

// A module bufferized for one device is not built for the other: its
// workspace is that device's kernels'.
TEST(CudaPlan, RefusesAModuleBufferizedForTheCpu) {
  const std::string dir = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama";
  mlir::MLIRContext context;
  auto config = frontend::readModelConfig(dir);
  ASSERT_TRUE(static_cast<bool>(config));
  auto module = frontend::buildForward(context, *config, {1, 16, "f32"});
  mlir::PassManager pm(&context);
  std::string error;
  ASSERT_TRUE(succeeded(buildPipeline(pm, {"", 2}, error))) << error;
  ASSERT_TRUE(succeeded(pm.run(*module)));
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    diagnostics += d.str();
    return mlir::success();
  });
  EXPECT_TRUE(
      failed(codegen::buildPlan(*module, {dir, "", codegen::Device::Cuda})));
  EXPECT_EQ(diagnostics, "has its workspace planned for cpu, not cuda "
                         "(weft-assign-buffers{device=cuda})");
}

TEST(CudaPlan, ReadsThePtxasReport) {
  codegen::CompiledCudaKernel kernel;
  codegen::parsePtxasReport(
      "ptxas info    : Compiling entry function 'k' for 'sm_90a'\n"
      "ptxas info    : Function properties for k\n"
      "ptxas         .     16 bytes stack frame, 8 bytes spill stores, 12 "
      "bytes spill loads\n"
      "ptxas info    : Used 40 registers, used 1 barriers\n",
      kernel);
  EXPECT_EQ(kernel.registers, 40);
  EXPECT_EQ(kernel.spillBytes, 20);
  EXPECT_EQ(kernel.stackBytes, 16);
}

TEST(CudaPlan, NvrtcErrorsNameTheKernelAndLine) {
  auto compiled = codegen::compileCudaKernel(
      "extern \"C\" __global__ void k(float *x) {\n  x[0] = nope;\n}\n",
      "weft_cuda_broken");
  ASSERT_FALSE(static_cast<bool>(compiled));
  std::string message = llvm::toString(compiled.takeError());
  EXPECT_NE(message.find("weft_cuda_broken.cu(2)"), std::string::npos)
      << message;
}

TEST(CudaRuntime, RefusesAPlanForTheCpuAndTheOtherWayRound) {
  const std::string dir = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama";
  plan::Plan cpu = compileModel(dir, {2, 64, "f32"}, codegen::Device::Cpu);
  plan::Plan cuda = compileModel(dir, {2, 64, "f32"}, codegen::Device::Cuda);
  try {
    rt::CudaExecutor executor(cpu, "cpu.plan");
    FAIL() << "a CPU plan was accepted";
  } catch (const rt::Error &error) {
    EXPECT_STREQ(error.what(), "cpu.plan is compiled for cpu, not CUDA; "
                               "compile it with --device cuda");
  }
  try {
    rt::CpuExecutor executor(cuda, "cuda.plan");
    FAIL() << "a CUDA plan was accepted";
  } catch (const rt::Error &error) {
    EXPECT_STREQ(error.what(), "cuda.plan is compiled for cuda, not the CPU; "
                               "compile it with --device cpu");
  }
}

// cuBLASLt and NCCL load and every function the runtime calls resolves,
// with no GPU (the toolkit's libraries; skipped where it has none).
TEST(CudaRuntime, LoadsCublasLtAndNcclWithEveryFunction) {
  try {
    const rt::Cublas &cublas = rt::Cublas::get();
    EXPECT_GT(cublas.cublasLtGetVersion(), 0u);
  } catch (const rt::Error &error) {
    GTEST_SKIP() << error.what();
  }
  try {
    const rt::Nccl &nccl = rt::Nccl::get();
    EXPECT_GE(nccl.version, 21000);
    std::printf("cuBLASLt %zu, NCCL %d\n",
                rt::Cublas::get().cublasLtGetVersion(), nccl.version);
  } catch (const rt::Error &error) {
    GTEST_SKIP() << error.what();
  }
}

TEST(CudaRuntime, SaysWhenThereIsNoDriver) {
  if (void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(driver);
    GTEST_SKIP() << "this machine has an NVIDIA driver";
  }
  plan::Plan cuda = compileModel(WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama",
                                 {2, 64, "f32"}, codegen::Device::Cuda);
  try {
    rt::CudaExecutor executor(cuda, "cuda.plan");
    FAIL() << "ran without a driver";
  } catch (const rt::Error &error) {
    EXPECT_NE(std::string(error.what())
                  .find("no NVIDIA driver: libcuda.so.1 cannot be loaded"),
              std::string::npos)
        << error.what();
  }
}

TEST(CudaRuntime, RefusesAPlanForAnotherArchitecture) {
  plan::Plan cuda = compileModel(WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama",
                                 {2, 64, "f32"}, codegen::Device::Cuda);
  EXPECT_NO_THROW(rt::checkPlanForGpu(cuda, "cuda.plan", "sm_90", "GPU 0"));
  try {
    rt::checkPlanForGpu(cuda, "cuda.plan", "sm_89",
                        "GPU 0 is NVIDIA L4 (sm_89, 22.03 GiB)");
    FAIL() << "an sm_90a plan was accepted for sm_89";
  } catch (const rt::Error &error) {
    EXPECT_EQ(std::string(error.what()),
              "cuda.plan: kernel " + cuda.kernels(0).name() +
                  " is compiled for sm_90a; GPU 0 is NVIDIA L4 (sm_89, 22.03 "
                  "GiB); compile the plan for this GPU");
  }
}

// cuDNN's attention takes at most the plan's arena (or 256 MiB) beside it
// (its deterministic backward's workspace grows with the square of the
// sequence), or what WEFT_CUDNN_WORKSPACE says; a value that is not bytes is
// named.
TEST(CudaRuntime, BoundsCudnnsWorkspace) {
  plan::Plan cuda = compileModel(WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama",
                                 {2, 64, "f32"}, codegen::Device::Cuda);
  ::unsetenv("WEFT_CUDNN_WORKSPACE");
  EXPECT_EQ(rt::cudnnWorkspaceBudget(cuda, "cuda.plan"), 256 << 20);
  cuda.mutable_memory()->set_arena(int64_t{5} << 30);
  EXPECT_EQ(rt::cudnnWorkspaceBudget(cuda, "cuda.plan"), int64_t{5} << 30);
  for (auto [text, bytes] :
       {std::pair<const char *, int64_t>{"1048576", 1 << 20},
        {"64M", 64 << 20},
        {"3G", int64_t{3} << 30},
        {"4294967296G", int64_t{1} << 62},
        {"0", 0}}) {
    ::setenv("WEFT_CUDNN_WORKSPACE", text, 1);
    EXPECT_EQ(rt::cudnnWorkspaceBudget(cuda, "cuda.plan"), bytes) << text;
  }
  for (const char *bad :
       {"", "lots", "12Q", "-5", "1.5G", "K", "G5", "4294967297G"}) {
    ::setenv("WEFT_CUDNN_WORKSPACE", bad, 1);
    try {
      rt::cudnnWorkspaceBudget(cuda, "cuda.plan");
      ADD_FAILURE() << "took '" << bad << "'";
    } catch (const rt::Error &error) {
      EXPECT_EQ(std::string(error.what()),
                std::string("cuda.plan: WEFT_CUDNN_WORKSPACE is '") + bad +
                    "'; expected bytes, with an optional K, M or G suffix");
    }
  }
  ::unsetenv("WEFT_CUDNN_WORKSPACE");
}

// The device memory a plan takes on a GPU is known before launch: its
// regions, the runtime's own (cuBLASLt's 32 MiB workspace, a status word
// per step, cross-entropy's losses, the norm's partial sums, the rope
// tables) and, with bf16 attention, cuDNN's workspace up to its budget.
TEST(CudaRuntime, KnowsItsDeviceMemoryBeforeLaunch) {
  const std::string tiny = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama";
  ::unsetenv("WEFT_CUDNN_WORKSPACE");
  for (const char *dtype : {"f32", "bf16"}) {
    SCOPED_TRACE(dtype);
    plan::Plan cuda =
        compileModel(tiny, {2, 64, dtype, true}, codegen::Device::Cuda,
                     /*train=*/true, "none", 0, OptimizerOptions{});
    const rt::CudaExecutor::DeviceMemory d =
        rt::CudaExecutor::deviceMemory(cuda, "cuda.plan");
    const plan::Memory &m = cuda.memory();
    int64_t steps = 0;
    for (const plan::Stream &stream : cuda.streams())
      steps += stream.steps_size();
    EXPECT_GE(d.block - d.runtime, m.peak());
    EXPECT_LT(d.block - d.runtime, m.peak() + 4 * 256); // region alignment
    EXPECT_GE(d.runtime, (32 << 20) + steps * 16 + 2 * 64 * 8);
    EXPECT_LT(d.runtime, (33 << 20) + steps * 2048);
    EXPECT_EQ(d.cudnnAtMost, dtype == std::string("bf16") ? 256 << 20 : 0);
  }
}

// cuDNN's SDPA graphs for the plans' attentions validate for Hopper here,
// without a GPU (cuDNN's own support checks: layouts, grouped heads, the
// causal diagonal, the log-sum-exp as Stats); a head dimension cuDNN does not
// take is refused with its reason. Building and running them needs the GPU
// (scripts/gpu-check).
TEST(Cudnn, SdpaGraphsValidateForHopper) {
  try {
    std::printf("cuDNN %lld\n",
                static_cast<long long>(rt::CudnnSdpa::version()));
  } catch (const rt::Error &error) {
    GTEST_SKIP() << error.what();
  }
  using Pass = rt::CudnnSdpa::Pass;
  const std::vector<rt::SdpaShape> shapes = {
      {2, 64, 64, 4, 2, 32, true, 0.17677669f},      // the tiny Llama
      {1, 4096, 4096, 16, 8, 128, true, 0.0883883f}, // gpu-llama
      {2, 300, 300, 8, 8, 64, false, 0.125f},        // full, MHA
      {1, 16, 80, 4, 1, 64, true, 0.125f}};          // last 16 of 80, MQA
  for (const rt::SdpaShape &s : shapes)
    for (Pass pass : {Pass::Forward, Pass::ForwardWithStats, Pass::Backward}) {
      SCOPED_TRACE("seq " + std::to_string(s.sq) + "/" + std::to_string(s.skv) +
                   ", heads " + std::to_string(s.heads) + "/" +
                   std::to_string(s.kvHeads) + ", dim " +
                   std::to_string(s.dim) + ", pass " +
                   std::to_string(static_cast<int>(pass)));
      EXPECT_NO_THROW(rt::CudnnSdpa(s, pass));
    }
  // A backward made under a workspace limit (cuDNN 9.25 or later accumulates
  // dQ in order past it) leaves the environment as it found it.
  const char *limit = "CUDNN_FRONTEND_ATTN_DP_WORKSPACE_LIMIT";
  ::unsetenv(limit);
  EXPECT_NO_THROW(rt::CudnnSdpa(shapes[1], Pass::Backward, 256 << 20));
  EXPECT_EQ(std::getenv(limit), nullptr);
  ::setenv(limit, "12345", 1);
  EXPECT_NO_THROW(rt::CudnnSdpa(shapes[1], Pass::Backward, 256 << 20));
  EXPECT_STREQ(std::getenv(limit), "12345");
  ::unsetenv(limit);
  try {
    rt::CudnnSdpa({1, 64, 64, 4, 4, 12, true, 0.3f}, Pass::Forward);
    ADD_FAILURE() << "cuDNN took a head dimension of 12";
  } catch (const rt::Error &error) {
    EXPECT_EQ(std::string(error.what()).rfind("cuDNN", 0), 0u) << error.what();
  }
}
