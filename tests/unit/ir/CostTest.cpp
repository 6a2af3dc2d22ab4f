// The cost interface against hand-derived formulas: a whole Llama forward,
// attention's causal and sliding-window pair counts, and the collectives' ring
// volumes.
#include "frontend/HuggingFace/ModelBuilder.h"
#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Parser/Parser.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace weft;

namespace {
OpCost totalCost(Operation *root) {
  OpCost total;
  root->walk([&](CostOpInterface op) { total += op.getCost(); });
  return total;
}

/// Parses `body` as the body of a function with the given arguments and
/// returns the cost of its first weft op.
OpCost costOfFirstOp(MLIRContext &context, const std::string &source) {
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &context);
  EXPECT_TRUE(module) << source;
  OpCost cost;
  bool found = false;
  module->walk([&](CostOpInterface op) {
    if (!found)
      cost = op.getCost();
    found = true;
  });
  EXPECT_TRUE(found);
  return cost;
}

class CostTest : public ::testing::Test {
protected:
  CostTest() { context.loadDialect<WeftDialect, func::FuncDialect>(); }
  MLIRContext context;
};
} // namespace

TEST_F(CostTest, LlamaForwardMatchesTheHandFormula) {
  frontend::ModelConfig config;
  config.hiddenSize = 256;
  config.intermediateSize = 688;
  config.numAttentionHeads = 8;
  config.numKeyValueHeads = 4;
  config.numHiddenLayers = 4;
  config.vocabSize = 512;
  config.headDim = 32;
  config.path = "test";
  const int64_t batch = 2, seq = 64;
  auto module = frontend::buildForward(context, config, {batch, seq, "bf16"});
  ASSERT_TRUE(module);

  const int64_t t = batch * seq, h = 256, i = 688, v = 512, d = 32;
  const int64_t q = 8 * d, kv = 4 * d, layers = 4;
  int64_t linear =
      2 * t * h * q + 2 * 2 * t * h * kv + 2 * t * q * h + 3 * 2 * t * h * i;
  int64_t attention = batch * 8 * (seq * (seq + 1) / 2) * (2 * d + 2 * d);
  int64_t norms = 2 * 4 * t * h;
  int64_t rope = 3 * t * (q + kv);
  int64_t residual = 2 * t * h;
  int64_t swiglu = 2 * t * i;
  int64_t perLayer = linear + attention + norms + rope + residual + swiglu;
  int64_t expected = layers * perLayer + 4 * t * h + 2 * t * h * v;

  OpCost cost = totalCost(*module);
  EXPECT_TRUE(cost.isKnown);
  EXPECT_EQ(cost.flops, expected);
  EXPECT_EQ(cost.commBytes, 0);
  EXPECT_EQ(cost.transferBytes, 0);
}

TEST_F(CostTest, LinearCountsMultiplyAddsBiasAndTraffic) {
  OpCost cost = costOfFirstOp(context, R"(
    func.func @f(%x: tensor<4x32xbf16>, %w: tensor<16x32xbf16>, %b: tensor<16xbf16>) {
      %0 = weft.linear %x, %w, %b : (tensor<4x32xbf16>, tensor<16x32xbf16>, tensor<16xbf16>) -> tensor<4x16xbf16>
      return
    })");
  EXPECT_EQ(cost.flops, 2 * 4 * 16 * 32 + 4 * 16);
  EXPECT_EQ(cost.memoryBytes, 2 * (4 * 32 + 16 * 32 + 16 + 4 * 16));
}

