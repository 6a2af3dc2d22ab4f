// Reading config.json for the causal LMs weft builds, with each
// architecture's transformers defaults.
#include "frontend/HuggingFace/ModelConfig.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <nlohmann/json.hpp>

#include <cmath>

using namespace weft::frontend;
using json = nlohmann::json;

namespace {
/// Collects the first error while fields are read; later reads are no-ops.
class FieldReader {
public:
  /// Reads fields of `root`; messages name them after `prefix`
  /// ("rope_parameters." for a nested object).
  FieldReader(const json &root, llvm::StringRef path, std::string prefix = "")
      : root(root), path(path), prefix(std::move(prefix)) {}

  void positiveInt(const char *field, int64_t &out, bool required) {
    const json *value = find(field, required);
    if (!value)
      return;
    if (!value->is_number_integer() || value->get<int64_t>() < 1)
      return wrong(field, "a positive integer", *value);
    out = value->get<int64_t>();
  }

  void positiveNumber(const char *field, double &out) {
    const json *value = find(field, /*required=*/false);
    if (!value)
      return;
    if (!value->is_number() || !(value->get<double>() > 0))
      return wrong(field, "a positive number", *value);
    out = value->get<double>();
  }

  /// A window size: a positive integer, or null / absent for none.
  void optionalWindow(const char *field, int64_t &out) {
    const json *value = find(field, /*required=*/false);
    if (!value)
      return;
    if (!value->is_number_integer() || value->get<int64_t>() < 1)
      return wrong(field, "a positive integer or null", *value);
    out = value->get<int64_t>();
  }

  /// A string field, "" when absent or null.
  std::string string(const char *field) {
    const json *value = find(field, /*required=*/false);
    if (!value)
      return "";
    if (!value->is_string()) {
      wrong(field, "a string", *value);
      return "";
    }
    return value->get<std::string>();
  }

  /// The field as a JSON value when present and not null.
  const json *object(const char *field) { return find(field, false); }

  void boolean(const char *field, bool &out) {
    const json *value = find(field, /*required=*/false);
    if (!value)
      return;
    if (!value->is_boolean())
      return wrong(field, "true or false", *value);
    out = value->get<bool>();
  }

  /// The field must be absent, null, or equal to `expected`.
  void unsupportedUnless(const char *field, const json &expected,
                         const char *why) {
    const json *value = find(field, /*required=*/false);
    if (value && !value->is_null() && *value != expected)
      fail("field '" + prefix + field + "' is " + value->dump() + ": " + why);
  }

  void fail(std::string message) {
    if (error.empty())
      error = std::move(message);
  }

  std::string error;

private:
  const json *find(const char *field, bool required) {
    if (!error.empty())
      return nullptr;
    auto it = root.find(field);
    if (it == root.end() || (it->is_null() && !required)) {
      if (required)
        fail("required field '" + prefix + field + "' is missing");
      return nullptr;
    }
    return &*it;
  }

  void wrong(const char *field, const char *expected, const json &found) {
    fail("field '" + prefix + field + "' must be " + expected + ", found " +
         found.dump() + " (" + found.type_name() + ")");
  }

  const json &root;
  llvm::StringRef path;
  std::string prefix;
};

llvm::Error makeError(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

struct ArchitectureName {
  const char *className, *modelType;
  Architecture architecture;
};
constexpr ArchitectureName kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Architecture::Llama},
    {"MistralForCausalLM", "mistral", Architecture::Mistral},
    {"Qwen2ForCausalLM", "qwen2", Architecture::Qwen2},
    {"MixtralForCausalLM", "mixtral", Architecture::Mixtral},
    {"BloomForCausalLM", "bloom", Architecture::Bloom},
};

std::string knownClassNames() {
  std::string names;
  for (const ArchitectureName &a : kArchitectures)
    names += (names.empty() ? "" : ", ") + std::string(a.className);
  return names;
}

