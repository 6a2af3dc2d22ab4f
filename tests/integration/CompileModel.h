// The tests' one way to compile a Hugging Face model folder into a plan.
#ifndef WEFT_TESTS_INTEGRATION_COMPILEMODEL_H
#define WEFT_TESTS_INTEGRATION_COMPILEMODEL_H

#include "codegen/PlanBuilder.h"
#include "frontend/HuggingFace/ModelBuilder.h"
#include "passes/Pipeline.h"

#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

namespace weft::testing {

/// The model in folder `dir` as `options` build it, compiled for `device`
/// with a plan for 2 threads — a training step's gradients too under `train`,
/// with weft-rematerialize's `remat` policy and budget, and with the
/// optimizer's update when `optimizer` is given.
/// The same with every pipeline option (a strategy's dp, zero, sp, tp).
inline plan::Plan compileModel(const std::string &dir,
                               const frontend::BuildOptions &options,
                               codegen::Device device,
                               const PipelineOptions &pipeline) {
  mlir::MLIRContext context;
  auto config = frontend::readModelConfig(dir);
  EXPECT_TRUE(static_cast<bool>(config));
  auto module = frontend::buildForward(context, *config, options);
  mlir::PassManager pm(&context);
  std::string error;
  PipelineOptions planned = pipeline;
  planned.device = device == codegen::Device::Cuda ? "cuda" : "cpu";
  EXPECT_TRUE(succeeded(buildPipeline(pm, planned, error))) << error;
  EXPECT_TRUE(succeeded(pm.run(*module)));
  auto plan = codegen::buildPlan(*module, {dir, "", device});
  EXPECT_TRUE(succeeded(plan));
  return succeeded(plan) ? *plan : plan::Plan();
}

inline plan::Plan
compileModel(const std::string &dir, const frontend::BuildOptions &options,
             codegen::Device device = codegen::Device::Cpu, bool train = false,
             const std::string &remat = "none", int64_t rematBudget = 0,
             std::optional<OptimizerOptions> optimizer = std::nullopt) {
  return compileModel(dir, options, device,
                      {"", 2, train, "", remat, rematBudget, optimizer});
}

} // namespace weft::testing

#endif // WEFT_TESTS_INTEGRATION_COMPILEMODEL_H
