// Data-movement and reduction ops through the whole CPU path (schedule,
// bufferize, plan, runtime) against plain references on random inputs:
// transpose, slice, broadcast, concat, reduce, scatter_add, select and
// products onto accumulators, in f32 and with bf16 storage; fusion groups
// computing over their inputs.
#include "codegen/PlanBuilder.h"
#include "ir/WeftDialect.h"
#include "kernels/cpu/Kernels.h"
#include "passes/Pipeline.h"
#include "runtime/Error.h"
#include "runtime/cpu/CpuExecutor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

using namespace weft;
namespace rt = weft::runtime;
namespace cpu = weft::kernels::cpu;

namespace {
std::vector<float> randomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist;
  std::vector<float> v(n);
  for (float &x : v)
    x = dist(rng);
  return v;
}

rt::HostTensor f32Tensor(const std::vector<int64_t> &shape,
                         const std::vector<float> &values) {
  rt::HostTensor t{plan::F32, shape, {}};
  t.bytes.resize(values.size() * 4);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

rt::HostTensor i64Tensor(const std::vector<int64_t> &shape,
                         const std::vector<int64_t> &values) {
  rt::HostTensor t{plan::I64, shape, {}};
  t.bytes.resize(values.size() * 8);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

/// `source` (one @forward) compiled for the CPU.
plan::Plan compile(const std::string &source) {
  mlir::MLIRContext context;
  context.loadDialect<WeftDialect, mlir::func::FuncDialect>();
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  EXPECT_TRUE(module);
  if (!module)
    return {};
  mlir::PassManager pm(&context);
  std::string error;
  EXPECT_TRUE(succeeded(buildPipeline(pm, {"", 2}, error))) << error;
  EXPECT_TRUE(succeeded(pm.run(*module)));
  auto plan = codegen::buildPlan(*module, {"ops", ""});
  EXPECT_TRUE(succeeded(plan));
  return succeeded(plan) ? *plan : plan::Plan();
}

/// Compiles `source` (one @forward) for the CPU, runs it on `inputs` (named
/// arg0, arg1, … in order) and returns result 0 as floats.
std::vector<float> run(const std::string &source,
                       const std::vector<rt::HostTensor> &inputs) {
  plan::Plan plan = compile(source);
  if (plan.streams_size() == 0)
    return {};
  rt::CpuExecutor executor(plan, "ops");
  for (size_t i = 0; i < inputs.size(); ++i)
    executor.setInput("arg" + std::to_string(i), inputs[i]);
  executor.run();
  rt::HostTensor out = rt::widenBf16(executor.output("result0"));
  std::vector<float> values(out.numElements());
  std::memcpy(values.data(), out.bytes.data(), out.bytes.size());
  return values;
}

void expectNear(const std::vector<float> &actual,
                const std::vector<double> &expected, double tol) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    ASSERT_NEAR(actual[i], expected[i],
                tol * std::max(1.0, std::abs(expected[i])))
        << "element " << i;
}

float roundBf16(float x) { return cpu::bf16ToFloat(cpu::floatToBf16(x)); }
} // namespace

TEST(CpuOps, Transpose) {
  auto x = randomFloats(24, 1);
  auto y = run(R"(
    func.func @forward(%x: tensor<2x3x4xf32>) -> tensor<4x2x3xf32> {
      %t = weft.transpose %x [2, 0, 1] : (tensor<2x3x4xf32>) -> tensor<4x2x3xf32>
      return %t : tensor<4x2x3xf32>
    })",
               {f32Tensor({2, 3, 4}, x)});
  std::vector<double> ref(24);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        ref[c * 6 + a * 3 + b] = x[a * 12 + b * 4 + c];
  expectNear(y, ref, 0);
}

TEST(CpuOps, StridedSlice) {
  auto x = randomFloats(30, 2);
  auto y = run(R"(
    func.func @forward(%x: tensor<5x6xf32>) -> tensor<2x2xf32> {
      %s = weft.slice %x [1, 1] [5, 6] [2, 3] : (tensor<5x6xf32>) -> tensor<2x2xf32>
      return %s : tensor<2x2xf32>
    })",
               {f32Tensor({5, 6}, x)});
  std::vector<double> ref;
  for (int i = 1; i < 5; i += 2)
    for (int j = 1; j < 6; j += 3)
      ref.push_back(x[i * 6 + j]);
  expectNear(y, ref, 0);
}

