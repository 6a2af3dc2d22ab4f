// Kernel compilation and its cache. Kernels target x86-64-v3 (AVX2, FMA)
// when this machine has it, plain x86-64 otherwise; the runtime checks the
// target before loading.
#include "codegen/Cpu/KernelCompiler.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"

#include <unistd.h>

using namespace weft::codegen;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

std::string hostTarget() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
             ? "x86-64-v3"
             : "x86-64";
}
} // namespace

std::string weft::codegen::contentHash(llvm::StringRef text) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text)
    hash = (hash ^ c) * 1099511628211ull;
  return llvm::utohexstr(hash, /*LowerCase=*/true);
}

std::string weft::codegen::kernelCacheDir() {
  if (auto dir = llvm::sys::Process::GetEnv("WEFT_CACHE_DIR"))
    return *dir;
  llvm::SmallString<256> path;
  if (auto xdg = llvm::sys::Process::GetEnv("XDG_CACHE_HOME"))
    path = *xdg;
  else if (auto home = llvm::sys::Process::GetEnv("HOME"))
    llvm::sys::path::append(path, *home, ".cache");
  else
    path = "/tmp";
  llvm::sys::path::append(path, "weft", "kernels");
  return std::string(path);
}

llvm::Expected<CompiledKernel>
weft::codegen::compileCpuKernel(const std::string &source) {
  std::string compilerName = "c++";
  if (auto cxx = llvm::sys::Process::GetEnv("CXX"))
    compilerName = *cxx;
  auto compiler = llvm::sys::findProgramByName(compilerName);
  if (!compiler)
    return makeError("cannot find the C++ compiler '" + compilerName +
                     "' that CPU kernels are built with (set CXX)");
  CompiledKernel kernel;
  kernel.target = hostTarget();
  std::vector<std::string> flags = {"-std=c++17",     "-O3",
                                    "-fPIC",          "-shared",
                                    "-fopenmp",       "-march=" + kernel.target,
                                    "-fno-math-errno"};
  // Extra flags, e.g. -fsanitize=address to check kernels under ASan.
  if (auto extra = llvm::sys::Process::GetEnv("WEFT_KERNEL_FLAGS")) {
    llvm::SmallVector<llvm::StringRef> words;
    llvm::StringRef(*extra).split(words, ' ', -1, /*KeepEmpty=*/false);
    for (llvm::StringRef word : words)
      flags.push_back(word.str());
  }
  kernel.contentHash =
      contentHash(*compiler + "\n" + llvm::join(flags, " ") + "\n" + source);

  std::string dir = kernelCacheDir();
  llvm::SmallString<256> object(dir);
  llvm::sys::path::append(object, kernel.contentHash + ".so");
  if (auto cached = llvm::MemoryBuffer::getFile(object, /*IsText=*/false)) {
    kernel.image = (*cached)->getBuffer().str();
    return kernel;
  }
  if (std::error_code ec = llvm::sys::fs::create_directories(dir))
    return makeError("cannot create the kernel cache " + dir + ": " +
                     ec.message());

  std::string base = std::string(object) + "." + std::to_string(getpid());
  std::string sourcePath = base + ".cpp", outputPath = base + ".so",
              logPath = base + ".log";
  {
    std::error_code ec;
    llvm::raw_fd_ostream file(sourcePath, ec);
    if (ec)
      return makeError("cannot write " + sourcePath + ": " + ec.message());
    file << source;
  }
  std::vector<llvm::StringRef> args = {*compiler};
  for (const std::string &flag : flags)
    args.push_back(flag);
  args.insert(args.end(), {"-o", outputPath, sourcePath});
  std::optional<llvm::StringRef> redirects[] = {
      std::nullopt, llvm::StringRef(logPath), llvm::StringRef(logPath)};
  std::string message;
  int status =
      llvm::sys::ExecuteAndWait(*compiler, args, std::nullopt, redirects,
                                /*SecondsToWait=*/300, 0, &message);
  auto log = llvm::MemoryBuffer::getFile(logPath);
  std::string output = log ? (*log)->getBuffer().str() : "";
  llvm::sys::fs::remove(sourcePath);
  llvm::sys::fs::remove(logPath);
  if (status != 0) {
    llvm::sys::fs::remove(outputPath);
    return makeError(
        "the C++ compiler failed on a generated kernel (" +
        (message.empty() ? "exit " + std::to_string(status) : message) +
        "):\n" + output);
  }
  if (std::error_code ec = llvm::sys::fs::rename(outputPath, object))
    return makeError("cannot store " + std::string(object) + ": " +
                     ec.message());
  auto image = llvm::MemoryBuffer::getFile(object, /*IsText=*/false);
  if (!image)
    return makeError("cannot read back " + std::string(object));
  kernel.image = (*image)->getBuffer().str();
  return kernel;
}
