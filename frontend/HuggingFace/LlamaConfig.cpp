// Reading LlamaForCausalLM's config.json.
#include "frontend/HuggingFace/LlamaConfig.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <nlohmann/json.hpp>

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
} // namespace

llvm::Expected<LlamaConfig>
weft::frontend::parseLlamaConfig(llvm::StringRef text, llvm::StringRef path) {
  json root = json::parse(text.begin(), text.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (root.is_discarded())
    return makeError(path.str() + ": not valid JSON");
  if (!root.is_object())
    return makeError(path.str() + ": expected a JSON object, found " +
                     root.type_name());

  LlamaConfig config;
  config.path = path.str();
  FieldReader read(root, path);
  if (auto arch = root.find("architectures"); arch != root.end()) {
    if (!arch->is_array() || std::find(arch->begin(), arch->end(),
                                       "LlamaForCausalLM") == arch->end())
      read.fail("field 'architectures' is " + arch->dump() +
                "; this builder reads LlamaForCausalLM");
  }
  read.positiveInt("hidden_size", config.hiddenSize, true);
  read.positiveInt("intermediate_size", config.intermediateSize, true);
  read.positiveInt("num_attention_heads", config.numAttentionHeads, true);
  read.positiveInt("num_hidden_layers", config.numHiddenLayers, true);
  read.positiveInt("vocab_size", config.vocabSize, true);
  read.positiveInt("num_key_value_heads", config.numKeyValueHeads, false);
  read.positiveInt("head_dim", config.headDim, false);
  read.positiveNumber("rms_norm_eps", config.rmsNormEps);
  read.positiveNumber("rope_theta", config.ropeTheta);
  // transformers 5 writes {"rope_parameters": {"rope_type", "rope_theta"}}.
  if (auto rope = root.find("rope_parameters");
      rope != root.end() && !rope->is_null()) {
    if (!rope->is_object()) {
      read.fail("field 'rope_parameters' must be an object, found " +
                rope->dump());
    } else {
      FieldReader ropeRead(*rope, path, "rope_parameters.");
      ropeRead.positiveNumber("rope_theta", config.ropeTheta);
      ropeRead.unsupportedUnless(
          "rope_type", "default",
          "only the default rotary embedding is supported yet");
      if (!ropeRead.error.empty())
        read.fail(ropeRead.error);
    }
  }
  read.boolean("tie_word_embeddings", config.tieWordEmbeddings);
  read.unsupportedUnless("hidden_act", "silu", "only \"silu\" is supported");
  read.unsupportedUnless("attention_bias", false,
                         "attention biases are not supported yet");
  read.unsupportedUnless("mlp_bias", false, "MLP biases are not supported yet");
  read.unsupportedUnless("rope_scaling", json(),
                         "rope_scaling is not supported yet");
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
  if (config.headDim % 2 != 0)
    return makeError(path.str() + ": the head dimension (" +
                     std::to_string(config.headDim) +
                     ") must be even for rotary embeddings");
  return config;
}

llvm::Expected<LlamaConfig>
weft::frontend::readLlamaConfig(llvm::StringRef path) {
  llvm::SmallString<256> file(path);
  if (llvm::sys::fs::is_directory(file))
    llvm::sys::path::append(file, "config.json");
  auto buffer = llvm::MemoryBuffer::getFile(file, /*IsText=*/true);
  if (!buffer)
    return makeError(std::string(file) + ": " + buffer.getError().message());
  return parseLlamaConfig((*buffer)->getBuffer(), file);
}