TEST(CpuOps, BroadcastOfSizeOneAndNewDimensions) {
  auto x = randomFloats(3, 3);
  auto y = run(R"(
    func.func @forward(%x: tensor<3x1xf32>) -> tensor<2x3x4xf32> {
      %b = weft.broadcast %x dims [1, 2] : tensor<3x1xf32> -> tensor<2x3x4xf32>
      return %b : tensor<2x3x4xf32>
    })",
               {f32Tensor({3, 1}, x)});
  std::vector<double> ref;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        ref.push_back(x[b]);
  expectNear(y, ref, 0);
}

TEST(CpuOps, ConcatAlongAMiddleDimension) {
  auto a = randomFloats(2 * 3 * 2, 4), b = randomFloats(2 * 1 * 2, 5);
  auto y = run(R"(
    func.func @forward(%a: tensor<2x3x2xf32>, %b: tensor<2x1x2xf32>) -> tensor<2x4x2xf32> {
      %c = weft.concat %a, %b dim 1 : (tensor<2x3x2xf32>, tensor<2x1x2xf32>) -> tensor<2x4x2xf32>
      return %c : tensor<2x4x2xf32>
    })",
               {f32Tensor({2, 3, 2}, a), f32Tensor({2, 1, 2}, b)});
  std::vector<double> ref;
  for (int o = 0; o < 2; ++o) {
    for (int j = 0; j < 6; ++j)
      ref.push_back(a[o * 6 + j]);
    for (int j = 0; j < 2; ++j)
      ref.push_back(b[o * 2 + j]);
  }
  expectNear(y, ref, 0);
}

TEST(CpuOps, ReduceMeanOverNonAdjacentDimensions) {
  auto x = randomFloats(3 * 4 * 5, 6);
  auto y = run(R"(
    func.func @forward(%x: tensor<3x4x5xf32>) -> tensor<1x4x1xf32> {
      %r = weft.reduce mean %x dims [0, 2] keep_dims : (tensor<3x4x5xf32>) -> tensor<1x4x1xf32>
      return %r : tensor<1x4x1xf32>
    })",
               {f32Tensor({3, 4, 5}, x)});
  std::vector<double> ref(4, 0.0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 5; ++k)
        ref[j] += x[(i * 4 + j) * 5 + k] / 15.0;
  expectNear(y, ref, 1e-6);
}

TEST(CpuOps, ScatterAddAccumulatesRepeatedIndices) {
  auto base = randomFloats(5 * 4, 7), updates = randomFloats(3 * 4, 8);
  std::vector<int64_t> ids = {3, 0, 3};
  auto y = run(R"(
    func.func @forward(%base: tensor<5x4xf32>, %ids: tensor<3xi64>, %u: tensor<3x4xf32>) -> tensor<5x4xf32> {
      %s = weft.scatter_add %base[%ids], %u axis 0 : (tensor<5x4xf32>, tensor<3xi64>, tensor<3x4xf32>) -> tensor<5x4xf32>
      return %s : tensor<5x4xf32>
    })",
               {f32Tensor({5, 4}, base), i64Tensor({3}, ids),
                f32Tensor({3, 4}, updates)});
  std::vector<double> ref(base.begin(), base.end());
  for (int i = 0; i < 3; ++i)
    for (int b = 0; b < 4; ++b)
      ref[ids[i] * 4 + b] += updates[i * 4 + b];
  expectNear(y, ref, 1e-6);
}

// bf16 storage: the transpose moves bf16 as it is; the reduce is widened to
// f32 by weft-legalize-cpu-types and its result rounded once.
TEST(CpuOps, Bf16TransposeThenReduce) {
  auto x = randomFloats(6 * 8, 9);
  auto y = run(R"(
    func.func @forward(%x: tensor<6x8xbf16>) -> tensor<8xbf16> {
      %t = weft.transpose %x [1, 0] : (tensor<6x8xbf16>) -> tensor<8x6xbf16>
      %r = weft.reduce sum %t dims [1] : (tensor<8x6xbf16>) -> tensor<8xbf16>
      return %r : tensor<8xbf16>
    })",
               {f32Tensor({6, 8}, x)}); // rounded to bf16 on the way in
  std::vector<double> ref(8, 0.0);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 8; ++j)
      ref[j] += roundBf16(x[i * 8 + j]);
  for (double &r : ref)
    r = roundBf16(static_cast<float>(r));
  expectNear(y, ref, 1e-6);
}

