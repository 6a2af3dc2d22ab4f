// The Llama graph builder: parameters as in HF checkpoints, a valid graph.
#include "frontend/HuggingFace/ModelBuilder.h"
#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace weft;
using namespace weft::frontend;

namespace {
ModelConfig smallConfig() {
  ModelConfig config;
  config.hiddenSize = 64;
  config.intermediateSize = 96;
  config.numAttentionHeads = 8;
  config.numKeyValueHeads = 2;
  config.numHiddenLayers = 3;
  config.vocabSize = 100;
  config.headDim = 8;
  config.path = "test";
  return config;
}

struct Params {
  std::vector<std::string> names;
  int64_t elements = 0;
};

Params paramsOf(func::FuncOp func) {
  Params params;
  for (BlockArgument arg : func.getArguments()) {
    auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  WeftDialect::kParamAttrName);
    if (!name)
      continue;
    params.names.push_back(name.str());
    params.elements += cast<RankedTensorType>(arg.getType()).getNumElements();
  }
  return params;
}
} // namespace

TEST(LlamaBuilder, ParametersMatchTheCheckpointLayout) {
  MLIRContext context;
  ModelConfig config = smallConfig();
  auto module = buildForward(context, config, {2, 16, "f32"});
  ASSERT_TRUE(module);
  ASSERT_TRUE(succeeded(verify(*module)));
  auto func = module->lookupSymbol<func::FuncOp>("forward");
  ASSERT_TRUE(func);

  Params params = paramsOf(func);
  ASSERT_EQ(params.names.size(), 1 + 9 * 3 + 2u);
  EXPECT_EQ(params.names.front(), "model.embed_tokens.weight");
  EXPECT_EQ(params.names[1], "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(params.names[9], "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(params.names.back(), "lm_head.weight");
  // transformers' LlamaForCausalLM parameter count for this config.
  int64_t h = 64, i = 96, v = 100, q = 8 * 8, kv = 2 * 8;
  int64_t perLayer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h;
  EXPECT_EQ(params.elements, v * h + 3 * perLayer + h + v * h);

  EXPECT_EQ(
      func.getArgAttrOfType<StringAttr>(0, WeftDialect::kInputAttrName).str(),
      "input_ids");
  auto logits = cast<RankedTensorType>(func.getResultTypes()[0]);
  EXPECT_EQ(logits.getShape(), ArrayRef<int64_t>({2, 16, 100}));
}

TEST(LlamaBuilder, TiedEmbeddingsHaveNoLmHead) {
  MLIRContext context;
  ModelConfig config = smallConfig();
  config.tieWordEmbeddings = true;
  auto module = buildForward(context, config, {1, 8, "bf16"});
  ASSERT_TRUE(module);
  ASSERT_TRUE(succeeded(verify(*module)));
  auto func = module->lookupSymbol<func::FuncOp>("forward");
  Params params = paramsOf(func);
  EXPECT_EQ(params.names.back(), "model.norm.weight");
  // The lm_head reads the embedding table.
  int attentionOps = 0;
  func.walk([&](LinearOp linear) {
    if (linear.getType().getShape().back() == 100)
      EXPECT_EQ(linear.getWeight(), func.getArgument(1));
  });
  func.walk([&](AttentionOp op) {
    ++attentionOps;
    EXPECT_EQ(op.getKind(), AttentionKind::causal);
    EXPECT_TRUE(op.getResult().getType().getElementType().isBF16());
  });
  EXPECT_EQ(attentionOps, 3);
}

TEST(LlamaBuilder, RejectsBadOptions) {
  MLIRContext context;
  std::string message;
  ScopedDiagnosticHandler handler(&context, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  EXPECT_FALSE(buildForward(context, smallConfig(), {1, 8, "f64"}));
  EXPECT_EQ(message, "unknown dtype 'f64'; expected f32 or bf16");
  EXPECT_FALSE(buildForward(context, smallConfig(), {0, 8, "f32"}));
  EXPECT_EQ(
      message,
      "batch and sequence length must be positive, found batch 0 and seq 8");
}