/// The architecture from `architectures` (the first one weft builds) or
/// `model_type`; Llama when neither is given.
void readArchitecture(const json &root, FieldReader &read,
                      ModelConfig &config) {
  if (auto arch = root.find("architectures");
      arch != root.end() && !arch->is_null()) {
    if (arch->is_array())
      for (const json &name : *arch)
        for (const ArchitectureName &a : kArchitectures)
          if (name == a.className) {
            config.architecture = a.architecture;
            return;
          }
    return read.fail("field 'architectures' is " + arch->dump() +
                     "; weft builds " + knownClassNames());
  }
  std::string type = read.string("model_type");
  if (type.empty())
    return;
  for (const ArchitectureName &a : kArchitectures)
    if (type == a.modelType) {
      config.architecture = a.architecture;
      return;
    }
  read.fail("field 'model_type' is \"" + type + "\"; weft builds " +
            knownClassNames());
}

/// `rope_parameters` (transformers 5) or `rope_scaling` with `rope_theta`
/// beside it (transformers 4).
void readRope(const json &root, FieldReader &read, llvm::StringRef path,
              ModelConfig &config) {
  read.positiveNumber("rope_theta", config.ropeTheta);
  const char *field =
      root.contains("rope_parameters") && !root["rope_parameters"].is_null()
          ? "rope_parameters"
          : "rope_scaling";
  const json *rope = read.object(field);
  if (!rope)
    return;
  if (!rope->is_object())
    return read.fail("field '" + std::string(field) +
                     "' must be an object, found " + rope->dump());
  FieldReader ropeRead(*rope, path, std::string(field) + ".");
  ropeRead.positiveNumber("rope_theta", config.ropeTheta);
  std::string type = ropeRead.string("rope_type");
  if (type.empty())
    type = ropeRead.string("type");
  RopeScaling &scaling = config.ropeScaling;
  if (type == "linear" || type == "llama3") {
    scaling.kind = type == "linear" ? RopeScaling::Kind::Linear
                                    : RopeScaling::Kind::Llama3;
    ropeRead.positiveNumber("factor", scaling.factor);
    if (!rope->contains("factor"))
      ropeRead.fail("required field '" + std::string(field) +
                    ".factor' is missing");
  }
  if (type == "llama3") {
    ropeRead.positiveNumber("low_freq_factor", scaling.lowFreqFactor);
    ropeRead.positiveNumber("high_freq_factor", scaling.highFreqFactor);
    ropeRead.positiveInt("original_max_position_embeddings",
                         scaling.originalMaxPositions, /*required=*/true);
    if (ropeRead.error.empty() &&
        !(scaling.highFreqFactor > scaling.lowFreqFactor))
      ropeRead.fail("field '" + std::string(field) +
                    ".high_freq_factor' must exceed low_freq_factor");
  } else if (!type.empty() && type != "default" && type != "linear") {
    ropeRead.fail("field '" + std::string(field) + ".rope_type' is \"" + type +
                  "\"; weft supports default, linear and llama3 rotary "
                  "embeddings");
  }
  if (!ropeRead.error.empty())
    read.fail(ropeRead.error);
}