// A row mask broadcast over columns chooses between two tensors. GCC 12 at
// -O3 -march=x86-64-v3 turned the generated `p[c] ? a[c] : b[c]` into masked
// loads that lost row 3 of this very case; the generated code calls
// weftSelect instead.
TEST(CpuOps, SelectByARowMask) {
  const std::vector<float> x = randomFloats(48, 31);
  std::vector<double> expected(48);
  for (int64_t r = 0; r < 12; ++r)
    for (int64_t c = 0; c < 4; ++c)
      expected[r * 4 + c] = r >= 3 ? x[r * 4 + c] : 0.0;
  std::vector<int64_t> rows(12);
  for (int64_t r = 0; r < 12; ++r)
    rows[r] = r;
  expectNear(run(R"(
    func.func @forward(%x: tensor<12x4xf32>, %i: tensor<12xi64>) -> tensor<12x4xf32> {
      %t = weft.constant dense<3> : tensor<12xi64>
      %ge = weft.compare ge, %i, %t : tensor<12xi64>
      %m = weft.broadcast %ge dims [0] : tensor<12xi1> -> tensor<12x4xi1>
      %z = weft.constant dense<0.0> : tensor<12x4xf32>
      %y = weft.select %m, %x, %z : tensor<12x4xi1>, tensor<12x4xf32>
      return %y : tensor<12x4xf32>
    })",
                 {f32Tensor({12, 4}, x), i64Tensor({12}, rows)}),
             expected, 0.0);
}

// Fusion groups writing results over inputs that die there
// (weft-assign-buffers): an f32 group whose second result takes the
// memory of the input it reads last (the first, read before that, may not),
// then a group over both results; and a bf16 norm written over the row it
// normalises.
TEST(CpuOps, ResultsOverDyingInputs) {
  const std::vector<float> x = randomFloats(32, 41);
  std::vector<double> expected(32);
  for (int i = 0; i < 32; ++i)
    expected[i] = std::exp(x[i]) - std::exp(x[i]) * x[i];
  expectNear(run(R"(
    func.func @forward(%x: tensor<8x4xf32>) -> tensor<8x4xf32> {
      %a = weft.transpose %x [1, 0] : (tensor<8x4xf32>) -> tensor<4x8xf32>
      %b = weft.exp %a : tensor<4x8xf32>
      %c = weft.mul %b, %a : tensor<4x8xf32>
      %bt = weft.transpose %b [1, 0] : (tensor<4x8xf32>) -> tensor<8x4xf32>
      %ct = weft.transpose %c [1, 0] : (tensor<4x8xf32>) -> tensor<8x4xf32>
      %s = weft.sub %bt, %ct : tensor<8x4xf32>
      return %s : tensor<8x4xf32>
    })",
                 {f32Tensor({8, 4}, x)}),
             expected, 1e-6);

  const std::vector<float> w = randomFloats(8, 42);
  std::vector<double> normed(32);
  for (int r = 0; r < 4; ++r) {
    double sum = 0;
    for (int c = 0; c < 8; ++c)
      sum += roundBf16(x[c * 4 + r]) * roundBf16(x[c * 4 + r]);
    const double inv = 1.0 / std::sqrt(sum / 8 + 1e-5);
    for (int c = 0; c < 8; ++c) {
      const double a = roundBf16(x[c * 4 + r]);
      normed[r * 8 + c] = a * inv * roundBf16(w[c]) * a;
    }
  }
  expectNear(run(R"(
    func.func @forward(%x: tensor<8x4xbf16>, %w: tensor<8xbf16>) -> tensor<4x8xbf16> {
      %a = weft.transpose %x [1, 0] : (tensor<8x4xbf16>) -> tensor<4x8xbf16>
      %n = weft.rms_norm %a, %w epsilon 1.0e-5 : (tensor<4x8xbf16>, tensor<8xbf16>) -> tensor<4x8xbf16>
      %m = weft.mul %n, %a : tensor<4x8xbf16>
      return %m : tensor<4x8xbf16>
    })",
                 {f32Tensor({8, 4}, x), f32Tensor({8}, w)}),
             normed, 1e-2);
}

