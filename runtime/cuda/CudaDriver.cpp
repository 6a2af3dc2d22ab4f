// Loading the driver, cuBLASLt and NCCL by name.
#include "runtime/cuda/CudaDriver.h"

#include "runtime/Error.h"

#include <dlfcn.h>

#include <mutex>
#include <vector>

using namespace weft::runtime;

namespace {
#define WEFT_STRINGIFY_EXPANDED(x) WEFT_STRINGIFY(x)
#define WEFT_STRINGIFY(x) #x

/// The first of `names` dlopen finds; "" and the errors when none.
void *openFirst(const std::vector<std::string> &names, std::string &errors) {
  for (const std::string &name : names) {
    if (void *handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL))
      return handle;
    errors += std::string("\n  ") + dlerror();
  }
  return nullptr;
}

template <typename F>
void resolve(void *handle, F &function, const char *symbol,
             const std::string &library) {
  function = reinterpret_cast<F>(dlsym(handle, symbol));
  if (!function)
    throw Error(library + " has no " + symbol +
                "; it is older than the CUDA 12 API weft needs");
}

/// `Library` loaded once, from the first of `names` dlopen finds: `fill`
/// resolves its functions and checks it (throwing Error, or returning what
/// is wrong). Every call after a failure throws the same Error: `missing`
/// and the loader's errors when no name opens, else fill's.
template <typename Library, typename Fill>
const Library &loadOnce(const std::vector<std::string> &names,
                        const char *missing, Fill fill) {
  static Library library;
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [&] {
    std::string errors;
    void *handle = openFirst(names, errors);
    if (!handle) {
      failure = missing + errors;
      return;
    }
    try {
      failure = fill(handle, library);
    } catch (const Error &error) {
      failure = error.what();
    }
  });
  if (!failure.empty())
    throw Error(failure);
  return library;
}
} // namespace

const CudaDriver &CudaDriver::get() {
  return loadOnce<CudaDriver>(
      {"libcuda.so.1", "libcuda.so"},
      "no NVIDIA driver: libcuda.so.1 cannot be loaded (is this a machine "
      "with an NVIDIA GPU and its driver?)",
      [](void *handle, CudaDriver &driver) -> std::string {
#define WEFT_CUDA_FUNCTION(name)                                               \
  resolve(handle, driver.name, WEFT_STRINGIFY_EXPANDED(name), "libcuda.so.1");
#include "runtime/cuda/CudaFunctions.def"
#undef WEFT_CUDA_FUNCTION
        if (CUresult r = driver.cuInit(0); r != CUDA_SUCCESS) {
          const char *text = "unknown error";
          driver.cuGetErrorString(r, &text);
          return std::string("the NVIDIA driver cannot start (cuInit: ") +
                 text + "); is a GPU visible to this process?";
        }
        driver.cuDriverGetVersion(&driver.version);
        int count = 0;
        driver.cuDeviceGetCount(&count);
        return count == 0 ? "the NVIDIA driver sees no GPU" : "";
      });
}

void CudaDriver::check(CUresult result, const std::string &what) const {
  if (result == CUDA_SUCCESS)
    return;
  const char *name = "CUDA_ERROR", *text = "unknown error";
  cuGetErrorName(result, &name);
  cuGetErrorString(result, &text);
  throw Error(what + ": " + name + ": " + text);
}

const Cublas &Cublas::get() {
  return loadOnce<Cublas>(
      {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"},
      "cuBLASLt cannot be loaded (add the CUDA toolkit's lib64 or the "
      "nvidia-cublas wheel's lib folder to LD_LIBRARY_PATH)",
      [](void *handle, Cublas &cublas) -> std::string {
#define WEFT_CUBLAS_FUNCTION(name)                                             \
  resolve(handle, cublas.name, WEFT_STRINGIFY_EXPANDED(name), "cuBLASLt");
#include "runtime/cuda/CudaFunctions.def"
#undef WEFT_CUBLAS_FUNCTION
        return "";
      });
}

void Cublas::check(cublasStatus_t status, const std::string &what) const {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(what + ": cuBLASLt status " + std::to_string(status));
}

const Nccl &Nccl::get() {
  return loadOnce<Nccl>(
      {"libnccl.so.2", "libnccl.so"},
      "NCCL cannot be loaded (add the CUDA toolkit's lib folder or the "
      "nvidia-nccl wheel's lib folder to LD_LIBRARY_PATH)",
      [](void *handle, Nccl &nccl) -> std::string {
#define WEFT_NCCL_FUNCTION(name)                                               \
  resolve(handle, nccl.name, WEFT_STRINGIFY_EXPANDED(name), "NCCL");
#include "runtime/cuda/CudaFunctions.def"
#undef WEFT_NCCL_FUNCTION
        nccl.ncclGetVersion(&nccl.version);
        if (nccl.version < 21000) // ncclAvg
          return "NCCL " + std::to_string(nccl.version) +
                 " is older than 2.10, which weft needs";
        return "";
      });
}

void Nccl::check(ncclResult_t result, const std::string &what,
                 ncclComm_t comm) const {
  if (result == ncclSuccess)
    return;
  std::string message = what + ": NCCL: " + ncclGetErrorString(result);
  if (const char *last = ncclGetLastError(comm); last && *last)
    message += std::string(": ") + last;
  throw Error(message);
}