TEST_F(CostTest, AttentionCountsOnlyAttendingPairs) {
  const char *causal = R"(
    func.func @f(%q: tensor<1x8x2x4xf32>, %k: tensor<1x12x1x4xf32>, %v: tensor<1x12x1x6xf32>) {
      %0 = weft.attention causal %q, %k, %v : (tensor<1x8x2x4xf32>, tensor<1x12x1x4xf32>, tensor<1x12x1x6xf32>) -> tensor<1x8x2x6xf32>
      return
    })";
  // Queries are the last 8 of 12 positions: query i sees 4 + i + 1 keys.
  int64_t pairs = 0;
  for (int64_t i = 0; i < 8; ++i)
    pairs += 4 + i + 1;
  OpCost cost = costOfFirstOp(context, causal);
  EXPECT_EQ(cost.flops, 2 * pairs * (2 * 4 + 2 * 6));
  // Never the scores: q, k, v read and the output written once.
  EXPECT_EQ(cost.memoryBytes, 4 * (8 * 2 * 4 + 12 * 4 + 12 * 6 + 8 * 2 * 6));

  OpCost full = costOfFirstOp(context, R"(
    func.func @f(%q: tensor<1x8x2x4xf32>, %k: tensor<1x12x1x4xf32>, %v: tensor<1x12x1x6xf32>) {
      %0 = weft.attention full %q, %k, %v : (tensor<1x8x2x4xf32>, tensor<1x12x1x4xf32>, tensor<1x12x1x6xf32>) -> tensor<1x8x2x6xf32>
      return
    })");
  EXPECT_EQ(full.flops, 2 * 8 * 12 * (2 * 4 + 2 * 6));

  // A sliding window of 3: query at position p sees min(p + 1, 3) keys.
  OpCost window = costOfFirstOp(context, R"(
    func.func @f(%q: tensor<1x8x2x4xf32>, %k: tensor<1x12x1x4xf32>, %v: tensor<1x12x1x6xf32>) {
      %0 = weft.attention causal %q, %k, %v window 3 : (tensor<1x8x2x4xf32>, tensor<1x12x1x4xf32>, tensor<1x12x1x6xf32>) -> tensor<1x8x2x6xf32>
      return
    })");
  int64_t windowPairs = 0;
  for (int64_t p = 4; p < 12; ++p)
    windowPairs += std::min<int64_t>(p + 1, 3);
  EXPECT_EQ(window.flops, 2 * windowPairs * (2 * 4 + 2 * 6));
}

TEST_F(CostTest, CollectivesUseRingVolumes) {
  // 64x64 f32 = 16 KiB; groups of 4 ranks on "sp", 8 on dp x sp.
  std::string prefix = R"(func.func @f(%x: tensor<64x64xf32>) {)";
  std::string mesh = R"(#weft.mesh<["dp"=2, "sp"=4]>)";
  auto cost = [&](const std::string &op) {
    return costOfFirstOp(context, prefix + op + "\n return }");
  };
  const int64_t bytes = 64 * 64 * 4;
  EXPECT_EQ(cost("%0 = weft.all_gather %x on " + mesh +
                 R"( ["sp"] dim 0 : (tensor<64x64xf32>) -> tensor<256x64xf32>)")
                .commBytes,
            4 * bytes * 3 / 4);
  EXPECT_EQ(
      cost("%0 = weft.reduce_scatter sum %x on " + mesh +
           R"( ["dp", "sp"] dim 0 : (tensor<64x64xf32>) -> tensor<8x64xf32>)")
          .commBytes,
      bytes * 7 / 8);
  EXPECT_EQ(cost("%0 = weft.all_reduce sum %x on " + mesh +
                 R"( ["sp"] : tensor<64x64xf32>)")
                .commBytes,
            2 * bytes * 3 / 4);
  EXPECT_EQ(
      cost(
          "%0 = weft.all_to_all %x on " + mesh +
          R"( ["sp"] split 0 concat 1 : (tensor<64x64xf32>) -> tensor<16x256xf32>)")
          .commBytes,
      bytes * 3 / 4);
  EXPECT_EQ(cost("weft.send %x on " + mesh +
                 R"( ["sp"] offset 1 : tensor<64x64xf32>)")
                .commBytes,
            bytes);
  OpCost offload = cost(
      R"(%0 = weft.offload %x : (tensor<64x64xf32>) -> tensor<64x64xf32, #weft.host>)");
  EXPECT_EQ(offload.transferBytes, bytes);
  EXPECT_EQ(offload.memoryBytes, 0);
}

TEST_F(CostTest, DynamicShapesAreUnknown) {
  OpCost cost = costOfFirstOp(context, R"(
    func.func @f(%x: tensor<?x32xf32>, %w: tensor<16x32xf32>) {
      %0 = weft.linear %x, %w : (tensor<?x32xf32>, tensor<16x32xf32>) -> tensor<?x16xf32>
      return
    })");
  EXPECT_FALSE(cost.isKnown);
  EXPECT_EQ(cost.flops, 0);
}
