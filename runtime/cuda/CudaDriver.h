// The CUDA driver API, loaded with dlopen: the runtime builds and starts
// everywhere, and says clearly when there is no driver or no GPU. Also the
// cuBLASLt and NCCL entry points the runtime uses, loaded the same way (from
// the toolkit, or PyTorch's nvidia-cublas and nvidia-nccl wheels).
#ifndef WEFT_RUNTIME_CUDA_CUDADRIVER_H
#define WEFT_RUNTIME_CUDA_CUDADRIVER_H

#include <cublasLt.h>
#include <cuda.h>
#include <nccl.h>

#include <string>

namespace weft::runtime {

struct CudaDriver {
#define WEFT_CUDA_FUNCTION(name) decltype(&::name) name = nullptr;
#include "runtime/cuda/CudaFunctions.def"
#undef WEFT_CUDA_FUNCTION
  int version = 0; // cuDriverGetVersion: 13000 is CUDA 13.0

  /// The driver, loaded and initialised once. Throws Error saying what is
  /// missing: libcuda.so.1 (no NVIDIA driver) or a device (cuInit fails).
  static const CudaDriver &get();
  /// Throws Error "<what>: <CUDA error name>: <description>" unless success.
  void check(CUresult result, const std::string &what) const;
};

struct Cublas {
#define WEFT_CUBLAS_FUNCTION(name) decltype(&::name) name = nullptr;
#include "runtime/cuda/CudaFunctions.def"
#undef WEFT_CUBLAS_FUNCTION
  /// cuBLASLt, loaded once. Throws Error naming the libraries tried.
  static const Cublas &get();
  void check(cublasStatus_t status, const std::string &what) const;
};

struct Nccl {
#define WEFT_NCCL_FUNCTION(name) decltype(&::name) name = nullptr;
#include "runtime/cuda/CudaFunctions.def"
#undef WEFT_NCCL_FUNCTION
  int version = 0; // ncclGetVersion: 22809 is 2.28.9
  /// NCCL, loaded once (only by plans with a mesh). Throws Error naming the
  /// libraries tried.
  static const Nccl &get();
  /// Throws Error "<what>: <NCCL's description>[: <its last error>]".
  void check(ncclResult_t result, const std::string &what,
             ncclComm_t comm = nullptr) const;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_CUDA_CUDADRIVER_H
