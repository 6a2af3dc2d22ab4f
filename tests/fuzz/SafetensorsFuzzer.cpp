// libFuzzer target: a safetensors file of arbitrary bytes is opened (header
// parsed and validated, tensors located) and every tensor it declares is read
// as f32 and bf16. Anything but a clean runtime::Error is a finding.
#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace rt = weft::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path =
      std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
      "/weft-fuzz-" + std::to_string(::getpid()) + ".safetensors";
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char *>(data), size);
  try {
    rt::SafetensorsCheckpoint checkpoint(path);
    for (const auto &[name, tensor] : checkpoint.tensors()) {
      int64_t elements = 1;
      for (int64_t d : tensor.shape)
        elements *= d;
      if (tensor.bytes > (1u << 24) || elements > (1 << 22))
        continue; // checked against its bytes already; not worth copying
      std::vector<float> f32(elements);
      std::vector<uint16_t> bf16(elements);
      try {
        checkpoint.read(name, tensor.shape, weft::plan::F32, f32.data());
        checkpoint.read(name, tensor.shape, weft::plan::BF16, bf16.data());
      } catch (const rt::Error &) {
      }
    }
  } catch (const rt::Error &) {
  }
  return 0;
}