/// Which layers use the sliding window: `layer_types` when given, else
/// every layer (Mistral, Mixtral) or, for Qwen2, the layers from
/// max_window_layers on under use_sliding_window.
void readSlidingWindow(const json &root, FieldReader &read,
                       ModelConfig &config) {
  read.optionalWindow("sliding_window", config.slidingWindow);
  const int64_t layers = config.numHiddenLayers;
  config.slidingLayers.assign(layers, false);
  if (const json *types = read.object("layer_types")) {
    if (!types->is_array() || static_cast<int64_t>(types->size()) != layers)
      return read.fail("field 'layer_types' must list one type per layer (" +
                       std::to_string(layers) + "), found " + types->dump());
    for (int64_t l = 0; l < layers; ++l) {
      const json &type = (*types)[l];
      if (type != "full_attention" && type != "sliding_attention")
        return read.fail("field 'layer_types' has " + type.dump() +
                         "; expected \"full_attention\" or "
                         "\"sliding_attention\"");
      config.slidingLayers[l] = type == "sliding_attention";
    }
  } else if (config.architecture == Architecture::Qwen2) {
    bool use = false;
    int64_t from = 28;
    read.boolean("use_sliding_window", use);
    read.positiveInt("max_window_layers", from, false);
    for (int64_t l = from; use && l < layers; ++l)
      config.slidingLayers[l] = true;
  } else { // Mistral, Mixtral: every layer, when a window is set
    config.slidingLayers.assign(layers, config.slidingWindow > 0);
  }
  bool any = false;
  for (bool sliding : config.slidingLayers)
    any |= sliding;
  if (any && config.slidingWindow == 0)
    read.fail("field 'layer_types' asks for sliding attention but "
              "'sliding_window' is not set");
  if (!any)
    config.slidingWindow = 0;
}
} // namespace

llvm::StringRef ModelConfig::architectureName() const {
  for (const ArchitectureName &a : kArchitectures)
    if (a.architecture == architecture)
      return a.className;
  return "";
}

