// ONNX exports of the tiny Hugging Face fixtures (tests/fixtures/
// make_onnx_fixtures.py: torch.onnx.export with a dynamic sequence axis)
// imported with static input shapes, compiled and run on the CPU; their logits
// against HF's own.
#include "RelativeError.h"
#include "codegen/CpuPlanBuilder.h"
#include "frontend/Onnx/OnnxImporter.h"
#include "passes/Pipeline.h"
#include "runtime/HostTensor.h"
#include "runtime/cpu/CpuExecutor.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace weft;
namespace rt = weft::runtime;
using weft::testing::relativeError;

namespace {
const std::string kFixtures = WEFT_SOURCE_DIR "/tests/fixtures/";

class OnnxExport : public ::testing::TestWithParam<const char *> {};

TEST_P(OnnxExport, MatchesHuggingFace) {
  const std::string dir = kFixtures + GetParam(), model = dir + "/model.onnx";
  mlir::MLIRContext context;
  frontend::OnnxImportError error;
  auto module =
      frontend::importOnnx(context, model, {{{"input_ids", {2, 32}}}}, error);
  ASSERT_TRUE(module) << error.message;
  ASSERT_TRUE(succeeded(mlir::verify(*module)));
  mlir::PassManager pm(&context);
  std::string pipelineError;
  ASSERT_TRUE(succeeded(buildPipeline(pm, {"", 2}, pipelineError)))
      << pipelineError;
  ASSERT_TRUE(succeeded(pm.run(*module)));
  auto plan = codegen::buildCpuPlan(*module, {model, ""});
  ASSERT_TRUE(succeeded(plan));
  rt::CpuExecutor executor(*plan, model, 2);
  executor.setInput("input_ids", rt::readNpy(dir + "/input_ids.npy"));
  executor.run();
  const double relative = relativeError(executor.output("logits"),
                                        rt::readNpy(dir + "/logits.npy"));
  EXPECT_LT(relative, 1e-4);
  RecordProperty("max_relative_error", std::to_string(relative));
  std::printf("%s/model.onnx: max |weft - HF| relative to max |logit| %.3g\n",
              GetParam(), relative);
}

// Mixtral is not among them: torch.onnx.export has no conversion for
// transformers' grouped_mm expert kernel.
INSTANTIATE_TEST_SUITE_P(Exports, OnnxExport,
                         ::testing::Values("tiny-llama3", "tiny-mistral",
                                           "tiny-qwen2", "tiny-bloom"),
                         [](const auto &info) {
                           std::string name = info.param;
                           name.erase(0, 5); // "tiny-"
                           return name;
                         });
} // namespace
