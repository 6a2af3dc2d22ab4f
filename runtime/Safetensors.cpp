// Reading safetensors: an 8-byte little-endian header length, a JSON header
// of {name: {dtype, shape, data_offsets}}, then the data, memory-mapped.
#include "runtime/Safetensors.h"

#include "kernels/cpu/Kernels.h"
#include "runtime/Error.h"
#include "runtime/HostTensor.h"
#include "runtime/MappedFile.h"
#include "runtime/PlanFile.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <sys/stat.h>

using namespace weft::runtime;
using json = nlohmann::json;

namespace {
bool isDirectory(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

int64_t elementBytes(const std::string &dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64")
    return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32")
    return 4;
  if (dtype == "BF16" || dtype == "F16" || dtype == "I16" || dtype == "U16")
    return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL")
    return 1;
  return 0;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}
} // namespace

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string &path)
    : where(path) {
  if (!isDirectory(path)) {
    openFile(path);
    return;
  }
  std::string index = path + "/model.safetensors.index.json";
  if (exists(index)) {
    std::ifstream file(index);
    json root = json::parse(file, nullptr, /*allow_exceptions=*/false);
    if (root.is_discarded() || !root.contains("weight_map") ||
        !root["weight_map"].is_object())
      throw Error(index + ": expected a JSON object with a 'weight_map'");
    std::map<std::string, bool> files;
    for (auto &[name, shard] : root["weight_map"].items()) {
      if (!shard.is_string())
        throw Error(index + ": weight_map['" + name + "'] is not a file name");
      files[shard.get<std::string>()] = true;
    }
    for (auto &[shard, unused] : files)
      openFile(path + "/" + shard);
    for (auto &[name, shard] : root["weight_map"].items())
      if (!byName.count(name))
        throw Error(index + ": tensor '" + name + "' is not in " +
                    shard.get<std::string>());
    return;
  }
  std::string single = path + "/model.safetensors";
  if (!exists(single))
    throw Error(path +
                ": no model.safetensors or model.safetensors.index.json");
  openFile(single);
}

SafetensorsCheckpoint::~SafetensorsCheckpoint() = default;

void SafetensorsCheckpoint::openFile(const std::string &path) {
  auto mapping = std::make_unique<MappedFile>(path);
  if (mapping->size() < 8)
    throw Error(path + ": not a safetensors file (too short to hold a header)");
  const char *base = mapping->data();
  uint64_t headerSize;
  std::memcpy(&headerSize, base, 8);
  if (headerSize > mapping->size() - 8)
    throw Error(path + ": header of " + std::to_string(headerSize) +
                " bytes runs past the end of the file");
  // The format's own limit (safetensors rejects larger headers too).
  constexpr uint64_t kMaxHeaderBytes = 100 << 20;
  if (headerSize > kMaxHeaderBytes)
    throw Error(path + ": header of " + std::to_string(headerSize) +
                " bytes is larger than safetensors' 100 MiB limit");
  json header = json::parse(base + 8, base + 8 + headerSize, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    throw Error(path + ": the header is not a JSON object");
  const char *data = base + 8 + headerSize;
  const size_t dataSize = mapping->size() - 8 - headerSize;
  for (auto &item : header.items()) {
    // (Not a structured binding: the lambda below captures the name.)
    const std::string &name = item.key();
    auto &entry = item.value();
    if (name == "__metadata__")
      continue;
    auto bad = [&](const std::string &what) {
      return Error(path + ": tensor '" + name + "': " + what);
    };
    if (!entry.is_object() || !entry.contains("dtype") ||
        !entry["dtype"].is_string() || !entry.contains("shape") ||
        !entry["shape"].is_array() || !entry.contains("data_offsets") ||
        !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      throw bad("expected dtype, shape and data_offsets");
    Tensor tensor;
    tensor.file = path;
    tensor.dtype = entry["dtype"].get<std::string>();
    uint64_t count = 1;
    for (auto &d : entry["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw bad("shape must hold non-negative integers");
      tensor.shape.push_back(d.get<int64_t>());
      if (__builtin_mul_overflow(count, static_cast<uint64_t>(d.get<int64_t>()),
                                 &count))
        throw bad("shape " + shapeString(tensor.shape) +
                  "… has more than 2^64 elements");
    }
    auto &offsets = entry["data_offsets"];
    if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      throw bad("data_offsets must be non-negative integers");
    uint64_t begin = offsets[0].get<uint64_t>(),
             end = offsets[1].get<uint64_t>();
    if (begin > end || end > dataSize)
      throw bad("data_offsets [" + std::to_string(begin) + ", " +
                std::to_string(end) + ") lie outside the " +
                std::to_string(dataSize) + " data bytes");
    const uint64_t size = elementBytes(tensor.dtype);
    if (size == 0)
      throw bad("unknown dtype '" + tensor.dtype + "'");
    uint64_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes) || bytes != end - begin)
      throw bad(std::to_string(end - begin) + " bytes for " + tensor.dtype +
                " " + shapeString(tensor.shape));
    tensor.data = data + begin;
    tensor.bytes = end - begin;
    if (byName.count(name))
      throw bad("also defined in " + byName[name].file);
    byName.emplace(name, std::move(tensor));
  }
  mappings.push_back(std::move(mapping));
}

const SafetensorsCheckpoint::Tensor *
SafetensorsCheckpoint::find(const std::string &name) const {
  auto it = byName.find(name);
  return it == byName.end() ? nullptr : &it->second;
}

void SafetensorsCheckpoint::read(const std::string &name,
                                 const std::vector<int64_t> &shape,
                                 plan::DType dtype, void *dst) const {
  const Tensor *tensor = find(name);
  if (!tensor)
    throw Error(where + ": has no tensor '" + name + "'");
  if (tensor->shape != shape)
    throw Error(tensor->file + ": tensor '" + name + "' has shape " +
                shapeString(tensor->shape) + ", the model expects " +
                shapeString(shape));
  if (tensor->dtype != "F32" && tensor->dtype != "BF16" &&
      tensor->dtype != "F16")
    throw Error(tensor->file + ": tensor '" + name + "' has dtype " +
                tensor->dtype + "; expected F32, BF16 or F16");
  if (dtype != plan::F32 && dtype != plan::BF16)
    throw Error(tensor->file + ": tensor '" + name + "' is wanted as " +
                dtypeName(dtype) + "; weights load as f32 or bf16");
  const size_t count = tensor->bytes / elementBytes(tensor->dtype);
  const std::string wanted = dtype == plan::F32 ? "F32" : "BF16";
  if (tensor->dtype == wanted) {
    std::memcpy(dst, tensor->data, tensor->bytes);
    return;
  }
  for (size_t i = 0; i < count; ++i) {
    float value;
    if (tensor->dtype == "F32") {
      std::memcpy(&value, tensor->data + 4 * i, 4);
    } else {
      uint16_t bits;
      std::memcpy(&bits, tensor->data + 2 * i, 2);
      value = tensor->dtype == "BF16" ? kernels::cpu::bf16ToFloat(bits)
                                      : kernels::cpu::f16ToFloat(bits);
    }
    if (dtype == plan::F32)
      static_cast<float *>(dst)[i] = value;
    else
      static_cast<uint16_t *>(dst)[i] = kernels::cpu::floatToBf16(value);
  }
}
