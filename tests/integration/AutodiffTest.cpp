// weft-autodiff's gradients against central finite differences of the same
// function's loss, both computed by CPU plans through the whole pipeline:
// one case per gradient rule (elementwise ops, shapes, linear, reductions,
// gather, RMSNorm, cross-entropy, RoPE, attention, the MoE ops) on random
// inputs.
#include "codegen/PlanBuilder.h"
#include "ir/WeftDialect.h"
#include "passes/Pipeline.h"
#include "passes/Train/Passes.h"
#include "runtime/cpu/CpuExecutor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

using namespace weft;
namespace rt = weft::runtime;

namespace {
/// `source` compiled for the CPU, differentiated first when `gradient`.
plan::Plan compile(const std::string &source, bool gradient) {
  mlir::MLIRContext context;
  context.loadDialect<WeftDialect, mlir::func::FuncDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  EXPECT_TRUE(module);
  mlir::PassManager pm(&context);
  if (gradient)
    pm.addNestedPass<mlir::func::FuncOp>(
        weft::createAutodiff(weft::AutodiffOptions{true, ""}));
  std::string error;
  EXPECT_TRUE(succeeded(buildPipeline(pm, {"", 2}, error))) << error;
  EXPECT_TRUE(succeeded(pm.run(*module)));
  auto plan = codegen::buildPlan(*module, {"autodiff", ""});
  EXPECT_TRUE(succeeded(plan));
  return succeeded(plan) ? *plan : plan::Plan();
}

std::vector<float> floatsOf(const rt::HostTensor &t) {
  std::vector<float> v(t.numElements());
  std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

/// Random inputs for the plan's arguments: floats N(0, 1) (positive where
/// `positive`), integers in [0, bound) with the last set to `ignore` when
/// `ignoreLast`.
std::vector<rt::HostTensor> randomInputs(const plan::Plan &plan, int64_t bound,
                                         bool ignoreLast) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<rt::HostTensor> inputs;
  for (const auto &input : plan.inputs()) {
    const plan::Buffer &buffer = plan.buffers(input.buffer());
    rt::HostTensor t{
        buffer.dtype(), {buffer.shape().begin(), buffer.shape().end()}, {}};
    t.bytes.resize(buffer.bytes());
    if (buffer.dtype() == plan::F32) {
      for (int64_t i = 0; i < t.numElements(); ++i)
        reinterpret_cast<float *>(t.bytes.data())[i] = normal(rng);
    } else {
      for (int64_t i = 0; i < t.numElements(); ++i)
        reinterpret_cast<int64_t *>(t.bytes.data())[i] = rng() % bound;
      if (ignoreLast)
        reinterpret_cast<int64_t *>(t.bytes.data())[t.numElements() - 1] = -100;
    }
    inputs.push_back(std::move(t));
  }
  return inputs;
}

/// Checks every float argument's gradient against central differences at
/// up to 16 of its elements.
void expectGradientsMatch(const std::string &source, int64_t bound = 4,
                          bool ignoreLast = false) {
  plan::Plan forward = compile(source, false);
  plan::Plan gradient = compile(source, true);
  auto inputs = randomInputs(forward, bound, ignoreLast);
  rt::CpuExecutor lossRun(forward, "forward");
  rt::CpuExecutor gradRun(gradient, "gradient");
  for (int i = 0; i < forward.inputs_size(); ++i) {
    lossRun.setInput(forward.inputs(i).name(), inputs[i]);
    gradRun.setInput(forward.inputs(i).name(), inputs[i]);
  }
  gradRun.run();
  auto loss = [&](const std::vector<rt::HostTensor> &at) {
    for (int i = 0; i < forward.inputs_size(); ++i)
      lossRun.setInput(forward.inputs(i).name(), at[i]);
    lossRun.run();
    return static_cast<double>(floatsOf(lossRun.output("result0"))[0]);
  };
  const double eps = 1e-2;
  // Central differences in f32: truncation O(eps²), rounding ≈ 1e-7·|loss|
  // per evaluation, over 2 eps.
  const double rounding = 1e-5 * std::abs(loss(inputs)) / eps;
  int checked = 0;
  for (int i = 0; i < forward.inputs_size(); ++i) {
    if (inputs[i].dtype != plan::F32)
      continue;
    const std::string name = forward.inputs(i).name();
    std::vector<float> grad = floatsOf(gradRun.output("grad." + name));
    ASSERT_EQ(static_cast<int64_t>(grad.size()), inputs[i].numElements());
    const int64_t n = inputs[i].numElements();
    for (int64_t k = 0; k < n; k += std::max<int64_t>(1, n / 16)) {
      auto plus = inputs, minus = inputs;
      reinterpret_cast<float *>(plus[i].bytes.data())[k] += eps;
      reinterpret_cast<float *>(minus[i].bytes.data())[k] -= eps;
      const double fd = (loss(plus) - loss(minus)) / (2 * eps);
      EXPECT_NEAR(grad[k], fd, 2e-3 * std::max(std::abs(fd), 1.0) + rounding)
          << name << "[" << k << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}
} // namespace

TEST(Autodiff, Arithmetic) {
  expectGradientsMatch(R"(
    func.func @f(%a: tensor<3x4xf32>, %b: tensor<3x4xf32>, %r: tensor<3x4xf32>) -> tensor<f32> {
      %s = weft.add %a, %b : tensor<3x4xf32>
      %d = weft.sub %s, %b : tensor<3x4xf32>
      %m = weft.mul %d, %b : tensor<3x4xf32>
      %e = weft.exp %r : tensor<3x4xf32>
      %q = weft.div %m, %e : tensor<3x4xf32>
      %n = weft.neg %q : tensor<3x4xf32>
      %w = weft.mul %n, %r : tensor<3x4xf32>
      %l = weft.reduce sum %w dims [0, 1] : (tensor<3x4xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, Transcendentals) {
  // Σ op(x)·r over each unary op, so that every rule shows in x's gradient
  // with a weight of order one.
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<16xf32>, %r: tensor<16xf32>) -> tensor<f32> {
      %e = weft.exp %x : tensor<16xf32>
      %t = weft.tanh %x : tensor<16xf32>
      %s = weft.sigmoid %x : tensor<16xf32>
      %u = weft.silu %x : tensor<16xf32>
      %lg = weft.log %e : tensor<16xf32>
      %rs = weft.rsqrt %e : tensor<16xf32>
      %st = weft.sqrt %e : tensor<16xf32>
      %c = weft.cos %x : tensor<16xf32>
      %sn = weft.sin %x : tensor<16xf32>
      %a1 = weft.add %t, %s : tensor<16xf32>
      %a2 = weft.add %a1, %u : tensor<16xf32>
      %a3 = weft.add %a2, %lg : tensor<16xf32>
      %a4 = weft.add %a3, %rs : tensor<16xf32>
      %a5 = weft.add %a4, %st : tensor<16xf32>
      %a6 = weft.add %a5, %c : tensor<16xf32>
      %a7 = weft.add %a6, %sn : tensor<16xf32>
      %a8 = weft.add %a7, %e : tensor<16xf32>
      %w = weft.mul %a8, %r : tensor<16xf32>
      %l = weft.reduce sum %w dims [0] : (tensor<16xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, ShapesAndMean) {
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<4x6xf32>, %v: tensor<6xf32>, %r: tensor<3x8xf32>) -> tensor<f32> {
      %b = weft.broadcast %v dims [1] : tensor<6xf32> -> tensor<4x6xf32>
      %s = weft.mul %x, %b : tensor<4x6xf32>
      %t = weft.transpose %s [1, 0] : (tensor<4x6xf32>) -> tensor<6x4xf32>
      %f = weft.reshape %t : tensor<6x4xf32> -> tensor<3x8xf32>
      %w = weft.mul %f, %r : tensor<3x8xf32>
      %m = weft.reduce mean %w dims [1] : (tensor<3x8xf32>) -> tensor<3xf32>
      %l = weft.reduce sum %m dims [0] : (tensor<3xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, LinearWithBias) {
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<5x8xf32>, %b: tensor<5xf32>, %r: tensor<2x3x5xf32>) -> tensor<f32> {
      %y = weft.linear %x, %w, %b : (tensor<2x3x8xf32>, tensor<5x8xf32>, tensor<5xf32>) -> tensor<2x3x5xf32>
      %p = weft.mul %y, %r : tensor<2x3x5xf32>
      %l = weft.reduce sum %p dims [0, 1, 2] : (tensor<2x3x5xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, RmsNorm) {
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<2x3x8xf32>, %g: tensor<8xf32>, %r: tensor<2x3x8xf32>) -> tensor<f32> {
      %y = weft.rms_norm %x, %g epsilon 1.0e-5 : (tensor<2x3x8xf32>, tensor<8xf32>) -> tensor<2x3x8xf32>
      %p = weft.mul %y, %r : tensor<2x3x8xf32>
      %l = weft.reduce sum %p dims [0, 1, 2] : (tensor<2x3x8xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, GatherAccumulatesRepeatedRows) {
  // 12 indices into 4 rows: every row is taken several times.
  expectGradientsMatch(R"(
    func.func @f(%t: tensor<4x5xf32>, %i: tensor<12xi64>, %r: tensor<12x5xf32>) -> tensor<f32> {
      %e = weft.gather %t[%i] axis 0 : (tensor<4x5xf32>, tensor<12xi64>) -> tensor<12x5xf32>
      %p = weft.mul %e, %r : tensor<12x5xf32>
      %l = weft.reduce sum %p dims [0, 1] : (tensor<12x5xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, CrossEntropyWithAnIgnoredLabel) {
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<6x10xf32>, %labels: tensor<6xi64>) -> tensor<f32> {
      %l = weft.cross_entropy %x, %labels ignore_index -100 reduction mean : (tensor<6x10xf32>, tensor<6xi64>) -> tensor<f32>
      return %l : tensor<f32>
    })",
                       10, true);
}

TEST(Autodiff, CrossEntropySumOverTwoTiles) {
  // The tiled loss's form: each half of the tokens summed, the total over
  // the count of non-ignored tokens.
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<6x10xf32>, %labels: tensor<6xi64>) -> tensor<f32> {
      %x0 = weft.slice %x [0, 0] [3, 10] [1, 1] : (tensor<6x10xf32>) -> tensor<3x10xf32>
      %x1 = weft.slice %x [3, 0] [6, 10] [1, 1] : (tensor<6x10xf32>) -> tensor<3x10xf32>
      %t0 = weft.slice %labels [0] [3] [1] : (tensor<6xi64>) -> tensor<3xi64>
      %t1 = weft.slice %labels [3] [6] [1] : (tensor<6xi64>) -> tensor<3xi64>
      %s0 = weft.cross_entropy %x0, %t0 ignore_index -100 reduction sum : (tensor<3x10xf32>, tensor<3xi64>) -> tensor<f32>
      %s1 = weft.cross_entropy %x1, %t1 ignore_index -100 reduction sum : (tensor<3x10xf32>, tensor<3xi64>) -> tensor<f32>
      %s = weft.add %s0, %s1 : tensor<f32>
      %n = weft.constant dense<5.0> : tensor<f32>
      %l = weft.div %s, %n : tensor<f32>
      return %l : tensor<f32>
    })",
                       10, true);
}

TEST(Autodiff, MatmulOntoAnAccumulator) {
  expectGradientsMatch(R"(
    func.func @f(%a: tensor<4x3xf32>, %b: tensor<5x3xf32>, %c: tensor<4x5xf32>, %r: tensor<4x5xf32>) -> tensor<f32> {
      %p = weft.matmul %a, %b, acc %c {transpose_rhs} : (tensor<4x3xf32>, tensor<5x3xf32>, tensor<4x5xf32>) -> tensor<4x5xf32>
      %q = weft.mul %p, %r : tensor<4x5xf32>
      %l = weft.reduce sum %q dims [0, 1] : (tensor<4x5xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, RopeInBothLayouts) {
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<2x5x3x8xf32>, %pos: tensor<2x5xi64>, %r: tensor<2x5x3x8xf32>) -> tensor<f32> {
      %a = weft.rope %x, %pos theta 1.0e+04 : (tensor<2x5x3x8xf32>, tensor<2x5xi64>) -> tensor<2x5x3x8xf32>
      %b = weft.rope %a, %pos theta 5.0e+02 interleaved : (tensor<2x5x3x8xf32>, tensor<2x5xi64>) -> tensor<2x5x3x8xf32>
      %p = weft.mul %b, %r : tensor<2x5x3x8xf32>
      %l = weft.reduce sum %p dims [0, 1, 2, 3] : (tensor<2x5x3x8xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })",
                       40);
}

TEST(Autodiff, CausalGroupedQueryAttention) {
  expectGradientsMatch(R"(
    func.func @f(%q: tensor<2x7x4x8xf32>, %k: tensor<2x7x2x8xf32>, %v: tensor<2x7x2x6xf32>, %r: tensor<2x7x4x6xf32>) -> tensor<f32> {
      %o = weft.attention causal %q, %k, %v : (tensor<2x7x4x8xf32>, tensor<2x7x2x8xf32>, tensor<2x7x2x6xf32>) -> tensor<2x7x4x6xf32>
      %p = weft.mul %o, %r : tensor<2x7x4x6xf32>
      %l = weft.reduce sum %p dims [0, 1, 2, 3] : (tensor<2x7x4x6xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, SlidingWindowAlibiAttentionWithFewerQueries) {
  expectGradientsMatch(R"(
    func.func @f(%q: tensor<1x4x2x8xf32>, %k: tensor<1x9x1x8xf32>, %v: tensor<1x9x1x8xf32>, %r: tensor<1x4x2x8xf32>) -> tensor<f32> {
      %s = weft.constant dense<[0.5, 0.25]> : tensor<2xf32>
      %o = weft.attention alibi %q, %k, %v slopes(%s) scale 0.3 window 3 : (tensor<1x4x2x8xf32>, tensor<1x9x1x8xf32>, tensor<1x9x1x8xf32>, tensor<2xf32>) -> tensor<1x4x2x8xf32>
      %p = weft.mul %o, %r : tensor<1x4x2x8xf32>
      %l = weft.reduce sum %p dims [0, 1, 2, 3] : (tensor<1x4x2x8xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, MaskedAttention) {
  // Key j is hidden from query i when j > i + 1 or j = 2.
  expectGradientsMatch(R"(
    func.func @f(%q: tensor<1x6x2x4xf32>, %k: tensor<1x6x2x4xf32>, %v: tensor<1x6x2x4xf32>, %r: tensor<1x6x2x4xf32>) -> tensor<f32> {
      %i = weft.iota dim 0 : tensor<6x6xi64>
      %j = weft.iota dim 1 : tensor<6x6xi64>
      %one = weft.constant dense<1> : tensor<6x6xi64>
      %two = weft.constant dense<2> : tensor<6x6xi64>
      %i1 = weft.add %i, %one : tensor<6x6xi64>
      %near = weft.compare le, %j, %i1 : tensor<6x6xi64>
      %notTwo = weft.compare ne, %j, %two : tensor<6x6xi64>
      %nearI = weft.convert %near : tensor<6x6xi1> -> tensor<6x6xi64>
      %notTwoI = weft.convert %notTwo : tensor<6x6xi1> -> tensor<6x6xi64>
      %both = weft.mul %nearI, %notTwoI : tensor<6x6xi64>
      %mask = weft.compare eq, %both, %one : tensor<6x6xi64>
      %o = weft.attention mask %q, %k, %v mask(%mask) : (tensor<1x6x2x4xf32>, tensor<1x6x2x4xf32>, tensor<1x6x2x4xf32>, tensor<6x6xi1>) -> tensor<1x6x2x4xf32>
      %p = weft.mul %o, %r : tensor<1x6x2x4xf32>
      %l = weft.reduce sum %p dims [0, 1, 2, 3] : (tensor<1x6x2x4xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, SliceConcatAndSelect) {
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<4x9xf32>, %y: tensor<4x3xf32>, %r: tensor<3x7xf32>) -> tensor<f32> {
      %s = weft.slice %x [1, 1] [4, 9] [1, 2] : (tensor<4x9xf32>) -> tensor<3x4xf32>
      %t = weft.slice %y [1, 0] [4, 3] [1, 1] : (tensor<4x3xf32>) -> tensor<3x3xf32>
      %c = weft.concat %s, %t dim 1 : (tensor<3x4xf32>, tensor<3x3xf32>) -> tensor<3x7xf32>
      %zero = weft.constant dense<0.0> : tensor<3x7xf32>
      %p = weft.compare gt, %r, %zero : tensor<3x7xf32>
      %e = weft.exp %c : tensor<3x7xf32>
      %w = weft.select %p, %c, %e : tensor<3x7xi1>, tensor<3x7xf32>
      %m = weft.mul %w, %r : tensor<3x7xf32>
      %l = weft.reduce sum %m dims [0, 1] : (tensor<3x7xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, MaxMinAbsPow) {
  expectGradientsMatch(R"(
    func.func @f(%a: tensor<12xf32>, %b: tensor<12xf32>, %r: tensor<12xf32>) -> tensor<f32> {
      %mx = weft.max %a, %b : tensor<12xf32>
      %mn = weft.min %a, %r : tensor<12xf32>
      %ab = weft.abs %b : tensor<12xf32>
      %e = weft.exp %r : tensor<12xf32>
      %h = weft.constant dense<0.7> : tensor<12xf32>
      %rh = weft.mul %r, %h : tensor<12xf32>
      %pw = weft.pow %e, %rh : tensor<12xf32>
      %s1 = weft.add %mx, %mn : tensor<12xf32>
      %s2 = weft.add %s1, %ab : tensor<12xf32>
      %s3 = weft.add %s2, %pw : tensor<12xf32>
      %m = weft.mul %s3, %b : tensor<12xf32>
      %l = weft.reduce sum %m dims [0] : (tensor<12xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, SoftmaxAndLogSoftmax) {
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<3x5x4xf32>, %r: tensor<3x5x4xf32>) -> tensor<f32> {
      %p = weft.softmax %x dim 1 : tensor<3x5x4xf32>
      %q = weft.log_softmax %x dim 2 : tensor<3x5x4xf32>
      %s = weft.add %p, %q : tensor<3x5x4xf32>
      %m = weft.mul %s, %r : tensor<3x5x4xf32>
      %l = weft.reduce sum %m dims [0, 1, 2] : (tensor<3x5x4xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, LayerNormAndGelu) {
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<2x3x8xf32>, %w: tensor<8xf32>, %b: tensor<8xf32>, %r: tensor<2x3x8xf32>) -> tensor<f32> {
      %y = weft.layer_norm %x, %w, %b epsilon 1.0e-5 : (tensor<2x3x8xf32>, tensor<8xf32>, tensor<8xf32>) -> tensor<2x3x8xf32>
      %g = weft.gelu %y : tensor<2x3x8xf32>
      %t = weft.gelu %x approximation tanh : tensor<2x3x8xf32>
      %z = weft.layer_norm %t, %w epsilon 1.0e-5 : (tensor<2x3x8xf32>, tensor<8xf32>) -> tensor<2x3x8xf32>
      %e = weft.erf %x : tensor<2x3x8xf32>
      %s1 = weft.add %g, %z : tensor<2x3x8xf32>
      %s2 = weft.add %s1, %e : tensor<2x3x8xf32>
      %m = weft.mul %s2, %r : tensor<2x3x8xf32>
      %l = weft.reduce sum %m dims [0, 1, 2] : (tensor<2x3x8xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, MixtureOfExperts) {
  // Router, top-2 gate (renormalised, and not), dispatch, one expert linear
  // per group, combine. The inputs keep the routing away from ties, so the
  // finite differences do not change which experts are chosen.
  expectGradientsMatch(R"(
    func.func @f(%x: tensor<6x4xf32>, %wr: tensor<3x4xf32>, %w0: tensor<5x4xf32>, %w1: tensor<5x4xf32>, %w2: tensor<5x4xf32>, %r: tensor<6x5xf32>) -> tensor<f32> {
      %logits = weft.linear %x, %wr : (tensor<6x4xf32>, tensor<3x4xf32>) -> tensor<6x3xf32>
      %w:2 = weft.moe_gate %logits top_k 2 normalize : (tensor<6x3xf32>) -> (tensor<6x2xf32>, tensor<6x2xi64>)
      %v:2 = weft.moe_gate %logits top_k 2 : (tensor<6x3xf32>) -> (tensor<6x2xf32>, tensor<6x2xi64>)
      %d:2 = weft.moe_dispatch %x, %w#1 num_experts 3 : (tensor<6x4xf32>, tensor<6x2xi64>) -> (tensor<12x4xf32>, tensor<4xi64>)
      %h = weft.grouped_linear %d#0, %d#1, %w0, %w1, %w2 : (tensor<12x4xf32>, tensor<4xi64>, tensor<5x4xf32>, tensor<5x4xf32>, tensor<5x4xf32>) -> tensor<12x5xf32>
      %y = weft.moe_combine %h, %w#0, %w#1 num_experts 3 : (tensor<12x5xf32>, tensor<6x2xf32>, tensor<6x2xi64>) -> tensor<6x5xf32>
      %z = weft.moe_combine %h, %v#0, %v#1 num_experts 3 : (tensor<12x5xf32>, tensor<6x2xf32>, tensor<6x2xi64>) -> tensor<6x5xf32>
      %s = weft.add %y, %z : tensor<6x5xf32>
      %p = weft.mul %s, %r : tensor<6x5xf32>
      %l = weft.reduce sum %p dims [0, 1] : (tensor<6x5xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, BatchedMatmulWithTransposesAndASharedRhs) {
  expectGradientsMatch(R"(
    func.func @f(%a: tensor<2x3x4xf32>, %b: tensor<2x5x4xf32>, %c: tensor<3x2x4xf32>, %s: tensor<6x4xf32>, %r: tensor<2x4x6xf32>) -> tensor<f32> {
      %p = weft.matmul %a, %b {transpose_rhs} : (tensor<2x3x4xf32>, tensor<2x5x4xf32>) -> tensor<2x3x5xf32>
      %t = weft.transpose %c [1, 0, 2] : (tensor<3x2x4xf32>) -> tensor<2x3x4xf32>
      %q = weft.matmul %t, %s {transpose_rhs} : (tensor<2x3x4xf32>, tensor<6x4xf32>) -> tensor<2x3x6xf32>
      %u = weft.matmul %a, %q {transpose_lhs} : (tensor<2x3x4xf32>, tensor<2x3x6xf32>) -> tensor<2x4x6xf32>
      %w = weft.mul %u, %r : tensor<2x4x6xf32>
      %l1 = weft.reduce sum %w dims [0, 1, 2] : (tensor<2x4x6xf32>) -> tensor<f32>
      %l2 = weft.reduce sum %p dims [0, 1, 2] : (tensor<2x3x5xf32>) -> tensor<f32>
      %l = weft.add %l1, %l2 : tensor<f32>
      return %l : tensor<f32>
    })");
}

TEST(Autodiff, AnOpWithoutARuleIsNamed) {
  mlir::MLIRContext context;
  context.loadDialect<WeftDialect, mlir::func::FuncDialect>();
  auto module = mlir::parseSourceString<mlir::ModuleOp>(R"(
    func.func @f(%x: tensor<4xf32>) -> tensor<f32> {
      %i = weft.constant dense<[0, 1]> : tensor<2xi64>
      %u = weft.constant dense<1.0> : tensor<2xf32>
      %y = weft.scatter_add %x[%i], %u axis 0 : (tensor<4xf32>, tensor<2xi64>, tensor<2xf32>) -> tensor<4xf32>
      %l = weft.reduce sum %y dims [0] : (tensor<4xf32>) -> tensor<f32>
      return %l : tensor<f32>
    })",
                                                        &context);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&context, [&](mlir::Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return mlir::success();
  });
  mlir::PassManager pm(&context);
  pm.addNestedPass<mlir::func::FuncOp>(
      weft::createAutodiff(weft::AutodiffOptions{true, ""}));
  EXPECT_TRUE(failed(pm.run(*module)));
  EXPECT_NE(diagnostics.find("has no gradient rule; the loss cannot be "
                             "differentiated through it"),
            std::string::npos)
      << diagnostics;
}
