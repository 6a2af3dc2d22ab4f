// Compiles generated CPU kernels with the system C++ compiler into shared
// objects, through a per-user cache keyed by the source and the flags.
#ifndef WEFT_CODEGEN_CPU_KERNELCOMPILER_H
#define WEFT_CODEGEN_CPU_KERNELCOMPILER_H

#include "llvm/Support/Error.h"

#include <string>

namespace weft::codegen {

struct CompiledKernel {
  std::string image;       // the shared object's bytes
  std::string contentHash; // of compiler, flags and source
  std::string target;      // the instruction set it needs ("x86-64-v3")
};

/// FNV-1a 64 of `text` in hex: names kernels and keys the cache.
std::string contentHash(llvm::StringRef text);

/// The kernel cache folder: $WEFT_CACHE_DIR, else $XDG_CACHE_HOME/weft/kernels,
/// else ~/.cache/weft/kernels.
std::string kernelCacheDir();

/// Compiles `source` (or takes it from the cache) with $CXX (default c++)
/// and any extra flags in $WEFT_KERNEL_FLAGS. Errors carry the compiler's
/// output.
llvm::Expected<CompiledKernel> compileCpuKernel(const std::string &source);

} // namespace weft::codegen

#endif // WEFT_CODEGEN_CPU_KERNELCOMPILER_H
