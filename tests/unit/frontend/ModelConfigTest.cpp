// config.json reading: defaults, and errors that name the field.
#include "frontend/HuggingFace/ModelConfig.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace weft::frontend;

namespace {
const char *kTiny = R"({"hidden_size": 64, "intermediate_size": 128,
  "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100})";

std::string errorOf(llvm::StringRef json) {
  auto config = parseModelConfig(json, "cfg.json");
  EXPECT_FALSE(static_cast<bool>(config));
  return config ? "" : llvm::toString(config.takeError());
}
} // namespace

TEST(ModelConfig, AppliesTransformersDefaults) {
  auto config = parseModelConfig(kTiny, "cfg.json");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->numKeyValueHeads, 4);
  EXPECT_EQ(config->headDim, 16);
  EXPECT_DOUBLE_EQ(config->normEps, 1e-6);
  EXPECT_DOUBLE_EQ(config->ropeTheta, 10000.0);
  EXPECT_FALSE(config->tieWordEmbeddings);
}

TEST(ModelConfig, ReadsOptionalFields) {
  auto config = parseModelConfig(
      R"({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
          "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 100,
          "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "tie_word_embeddings": true,
          "head_dim": 32, "architectures": ["LlamaForCausalLM"], "rope_scaling": null})",
      "cfg.json");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->numKeyValueHeads, 2);
  EXPECT_EQ(config->headDim, 32);
  EXPECT_DOUBLE_EQ(config->normEps, 1e-5);
  EXPECT_DOUBLE_EQ(config->ropeTheta, 500000.0);
  EXPECT_TRUE(config->tieWordEmbeddings);
}

TEST(ModelConfig, MissingFieldIsNamed) {
  EXPECT_EQ(errorOf(R"({"hidden_size": 64})"),
            "cfg.json: required field 'intermediate_size' is missing");
}

TEST(ModelConfig, WrongTypeIsNamed) {
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

TEST(ModelConfig, RejectsWhatItCannotBuild) {
  EXPECT_NE(errorOf(R"({"architectures": ["GPT2LMHeadModel"]})")
                .find("'architectures' is [\"GPT2LMHeadModel\"]; weft builds "
                      "LlamaForCausalLM, MistralForCausalLM"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "gpt2"})")
                .find("field 'model_type' is \"gpt2\""),
            std::string::npos);
  std::string base = R"("hidden_size": 64, "intermediate_size": 128,
      "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100)";
  EXPECT_NE(errorOf("{" + base +
                    R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4}})")
                .find("field 'rope_scaling.rope_type' is \"yarn\""),
            std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "rope_scaling": {"type": "linear"}})")
                .find("'rope_scaling.factor' is missing"),
            std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "num_key_value_heads": 3})")
                .find("not a multiple of num_key_value_heads (3)"),
            std::string::npos);
  EXPECT_NE(errorOf("{" + base + R"(, "hidden_act": "gelu"})")
                .find("field 'hidden_act'"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"architectures": ["BloomForCausalLM"], "n_head": 4,
      "n_layer": 2, "hidden_size": 64, "vocab_size": 10,
      "apply_residual_connection_post_layernorm": true})")
                .find("'apply_residual_connection_post_layernorm'"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"architectures": ["Qwen2ForCausalLM"], )" + base +
                    R"(, "layer_types": ["full_attention"]})")
                .find("one type per layer (2)"),
            std::string::npos);
}

