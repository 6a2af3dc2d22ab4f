// The fields of a Hugging Face LlamaForCausalLM config.json that shape the
// model graph, read with the defaults of transformers' LlamaConfig.
#ifndef WEFT_FRONTEND_HUGGINGFACE_LLAMACONFIG_H
#define WEFT_FRONTEND_HUGGINGFACE_LLAMACONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace weft::frontend {

struct LlamaConfig {
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numAttentionHeads = 0;
  int64_t numKeyValueHeads = 0; // defaults to numAttentionHeads
  int64_t numHiddenLayers = 0;
  int64_t vocabSize = 0;
  int64_t headDim = 0; // defaults to hiddenSize / numAttentionHeads
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  bool tieWordEmbeddings = false;
  /// The file the config came from, for diagnostics.
  std::string path;
};

/// Parses the JSON text of a config.json. Errors name the file and the field:
/// a missing required field, a field of the wrong type or value, or a feature
/// of the architecture that weft does not build yet.
llvm::Expected<LlamaConfig> parseLlamaConfig(llvm::StringRef json,
                                             llvm::StringRef path);

/// Reads and parses `path` (a config.json, or a folder holding one).
llvm::Expected<LlamaConfig> readLlamaConfig(llvm::StringRef path);

} // namespace weft::frontend

#endif // WEFT_FRONTEND_HUGGINGFACE_LLAMACONFIG_H
