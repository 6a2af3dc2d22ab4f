// ONNX exports of the tiny Hugging Face fixtures (tests/fixtures/
// make_onnx_fixtures.py: torch.onnx.export with a dynamic sequence axis)
// imported with static input shapes, compiled and run on the CPU; their logits
// against HF's own.
#include "RelativeError.h"
#include "codegen/PlanBuilder.h"
#include "frontend/Onnx/OnnxImporter.h"
#include "passes/Pipeline.h"
#include "runtime/HostTensor.h"
#include "runtime/cpu/CpuExecutor.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <variant>

#include <onnx/onnx_pb.h>

using namespace weft;
namespace rt = weft::runtime;
using weft::testing::relativeError;

namespace {
const std::string kFixtures = WEFT_SOURCE_DIR "/tests/fixtures/";

/// Imports `path` with `options`, compiles it and runs it on `inputs`; its
/// output `output`. A step that fails fails the test and gives an empty
/// tensor.
rt::HostTensor runOnnx(const std::string &path,
                       const frontend::OnnxImportOptions &options,
                       const std::map<std::string, rt::HostTensor> &inputs,
                       const std::string &output) {
  mlir::MLIRContext context;
  frontend::OnnxImportError error;
  auto module = frontend::importOnnx(context, path, options, error);
  EXPECT_TRUE(module) << error.message;
  if (!module || failed(mlir::verify(*module)))
    return {};
  mlir::PassManager pm(&context);
  std::string pipelineError;
  EXPECT_TRUE(succeeded(buildPipeline(pm, {"", 2}, pipelineError)))
      << pipelineError;
  EXPECT_TRUE(succeeded(pm.run(*module)));
  auto plan = codegen::buildPlan(*module, {path, ""});
  EXPECT_TRUE(succeeded(plan));
  if (failed(plan))
    return {};
  rt::CpuExecutor executor(*plan, path, 2);
  for (const auto &[name, t] : inputs)
    executor.setInput(name, t);
  executor.run();
  return executor.output(output);
}

class OnnxExport : public ::testing::TestWithParam<const char *> {};

TEST_P(OnnxExport, MatchesHuggingFace) {
  const std::string dir = kFixtures + GetParam(), model = dir + "/model.onnx";
  rt::HostTensor logits =
      runOnnx(model, {{{"input_ids", {2, 32}}}},
              {{"input_ids", rt::readNpy(dir + "/input_ids.npy")}}, "logits");
  ASSERT_FALSE(logits.bytes.empty());
  const double relative =
      relativeError(logits, rt::readNpy(dir + "/logits.npy"));
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

// Ops with two implementations in the importer (IR for run-time inputs, the
// host evaluator for known ones) or none in the ONNX test data on f32
// (Einsum, CumSum: their tests are f64): each graph is run with its inputs
// as graph inputs, and a reference graph of other ops with the same data as
// initializers (evaluated at import) plus a run-time zero.
namespace {
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

using Attributes =
    std::map<std::string,
             std::variant<int64_t, std::string, std::vector<int64_t>>>;
struct Node {
  std::string op;
  std::vector<std::string> inputs;
  std::string output;
  Attributes attributes = {};
};

Tensor randomTensor(std::vector<int64_t> shape, uint32_t seed) {
  Tensor t{std::move(shape), {}};
  int64_t n = 1;
  for (int64_t d : t.shape)
    n *= d;
  uint32_t state = seed * 2654435761u + 1;
  for (int64_t i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    t.data.push_back(static_cast<float>(state >> 8) / (1 << 24) - 0.5f);
  }
  return t;
}

void addTensor(onnx::TensorProto *t, const std::string &name,
               const std::vector<int64_t> &shape, int32_t type) {
  t->set_name(name);
  t->set_data_type(type);
  for (int64_t d : shape)
    t->add_dims(d);
}

/// A model of `nodes` writing "y"; `given` become graph inputs, `known`
/// initializers (with "zero", a run-time f32 zero of shape `zero`, when set).
std::string
writeModel(const std::string &name, const std::vector<Node> &nodes,
           const std::map<std::string, Tensor> &given,
           const std::map<std::string, Tensor> &known,
           const std::map<std::string, std::vector<int64_t>> &ints) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(17);
  onnx::GraphProto *graph = model.mutable_graph();
  graph->set_name(name);
  for (const Node &n : nodes) {
    onnx::NodeProto *node = graph->add_node();
    node->set_op_type(n.op);
    for (const std::string &in : n.inputs)
      node->add_input(in);
    node->add_output(n.output);
    for (const auto &[key, v] : n.attributes) {
      onnx::AttributeProto *a = node->add_attribute();
      a->set_name(key);
      if (auto *i = std::get_if<int64_t>(&v)) {
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(*i);
      } else if (auto *s = std::get_if<std::string>(&v)) {
        a->set_type(onnx::AttributeProto::STRING);
        a->set_s(*s);
      } else {
        a->set_type(onnx::AttributeProto::INTS);
        for (int64_t i : std::get<std::vector<int64_t>>(v))
          a->add_ints(i);
      }
    }
  }
  for (const auto &[n, t] : given) {
    onnx::ValueInfoProto *input = graph->add_input();
    input->set_name(n);
    auto *type = input->mutable_type()->mutable_tensor_type();
    type->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : t.shape)
      type->mutable_shape()->add_dim()->set_dim_value(d);
  }
  for (const auto &[n, t] : known) {
    onnx::TensorProto *init = graph->add_initializer();
    addTensor(init, n, t.shape, onnx::TensorProto::FLOAT);
    for (float f : t.data)
      init->add_float_data(f);
  }
  for (const auto &[n, values] : ints) {
    onnx::TensorProto *init = graph->add_initializer();
    addTensor(init, n, {static_cast<int64_t>(values.size())},
              onnx::TensorProto::INT64);
    for (int64_t v : values)
      init->add_int64_data(v);
  }
  graph->add_output()->set_name("y");
  const std::string path = ::testing::TempDir() + "/weft_" + name + ".onnx";
  std::ofstream out(path, std::ios::binary);
  model.SerializeToOstream(&out);
  return path;
}

std::map<std::string, rt::HostTensor>
hostsOf(const std::map<std::string, Tensor> &tensors) {
  std::map<std::string, rt::HostTensor> hosts;
  for (const auto &[name, t] : tensors) {
    rt::HostTensor &h = hosts[name];
    h.dtype = plan::F32;
    h.shape = t.shape;
    h.bytes.resize(t.data.size() * 4);
    std::memcpy(h.bytes.data(), t.data.data(), h.bytes.size());
  }
  return hosts;
}

struct Case {
  const char *name;
  std::vector<Node> graph;     // reads the data as run-time inputs
  std::vector<Node> reference; // reads it as initializers, writes "r";
                               // empty: the same nodes as `graph`
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, std::vector<int64_t>> ints = {};
};

void PrintTo(const Case &c, std::ostream *os) { *os << c.name; }

class OnnxOp : public ::testing::TestWithParam<Case> {};

TEST_P(OnnxOp, MatchesReference) {
  const Case &c = GetParam();
  std::map<std::string, Tensor> data;
  uint32_t seed = 1;
  for (const auto &[name, shape] : c.shapes)
    data[name] = randomTensor(shape, seed++);
  const std::string tested =
      writeModel(std::string(c.name) + "_ir", c.graph, data, {}, c.ints);
  rt::HostTensor actual = runOnnx(tested, {}, hostsOf(data), "y");
  ASSERT_FALSE(actual.shape.empty() && actual.bytes.empty());
  // The reference's result plus a run-time zero, so that it is computed.
  std::vector<Node> reference = c.reference;
  if (reference.empty()) { // the same nodes, evaluated at import
    reference = c.graph;
    for (Node &n : reference)
      if (n.output == "y")
        n.output = "r";
  }
  reference.push_back({"Add", {"r", "zero"}, "y"});
  Tensor zero{actual.shape, std::vector<float>(actual.bytes.size() / 4, 0.f)};
  const std::string folded =
      writeModel(std::string(c.name) + "_folded", reference, {{"zero", zero}},
                 data, c.ints);
  const double error = relativeError(
      actual, runOnnx(folded, {}, hostsOf({{"zero", zero}}), "y"));
  EXPECT_LT(error, 1e-6) << c.name;
}

std::vector<int64_t> ints(std::initializer_list<int64_t> v) { return v; }

INSTANTIATE_TEST_SUITE_P(
    FoldAndLowering, OnnxOp,
    ::testing::Values(
        Case{"einsum_batch_matmul",
             {{"Einsum", {"a", "b"}, "y", {{"equation", "bij,bjk->bik"}}}},
             {{"MatMul", {"a", "b"}, "r"}},
             {{"a", {2, 3, 4}}, {"b", {2, 4, 5}}}},
        Case{"einsum_attention_scores",
             {{"Einsum", {"a", "b"}, "y", {{"equation", "bhqd,bhkd->bhqk"}}}},
             {{"Transpose", {"b"}, "bt", {{"perm", ints({0, 1, 3, 2})}}},
              {"MatMul", {"a", "bt"}, "r"}},
             {{"a", {2, 3, 5, 4}}, {"b", {2, 3, 6, 4}}}},
        Case{"einsum_ellipsis_implicit",
             {{"Einsum", {"a", "b"}, "y", {{"equation", "...ij,...jk"}}}},
             {{"MatMul", {"a", "b"}, "r"}},
             {{"a", {2, 3, 4}}, {"b", {2, 4, 5}}}},
        Case{"einsum_transpose",
             {{"Einsum", {"a"}, "y", {{"equation", "ij->ji"}}}},
             {{"Transpose", {"a"}, "r"}},
             {{"a", {3, 5}}}},
        Case{"einsum_row_dot",
             {{"Einsum", {"a", "b"}, "y", {{"equation", "ij,ij->i"}}}},
             {{"Mul", {"a", "b"}, "ab"},
              {"ReduceSum", {"ab", "axes"}, "r", {{"keepdims", 0}}}},
             {{"a", {4, 6}}, {"b", {4, 6}}},
             {{"axes", {1}}}},
        Case{"einsum_outer_and_sum",
             {{"Einsum", {"a", "b"}, "y", {{"equation", "ik,j->ij"}}}},
             {{"ReduceSum", {"a", "axes"}, "s", {{"keepdims", 1}}},
              {"Unsqueeze", {"b", "zero_axis"}, "bu"},
              {"MatMul", {"s", "bu"}, "r"}},
             {{"a", {3, 4}}, {"b", {5}}},
             {{"axes", {1}}, {"zero_axis", {0}}}},
        Case{"cumsum",
             {{"CumSum", {"a", "axis"}, "y"}},
             {},
             {{"a", {3, 7, 2}}},
             {{"axis", {1}}}},
        Case{"cumsum_exclusive_reverse",
             {{"CumSum",
               {"a", "axis"},
               "y",
               {{"exclusive", 1}, {"reverse", 1}}}},
             {},
             {{"a", {3, 7, 2}}},
             {{"axis", {-3}}}},
        Case{"unary_math",
             {{"Cos", {"a"}, "c"},
              {"Sin", {"a"}, "s"},
              {"Floor", {"a"}, "f"},
              {"Ceil", {"a"}, "e"},
              {"Add", {"c", "s"}, "cs"},
              {"Sub", {"f", "e"}, "fe"},
              {"Mul", {"cs", "fe"}, "y"}},
             {},
             {{"a", {3, 33}}}},
        Case{"tile",
             {{"Tile", {"a", "repeats"}, "y"}},
             {},
             {{"a", {2, 3}}},
             {{"repeats", {3, 2}}}},
        Case{"trilu_lower",
             {{"Trilu", {"a", "k"}, "y", {{"upper", 0}}}},
             {},
             {{"a", {2, 4, 5}}},
             {{"k", {1}}}},
        Case{"split_slice_concat",
             {{"Split", {"a", "parts"}, "p", {{"axis", 1}}},
              {"Slice", {"a", "starts", "ends", "axes"}, "q"},
              {"Concat", {"p", "q"}, "y", {{"axis", 1}}}},
             {},
             {{"a", {2, 6, 3}}},
             {{"parts", {6}}, {"starts", {1}}, {"ends", {5}}, {"axes", {1}}}}),
    [](const auto &info) { return std::string(info.param.name); });
} // namespace
