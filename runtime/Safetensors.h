// Memory-mapped safetensors checkpoints: one file, or a folder with
// model.safetensors or a sharded model.safetensors.index.json. Each tensor is
// read by name; the importers reuse this reader.
#ifndef WEFT_RUNTIME_SAFETENSORS_H
#define WEFT_RUNTIME_SAFETENSORS_H

#include "runtime/plan.pb.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace weft::runtime {

class MappedFile;

class SafetensorsCheckpoint {
public:
  struct Tensor {
    std::string file;
    std::string dtype; // safetensors' name: "F32", "BF16", "F16", "I64", …
    std::vector<int64_t> shape;
    const char *data = nullptr;
    size_t bytes = 0;
  };

  /// Opens and validates every header. Throws Error naming the file.
  explicit SafetensorsCheckpoint(const std::string &path);
  ~SafetensorsCheckpoint();
  SafetensorsCheckpoint(const SafetensorsCheckpoint &) = delete;
  SafetensorsCheckpoint &operator=(const SafetensorsCheckpoint &) = delete;

  /// The tensor called `name`, or null.
  const Tensor *find(const std::string &name) const;
  const std::map<std::string, Tensor> &tensors() const { return byName; }

  /// Copies `name` into `dst` as `dtype` (F32 or BF16; from F32, BF16 or
  /// F16, rounding to nearest even where bits are lost) after checking that
  /// its shape is `shape`. Throws Error naming the file and tensor.
  void read(const std::string &name, const std::vector<int64_t> &shape,
            plan::DType dtype, void *dst) const;

private:
  void openFile(const std::string &path);

  std::vector<std::unique_ptr<MappedFile>> mappings;
  std::map<std::string, Tensor> byName;
  std::string where; // for messages: the path given
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_SAFETENSORS_H
