// Compiles generated CUDA kernels with NVRTC into a cubin for one GPU
// architecture (sm_90a: Hopper) plus its PTX, and reads ptxas's resource
// report (registers, local-memory spills). Needs no GPU.
#ifndef WEFT_CODEGEN_CUDA_NVRTCCOMPILER_H
#define WEFT_CODEGEN_CUDA_NVRTCCOMPILER_H

#include "llvm/Support/Error.h"

#include <string>

namespace weft::codegen {

/// The architecture CUDA plans are compiled for.
constexpr const char *kCudaArchitecture = "sm_90a";

struct CompiledCudaKernel {
  std::string cubin, ptx;
  std::string contentHash; // of NVRTC's version, the options and the source
  int registers = 0;       // per thread
  int64_t spillBytes = 0;  // spill stores + spill loads
  int64_t stackBytes = 0;
  std::string log; // NVRTC's and ptxas's messages
};

/// Whether this build has NVRTC (it is built with the CUDA toolkit).
bool haveNvrtc();

/// Compiles `source` (named `name` in messages) for kCudaArchitecture.
/// Errors carry NVRTC's log, whose lines name `name` and the line number.
llvm::Expected<CompiledCudaKernel> compileCudaKernel(const std::string &source,
                                                     const std::string &name);

/// Registers and spills from a ptxas -v report for `entry`.
void parsePtxasReport(llvm::StringRef log, CompiledCudaKernel &kernel);

} // namespace weft::codegen

#endif // WEFT_CODEGEN_CUDA_NVRTCCOMPILER_H
