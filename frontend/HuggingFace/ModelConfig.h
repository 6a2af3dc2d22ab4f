// The fields of a Hugging Face config.json that shape a causal language
// model's graph, read with the defaults of transformers' config class of each
// architecture: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// MixtralForCausalLM and BloomForCausalLM.
#ifndef WEFT_FRONTEND_HUGGINGFACE_MODELCONFIG_H
#define WEFT_FRONTEND_HUGGINGFACE_MODELCONFIG_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace weft::frontend {

enum class Architecture { Llama, Mistral, Qwen2, Mixtral, Bloom };

/// How rotary frequencies are rescaled (`rope_scaling` / `rope_parameters`).
struct RopeScaling {
  enum class Kind { None, Linear, Llama3 } kind = Kind::None;
  double factor = 1.0;
  // Llama 3 only.
  double lowFreqFactor = 1.0;
  double highFreqFactor = 4.0;
  int64_t originalMaxPositions = 8192;
};

struct ModelConfig {
  Architecture architecture = Architecture::Llama;
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0; // the MLP's (each expert's for Mixtral)
  int64_t numAttentionHeads = 0;
  int64_t numKeyValueHeads = 0; // defaults to numAttentionHeads
  int64_t numHiddenLayers = 0;
  int64_t vocabSize = 0;
  int64_t headDim = 0; // defaults to hiddenSize / numAttentionHeads
  /// rms_norm_eps, or layer_norm_epsilon for BLOOM.
  double normEps = 1e-6;
  double ropeTheta = 10000.0;
  RopeScaling ropeScaling;
  bool tieWordEmbeddings = false;
  /// Biases on the q, k and v projections (Qwen2; Llama's attention_bias),
  /// on the output projection (Llama's attention_bias) and on the MLP.
  bool qkvBias = false, outputBias = false, mlpBias = false;
  /// Sliding-window attention: the window (0: none) and, per layer, whether
  /// the layer uses it.
  int64_t slidingWindow = 0;
  std::vector<bool> slidingLayers;
  /// Mixtral: experts per layer and experts each token is routed to.
  int64_t numLocalExperts = 0, numExpertsPerTok = 0;
  /// The file the config came from, for diagnostics.
  std::string path;

  /// Hugging Face's class name ("LlamaForCausalLM").
  llvm::StringRef architectureName() const;
  /// The headDim / 2 inverse rotary frequencies with ropeScaling applied, as
  /// transformers computes them.
  std::vector<double> ropeFrequencies() const;
};

/// Parses the JSON text of a config.json. The architecture comes from
/// `architectures` (or `model_type`). Errors name the file and the field: a
/// missing required field, a field of the wrong type or value, an unknown
/// architecture, or a feature that weft does not build yet.
llvm::Expected<ModelConfig> parseModelConfig(llvm::StringRef json,
                                             llvm::StringRef path);

/// Reads and parses `path` (a config.json, or a folder holding one).
llvm::Expected<ModelConfig> readModelConfig(llvm::StringRef path);

} // namespace weft::frontend

#endif // WEFT_FRONTEND_HUGGINGFACE_MODELCONFIG_H