TEST(ModelConfig, EachArchitectureGetsItsDefaults) {
  std::string base = R"("hidden_size": 64, "intermediate_size": 128,
      "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100)";
  auto mistral = parseModelConfig(
      R"({"architectures": ["MistralForCausalLM"], "sliding_window": 16, )" +
          base + "}",
      "cfg.json");
  ASSERT_TRUE(static_cast<bool>(mistral))
      << llvm::toString(mistral.takeError());
  EXPECT_EQ(mistral->architecture, Architecture::Mistral);
  EXPECT_EQ(mistral->slidingWindow, 16);
  EXPECT_EQ(mistral->slidingLayers, (std::vector<bool>{true, true}));

  auto qwen = parseModelConfig(R"({"model_type": "qwen2", "sliding_window": 8,
      "use_sliding_window": true, "max_window_layers": 1, )" +
                                   base + "}",
                               "cfg.json");
  ASSERT_TRUE(static_cast<bool>(qwen)) << llvm::toString(qwen.takeError());
  EXPECT_TRUE(qwen->qkvBias);
  EXPECT_FALSE(qwen->outputBias);
  EXPECT_EQ(qwen->slidingLayers, (std::vector<bool>{false, true}));

  auto mixtral = parseModelConfig(
      R"({"architectures": ["MixtralForCausalLM"], )" + base + "}", "cfg.json");
  ASSERT_TRUE(static_cast<bool>(mixtral))
      << llvm::toString(mixtral.takeError());
  EXPECT_EQ(mixtral->numLocalExperts, 8);
  EXPECT_EQ(mixtral->numExpertsPerTok, 2);
  EXPECT_DOUBLE_EQ(mixtral->ropeTheta, 1e6);
  EXPECT_DOUBLE_EQ(mixtral->normEps, 1e-5);

  auto bloom = parseModelConfig(R"({"architectures": ["BloomForCausalLM"],
      "n_head": 6, "n_layer": 3, "hidden_size": 48, "vocab_size": 10})",
                                "cfg.json");
  ASSERT_TRUE(static_cast<bool>(bloom)) << llvm::toString(bloom.takeError());
  EXPECT_EQ(bloom->numAttentionHeads, 6);
  EXPECT_EQ(bloom->numHiddenLayers, 3);
  EXPECT_EQ(bloom->intermediateSize, 192);
  EXPECT_EQ(bloom->headDim, 8);
  EXPECT_TRUE(bloom->tieWordEmbeddings);
  EXPECT_DOUBLE_EQ(bloom->normEps, 1e-5);
}

TEST(ModelConfig, Llama3RopeScalingRescalesLowFrequencies) {
  auto config = parseModelConfig(
      R"({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
          "num_hidden_layers": 1, "vocab_size": 10,
          "rope_scaling": {"rope_type": "llama3", "rope_theta": 500000.0,
            "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64}})",
      "cfg.json");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  std::vector<double> f = config->ropeFrequencies();
  ASSERT_EQ(f.size(), 16u);
  for (int j = 0; j < 16; ++j) {
    const double plain = 1.0 / std::pow(500000.0, 2.0 * j / 32);
    const double wavelen = 2 * M_PI / plain;
    if (wavelen < 64 / 4.0) // high frequencies are kept
      EXPECT_NEAR(f[j], plain, plain * 1e-6) << j;
    else if (wavelen > 64 / 1.0) // low ones divided by the factor
      EXPECT_NEAR(f[j], plain / 8, plain * 1e-6) << j;
    else // and the band between interpolated
      EXPECT_TRUE(f[j] < plain && f[j] > plain / 8) << j;
  }
}

TEST(ModelConfig, RejectsMalformedJson) {
  EXPECT_EQ(errorOf("{\"hidden_size\": "), "cfg.json: not valid JSON");
  EXPECT_EQ(errorOf("[1, 2]"), "cfg.json: expected a JSON object, found array");
}

TEST(ModelConfig, ReadsTheShippedExample) {
  auto config = readModelConfig(WEFT_SOURCE_DIR "/examples/tiny-llama");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_EQ(config->hiddenSize, 256);
  EXPECT_EQ(config->numHiddenLayers, 4);
  EXPECT_EQ(config->numKeyValueHeads, 4);
}

TEST(ModelConfig, MissingFileIsNamed) {
  auto config = readModelConfig("/nonexistent/config.json");
  ASSERT_FALSE(static_cast<bool>(config));
  EXPECT_NE(llvm::toString(config.takeError()).find("/nonexistent/config.json"),
            std::string::npos);
}

TEST(ModelConfig, ReadsTransformers5RopeParameters) {
  std::string base = R"("hidden_size": 64, "intermediate_size": 128,
      "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 100)";
  auto config = parseModelConfig(
      "{" + base +
          R"(, "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}})",
      "cfg.json");
  ASSERT_TRUE(static_cast<bool>(config)) << llvm::toString(config.takeError());
  EXPECT_DOUBLE_EQ(config->ropeTheta, 500000.0);
}