std::vector<double> ModelConfig::ropeFrequencies() const {
  std::vector<double> frequencies(headDim / 2);
  for (int64_t j = 0; j < headDim / 2; ++j) {
    // In fp32 like transformers, so that the tables agree to the last bit.
    const float exponent = static_cast<float>(2 * j) / headDim;
    double f = 1.0f / std::pow(static_cast<float>(ropeTheta), exponent);
    const RopeScaling &s = ropeScaling;
    if (s.kind == RopeScaling::Kind::Linear)
      f /= s.factor;
    if (s.kind == RopeScaling::Kind::Llama3) {
      const double lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
      const double highWavelen = s.originalMaxPositions / s.highFreqFactor;
      const double wavelen = 2 * M_PI / f;
      if (wavelen > lowWavelen) {
        f /= s.factor;
      } else if (wavelen >= highWavelen) { // between: interpolate
        const double smooth =
            (s.originalMaxPositions / wavelen - s.lowFreqFactor) /
            (s.highFreqFactor - s.lowFreqFactor);
        f = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
    frequencies[j] = f;
  }
  return frequencies;
}

llvm::Expected<ModelConfig>
weft::frontend::parseModelConfig(llvm::StringRef text, llvm::StringRef path) {
  json root = json::parse(text.begin(), text.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (root.is_discarded())
    return makeError(path.str() + ": not valid JSON");
  if (!root.is_object())
    return makeError(path.str() + ": expected a JSON object, found " +
                     root.type_name());

  ModelConfig config;
  config.path = path.str();
  FieldReader read(root, path);
  readArchitecture(root, read, config);
  const Architecture arch = config.architecture;
  if (arch == Architecture::Bloom) {
    // BLOOM's names, with the generic ones transformers maps onto them.
    read.positiveInt(root.contains("n_embed") ? "n_embed" : "hidden_size",
                     config.hiddenSize, true);
    read.positiveInt(
        root.contains("num_attention_heads") ? "num_attention_heads" : "n_head",
        config.numAttentionHeads, true);
    read.positiveInt(root.contains("num_hidden_layers") ? "num_hidden_layers"
                                                        : "n_layer",
                     config.numHiddenLayers, true);
    read.positiveInt("vocab_size", config.vocabSize, true);
    config.intermediateSize = 4 * config.hiddenSize;
    config.numKeyValueHeads = config.numAttentionHeads;
    config.normEps = 1e-5;
    config.tieWordEmbeddings = true;
    config.qkvBias = config.outputBias = config.mlpBias = true;
    read.positiveNumber("layer_norm_epsilon", config.normEps);
    read.boolean("tie_word_embeddings", config.tieWordEmbeddings);
    read.unsupportedUnless("apply_residual_connection_post_layernorm", false,
                           "only residuals taken before the layer norm are "
                           "supported");
    config.slidingLayers.assign(config.numHiddenLayers, false);
  } else {
    read.positiveInt("hidden_size", config.hiddenSize, true);
    read.positiveInt("intermediate_size", config.intermediateSize, true);
    read.positiveInt("num_attention_heads", config.numAttentionHeads, true);
    read.positiveInt("num_hidden_layers", config.numHiddenLayers, true);
    read.positiveInt("vocab_size", config.vocabSize, true);
    read.positiveInt("num_key_value_heads", config.numKeyValueHeads, false);
    read.positiveInt("head_dim", config.headDim, false);
    if (arch == Architecture::Mixtral) {
      config.normEps = 1e-5;
      config.ropeTheta = 1e6;
      config.numLocalExperts = 8;
      config.numExpertsPerTok = 2;
      read.positiveInt("num_local_experts", config.numLocalExperts, false);
      read.positiveInt("num_experts_per_tok", config.numExpertsPerTok, false);
      if (read.error.empty() &&
          config.numExpertsPerTok > config.numLocalExperts)
        read.fail("field 'num_experts_per_tok' (" +
                  std::to_string(config.numExpertsPerTok) +
                  ") exceeds num_local_experts (" +
                  std::to_string(config.numLocalExperts) + ")");
    }
    read.positiveNumber("rms_norm_eps", config.normEps);
    readRope(root, read, path, config);
    read.boolean("tie_word_embeddings", config.tieWordEmbeddings);
    read.unsupportedUnless("hidden_act", "silu", "only \"silu\" is supported");
    if (arch == Architecture::Qwen2) {
      config.qkvBias = true;
    } else if (arch == Architecture::Llama) {
      read.boolean("attention_bias", config.qkvBias);
      config.outputBias = config.qkvBias;
      read.boolean("mlp_bias", config.mlpBias);
    }
    if (arch == Architecture::Llama)
      config.slidingLayers.assign(config.numHiddenLayers, false);
    else
      readSlidingWindow(root, read, config);
  }
  if (!read.error.empty())
    return makeError(path.str() + ": " + read.error);

  if (config.numKeyValueHeads == 0)
    config.numKeyValueHeads = config.numAttentionHeads;
  if (config.headDim == 0) {
    if (config.hiddenSize % config.numAttentionHeads != 0)
      return makeError(path.str() + ": hidden_size (" +
                       std::to_string(config.hiddenSize) +
                       ") is not a multiple of num_attention_heads (" +
                       std::to_string(config.numAttentionHeads) +
                       "); give head_dim explicitly");
    config.headDim = config.hiddenSize / config.numAttentionHeads;
  }
  if (config.numAttentionHeads % config.numKeyValueHeads != 0)
    return makeError(path.str() + ": num_attention_heads (" +
                     std::to_string(config.numAttentionHeads) +
                     ") is not a multiple of num_key_value_heads (" +
                     std::to_string(config.numKeyValueHeads) + ")");
  if (arch != Architecture::Bloom && config.headDim % 2 != 0)
    return makeError(path.str() + ": the head dimension (" +
                     std::to_string(config.headDim) +
                     ") must be even for rotary embeddings");
  return config;
}

llvm::Expected<ModelConfig>
weft::frontend::readModelConfig(llvm::StringRef path) {
  llvm::SmallString<256> file(path);
  if (llvm::sys::fs::is_directory(file))
    llvm::sys::path::append(file, "config.json");
  auto buffer = llvm::MemoryBuffer::getFile(file, /*IsText=*/true);
  if (!buffer)
    return makeError(std::string(file) + ": " + buffer.getError().message());
  return parseModelConfig((*buffer)->getBuffer(), file);
}