// A gradient summed over three products (weft-accumulate-products: each
// product computed onto the sum so far, over it) and a product onto an
// accumulator that is read again (computed beside it), in f32 and bf16.
TEST(CpuOps, ProductsOntoAnAccumulator) {
  const std::vector<float> x = randomFloats(4 * 6, 51),
                           a = randomFloats(30, 52), b = randomFloats(30, 53),
                           c = randomFloats(30, 54);
  for (const char *type : {"f32", "bf16"}) {
    SCOPED_TRACE(type);
    const bool bf16 = std::string(type) == "bf16";
    auto value = [&](float v) { return bf16 ? roundBf16(v) : v; };
    std::vector<double> expected(20);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 5; ++j) {
        double sum = 0, again = 0;
        for (int k = 0; k < 6; ++k) {
          const double xv = value(x[i * 6 + k]);
          sum += xv * (value(a[k * 5 + j]) + value(b[k * 5 + j]) +
                       value(c[k * 5 + j]));
          again += xv * value(a[k * 5 + j]);
        }
        expected[i * 5 + j] = sum + again;
      }
    std::string source = R"(
      func.func @forward(%x: tensor<4x6xT>, %a: tensor<6x5xT>, %b: tensor<6x5xT>, %c: tensor<6x5xT>) -> tensor<4x5xT> {
        %p = weft.matmul %x, %a : (tensor<4x6xT>, tensor<6x5xT>) -> tensor<4x5xT>
        %q = weft.matmul %x, %b : (tensor<4x6xT>, tensor<6x5xT>) -> tensor<4x5xT>
        %pq = weft.add %p, %q : tensor<4x5xT>
        %r = weft.matmul %x, %c : (tensor<4x6xT>, tensor<6x5xT>) -> tensor<4x5xT>
        %s = weft.add %pq, %r : tensor<4x5xT>
        %t = weft.matmul %x, %a, acc %s : (tensor<4x6xT>, tensor<6x5xT>, tensor<4x5xT>) -> tensor<4x5xT>
        %u = weft.add %t, %s : tensor<4x5xT>
        %v = weft.sub %u, %s : tensor<4x5xT>
        return %v : tensor<4x5xT>
      })";
    for (size_t at = source.find('T'); at != std::string::npos;
         at = source.find('T', at))
      if (source[at - 1] == 'x')
        source.replace(at, 1, type);
      else
        ++at;
    expectNear(run(source, {f32Tensor({4, 6}, x), f32Tensor({6, 5}, a),
                            f32Tensor({6, 5}, b), f32Tensor({6, 5}, c)}),
               expected, bf16 ? 3e-2 : 1e-5);
  }
}

// A plan whose matmul names an accumulator of another size than its result
// is refused when it is loaded, naming both.
TEST(CpuOps, RefusesAMismatchedAccumulator) {
  plan::Plan plan = compile(R"(
    func.func @forward(%x: tensor<4x6xf32>, %a: tensor<6x5xf32>, %c: tensor<4x5xf32>) -> tensor<4x5xf32> {
      %p = weft.matmul %x, %a, acc %c : (tensor<4x6xf32>, tensor<6x5xf32>, tensor<4x5xf32>) -> tensor<4x5xf32>
      return %p : tensor<4x5xf32>
    })");
  plan::LibraryCall *matmul = nullptr;
  for (plan::Stream &stream : *plan.mutable_streams())
    for (plan::Step &step : *stream.mutable_steps())
      if (step.has_call() && step.call().function() == "matmul")
        matmul = step.mutable_call();
  ASSERT_NE(matmul, nullptr);
  ASSERT_GE(matmul->buffers(2), 0);
  matmul->set_buffers(2, matmul->buffers(0)); // x: 96 bytes, not 80
  try {
    rt::CpuExecutor executor(plan, "ops");
    ADD_FAILURE() << "loaded";
  } catch (const rt::Error &error) {
    EXPECT_NE(std::string(error.what()).find("its accumulator"),
              std::string::npos)
        << error.what();
    EXPECT_NE(std::string(error.what()).find("of 96 bytes, its result"),
              std::string::npos)
        << error.what();
  }
}
