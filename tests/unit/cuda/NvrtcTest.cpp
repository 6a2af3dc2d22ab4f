// The CUDA toolchain the backend will generate code through: NVRTC compiles a
// kernel for Hopper (sm_90a) into a cubin on this GPU-less machine, and
// reports a compile error with the offending line.
#include <nvrtc.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {
struct Compiled {
  nvrtcResult result;
  std::string log;
  std::vector<char> cubin;
};

Compiled compileForHopper(const char *source) {
  nvrtcProgram program;
  EXPECT_EQ(
      nvrtcCreateProgram(&program, source, "kernel.cu", 0, nullptr, nullptr),
      NVRTC_SUCCESS);
  const char *options[] = {"--gpu-architecture=sm_90a", "-std=c++17",
                           "-I" WEFT_CUDA_INCLUDE_DIR};
  Compiled compiled;
  compiled.result = nvrtcCompileProgram(program, 3, options);
  size_t logSize = 0;
  nvrtcGetProgramLogSize(program, &logSize);
  compiled.log.resize(logSize);
  nvrtcGetProgramLog(program, compiled.log.data());
  if (compiled.result == NVRTC_SUCCESS) {
    size_t size = 0;
    EXPECT_EQ(nvrtcGetCUBINSize(program, &size), NVRTC_SUCCESS);
    compiled.cubin.resize(size);
    EXPECT_EQ(nvrtcGetCUBIN(program, compiled.cubin.data()), NVRTC_SUCCESS);
  }
  nvrtcDestroyProgram(&program);
  return compiled;
}
} // namespace

TEST(Nvrtc, CompilesABf16KernelForSm90a) {
  Compiled compiled = compileForHopper(R"(
    #include <cuda_bf16.h>
    extern "C" __global__ void scale(__nv_bfloat16 *x, float s, int n) {
      int i = blockIdx.x * blockDim.x + threadIdx.x;
      if (i < n) x[i] = __float2bfloat16(__bfloat162float(x[i]) * s);
    })");
  ASSERT_EQ(compiled.result, NVRTC_SUCCESS) << compiled.log;
  ASSERT_GT(compiled.cubin.size(), 4u);
  // A cubin is an ELF image.
  EXPECT_EQ(std::string(compiled.cubin.data() + 1, 3), "ELF");
}

TEST(Nvrtc, ReportsCompileErrorsWithTheLine) {
  Compiled compiled =
      compileForHopper("extern \"C\" __global__ void broken(float *x) {\n  "
                       "x[0] = undefined_name;\n}\n");
  EXPECT_EQ(compiled.result, NVRTC_ERROR_COMPILATION);
  EXPECT_NE(compiled.log.find("kernel.cu(2)"), std::string::npos)
      << compiled.log;
  EXPECT_NE(compiled.log.find("undefined_name"), std::string::npos)
      << compiled.log;
}
