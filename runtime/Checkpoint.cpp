#include "runtime/Checkpoint.h"

#include "runtime/AtomicFile.h"
#include "runtime/Error.h"
#include "runtime/PlanFile.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>

using namespace weft::runtime;
namespace fs = std::filesystem;

namespace {
const char *safetensorsDtype(weft::plan::DType dtype) {
  switch (dtype) {
  case weft::plan::F32:
    return "F32";
  case weft::plan::BF16:
    return "BF16";
  case weft::plan::F16:
    return "F16";
  case weft::plan::I64:
    return "I64";
  case weft::plan::I32:
    return "I32";
  case weft::plan::I8:
    return "I8";
  default:
    throw Error(std::string("safetensors cannot hold ") + dtypeName(dtype));
  }
}
} // namespace

std::string weft::runtime::serializeSafetensors(
    const std::vector<TensorView> &tensors,
    const std::map<std::string, std::string> &metadata) {
  std::vector<const TensorView *> sorted;
  for (const TensorView &t : tensors)
    sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](auto *a, auto *b) { return a->name < b->name; });
  nlohmann::ordered_json header;
  if (!metadata.empty())
    header["__metadata__"] = metadata;
  int64_t offset = 0;
  for (const TensorView *t : sorted) {
    header[t->name] = {{"dtype", safetensorsDtype(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->bytes}}};
    offset += t->bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' '); // data aligned to 8 bytes
  std::string bytes(8, '\0');
  uint64_t size = text.size();
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>(size >> (8 * i) & 0xff);
  bytes += text;
  bytes.reserve(bytes.size() + offset);
  for (const TensorView *t : sorted)
    bytes.append(static_cast<const char *>(t->data), t->bytes);
  return bytes;
}

std::string weft::runtime::saveCheckpoint(const std::string &dir, int64_t step,
                                          const CheckpointContents &contents) {
  const std::string name = "step-" + std::to_string(step);
  const fs::path final = fs::path(dir) / name;
  const fs::path temporary = fs::path(dir) / ("." + name + ".tmp");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    throw Error(dir + ": cannot create: " + ec.message());
  fs::remove_all(temporary, ec);
  fs::create_directory(temporary, ec);
  if (ec)
    throw Error(temporary.string() + ": cannot create: " + ec.message());
  try {
    writeSynced((temporary / "model.safetensors").string(),
                serializeSafetensors(contents.model));
    writeSynced((temporary / "optimizer.safetensors").string(),
                serializeSafetensors(contents.optimizer, {}));
    if (!contents.config.empty())
      writeSynced((temporary / "config.json").string(), contents.config);
    writeSynced((temporary / "trainer_state.json").string(), contents.state);
    syncDirectory(temporary.string());
    // An older checkpoint of the same step goes only once this one is whole.
    const fs::path old = fs::path(dir) / ("." + name + ".old");
    fs::remove_all(old, ec);
    if (fs::exists(final))
      fs::rename(final, old);
    fs::rename(temporary, final);
    syncDirectory(dir);
    fs::remove_all(old, ec);
  } catch (const fs::filesystem_error &e) {
    fs::remove_all(temporary, ec);
    throw Error(final.string() + ": cannot write: " + e.what());
  } catch (...) {
    fs::remove_all(temporary, ec);
    throw;
  }
  return final.string();
}

std::string weft::runtime::findCheckpoint(const std::string &path) {
  std::error_code ec;
  if (fs::exists(fs::path(path) / "trainer_state.json"))
    return path;
  int64_t best = -1;
  std::string found;
  for (const auto &entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) != 0 ||
        !fs::exists(entry.path() / "trainer_state.json"))
      continue;
    try {
      int64_t step = std::stoll(name.substr(5));
      if (step > best) {
        best = step;
        found = entry.path().string();
      }
    } catch (const std::exception &) {
    }
  }
  if (found.empty())
    throw Error(path + ": no checkpoint (neither trainer_state.json nor a "
                       "step-N folder holding one)");
  return found;
}
