// Training checkpoints: a folder per saved step holding the model as
// Hugging Face loads it (model.safetensors, config.json), the optimizer state
// (optimizer.safetensors) and where training stands (trainer_state.json),
// written under a temporary name and renamed whole, so that a crash leaves
// the previous checkpoint and never half of a new one.
#ifndef WEFT_RUNTIME_CHECKPOINT_H
#define WEFT_RUNTIME_CHECKPOINT_H

#include "runtime/plan.pb.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace weft::runtime {

struct TensorView {
  std::string name;
  plan::DType dtype; // F32, BF16, F16, I64, I32, I8
  std::vector<int64_t> shape;
  const void *data;
  int64_t bytes;
};

/// `tensors` in the safetensors format (header sorted by name, data in that
/// order), with `metadata` under "__metadata__".
std::string serializeSafetensors(
    const std::vector<TensorView> &tensors,
    const std::map<std::string, std::string> &metadata = {{"format", "pt"}});

struct CheckpointContents {
  std::vector<TensorView> model;     // model.safetensors
  std::vector<TensorView> optimizer; // optimizer.safetensors
  std::string config;                // config.json (none when empty)
  std::string state;                 // trainer_state.json
};

/// Writes DIR/step-<step>: every file into DIR/.step-<step>.tmp (each
/// fsynced), then the folder renamed into place (an existing step-<step> is
/// replaced only once the new one is whole). Returns the folder's path.
/// Throws Error naming the path.
std::string saveCheckpoint(const std::string &dir, int64_t step,
                           const CheckpointContents &contents);

/// The checkpoint `path` names: the folder itself when it holds
/// trainer_state.json, else its step-<N> with the largest N. Throws Error
/// naming the path when there is none.
std::string findCheckpoint(const std::string &path);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_CHECKPOINT_H
