// NVRTC, when the toolkit is there; a clear error when it is not.
#include "codegen/Cuda/NvrtcCompiler.h"

#include "codegen/Cpu/KernelCompiler.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Regex.h"

#ifdef WEFT_HAVE_NVRTC
#include <nvrtc.h>
#endif

#include <vector>

using namespace weft::codegen;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}
} // namespace

void weft::codegen::parsePtxasReport(llvm::StringRef log,
                                     CompiledCudaKernel &kernel) {
  llvm::SmallVector<llvm::StringRef> match;
  llvm::Regex registers("Used ([0-9]+) registers");
  llvm::Regex frame("([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores, "
                    "([0-9]+) bytes spill loads");
  llvm::SmallVector<llvm::StringRef> lines;
  log.split(lines, '\n');
  for (llvm::StringRef line : lines) {
    if (registers.match(line, &match))
      kernel.registers = std::max(kernel.registers, std::stoi(match[1].str()));
    if (frame.match(line, &match)) {
      kernel.stackBytes += std::stoll(match[1].str());
      kernel.spillBytes +=
          std::stoll(match[2].str()) + std::stoll(match[3].str());
    }
  }
}

#ifdef WEFT_HAVE_NVRTC
bool weft::codegen::haveNvrtc() { return true; }

llvm::Expected<CompiledCudaKernel>
weft::codegen::compileCudaKernel(const std::string &source,
                                 const std::string &name) {
  const std::string architecture =
      std::string("--gpu-architecture=") + kCudaArchitecture;
  std::vector<const char *> options = {architecture.c_str(), "-std=c++17",
                                       "--ptxas-options=-v", "-lineinfo"};
  int major = 0, minor = 0;
  nvrtcVersion(&major, &minor);
  CompiledCudaKernel kernel;
  kernel.contentHash = contentHash(
      "nvrtc " + std::to_string(major) + "." + std::to_string(minor) + " " +
      llvm::join(options.begin(), options.end(), " ") + "\n" + source);

  nvrtcProgram program;
  if (nvrtcResult r =
          nvrtcCreateProgram(&program, source.c_str(), (name + ".cu").c_str(),
                             0, nullptr, nullptr);
      r != NVRTC_SUCCESS)
    return makeError(name + ": NVRTC: " + nvrtcGetErrorString(r));
  nvrtcResult result = nvrtcCompileProgram(
      program, static_cast<int>(options.size()), options.data());
  size_t size = 0;
  nvrtcGetProgramLogSize(program, &size);
  kernel.log.resize(size);
  nvrtcGetProgramLog(program, kernel.log.data());
  while (!kernel.log.empty() && kernel.log.back() == '\0')
    kernel.log.pop_back();
  if (result != NVRTC_SUCCESS) {
    nvrtcDestroyProgram(&program);
    return makeError(name + ": NVRTC cannot compile it (" +
                     nvrtcGetErrorString(result) + "):\n" + kernel.log);
  }
  nvrtcGetCUBINSize(program, &size);
  kernel.cubin.resize(size);
  nvrtcGetCUBIN(program, kernel.cubin.data());
  nvrtcGetPTXSize(program, &size);
  kernel.ptx.resize(size);
  nvrtcGetPTX(program, kernel.ptx.data());
  while (!kernel.ptx.empty() && kernel.ptx.back() == '\0')
    kernel.ptx.pop_back();
  nvrtcDestroyProgram(&program);
  parsePtxasReport(kernel.log, kernel);
  return kernel;
}
#else
bool weft::codegen::haveNvrtc() { return false; }

llvm::Expected<CompiledCudaKernel>
weft::codegen::compileCudaKernel(const std::string &, const std::string &name) {
  return makeError(name + ": this weft was built without the CUDA toolkit "
                          "(NVRTC); rebuild with -DWEFT_ENABLE_CUDA=ON");
}
#endif
