// config.json reading: defaults, and errors that name the field.
#include "frontend/HuggingFace/LlamaConfig.h"

#include <gtest/gtest.h>

using namespace weft::frontend;

namespace {
const char *kTiny = R"({"hidden_size": 64, "intermediate_size": 128,
  "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100})";

std::string errorOf(llvm::StringRef json) {
  auto config = parseLlamaConfig(json, "cfg.json");
  EXPECT_FALSE(static_cast<bool>(config));
  return config ? "" : llvm::toString(config.takeError());
}
} // namespace

TEST(LlamaConfig, AppliesTransformersDefaults) {
  auto config = parseLlamaConfig(kTiny, "cfg.json");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->numKeyValueHeads, 4);
  EXPECT_EQ(config->headDim, 16);
  EXPECT_DOUBLE_EQ(config->rmsNormEps, 1e-6);
  EXPECT_DOUBLE_EQ(config->ropeTheta, 10000.0);
  EXPECT_FALSE(config->tieWordEmbeddings);
}

TEST(LlamaConfig, ReadsOptionalFields) {
  auto config = parseLlamaConfig(
      R"({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
          "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 100,
          "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": true,
          "head_dim": 32, "architectures": ["LlamaForCausalLM"], "rope_scaling": null})",
      "cfg.json");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->numKeyValueHeads, 2);
  EXPECT_EQ(config->headDim, 32);
  EXPECT_DOUBLE_EQ(config->rmsNormEps, 1e-5);
  EXPECT_DOUBLE_EQ(config->ropeTheta, 500000.0);
  EXPECT_TRUE(config->tieWordEmbeddings);
}

TEST(LlamaConfig, MissingFieldIsNamed) {
  EXPECT_EQ(errorOf(R"({"hidden_size": 64})"),
            "cfg.json: required field 'intermediate_size' is missing");
}

TEST(LlamaConfig, WrongTypeIsNamed) {
  std::string error = errorOf(
      R"({"hidden_size": "64", "intermediate_size": 128, "num_attention_heads": 4,
          "num_hidden_layers": 2, "vocab_size": 100})");
  EXPECT_EQ(error, "cfg.json: field 'hidden_size' must be a positive integer, "
                   "found \"64\" (string)");
  EXPECT_NE(errorOf(R"({"hidden_size": 64, "intermediate_size": 128,
      "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100,
      "tie_word_embeddings": 1})")
                .find("field 'tie_word_embeddings' must be true or false"),
            std::string::npos);
  EXPECT_NE(
      errorOf(R"({"hidden_size": 64, "intermediate_size": 128,
      "num_attention_heads": 4, "num_hidden_layers": 0, "vocab_size": 100})")
          .find(
              "field 'num_hidden_layers' must be a positive integer, found 0"),
      std::string::npos);
}

TEST(LlamaConfig, RejectsWhatItCannotBuild) {
  EXPECT_NE(errorOf(R"({"architectures": ["BloomForCausalLM"]})")
                .find("LlamaForCausalLM"),
            std::string::npos);
  std::string base = R"("hidden_size": 64, "intermediate_size": 128,
      "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100)";
  EXPECT_NE(
      errorOf("{" + base + R"(, "rope_scaling": {"rope_type": "llama3"}})")
          .find("field 'rope_scaling'"),
      std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "num_key_value_heads": 3})")
                .find("not a multiple of num_key_value_heads (3)"),
            std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "hidden_act": "gelu"})")
                .find("field 'hidden_act'"),
            std::string::npos);
}

TEST(LlamaConfig, RejectsMalformedJson) {
  EXPECT_EQ(errorOf("{\"hidden_size\": "), "cfg.json: not valid JSON");
  EXPECT_EQ(errorOf("[1, 2]"), "cfg.json: expected a JSON object, found array");
}

TEST(LlamaConfig, ReadsTheShippedExample) {
  auto config = readLlamaConfig(WEFT_SOURCE_DIR "/examples/tiny-llama");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->hiddenSize, 256);
  EXPECT_EQ(config->numHiddenLayers, 4);
  EXPECT_EQ(config->numKeyValueHeads, 4);
}

TEST(LlamaConfig, MissingFileIsNamed) {
  auto config = readLlamaConfig("/nonexistent/config.json");
  ASSERT_FALSE(static_cast<bool>(config));
  EXPECT_NE(llvm::toString(config.takeError()).find("/nonexistent/config.json"),
            std::string::npos);
}

TEST(LlamaConfig, ReadsTransformers5RopeParameters) {
  std::string base = R"("hidden_size": 64, "intermediate_size": 128,
      "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100)";
  auto config = parseLlamaConfig(
      "{" + base +
          R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}})",
      "cfg.json");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_DOUBLE_EQ(config->ropeTheta, 500000.0);
  EXPECT_EQ(
      errorOf(
          "{" + base +
          R"(, "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}})"),
      "cfg.json: field 'rope_parameters.rope_type' is \"llama3\": only the "
      "default rotary embedding is supported yet");
}
