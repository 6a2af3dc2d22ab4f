// Bad ONNX models: each is refused with a message naming the file and the
// node, tensor or input, and says whether the model is invalid or uses what
// weft does not import.
#include "frontend/Onnx/OnnxImporter.h"

#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <fstream>
#include <sstream>

using namespace weft;

namespace {
/// A file in the test's temporary folder (without a doubled '/', as the
/// importer joins paths to external data).
std::string tempPath(const std::string &name) {
  std::string dir = ::testing::TempDir();
  while (dir.size() > 1 && dir.back() == '/')
    dir.pop_back();
  return dir + "/weft_onnx_" + name;
}

/// A graph y = Add(x, w): x a [2, 2] float input, w a [2, 2] initializer.
onnx::ModelProto addModel() {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(17);
  onnx::GraphProto *graph = model.mutable_graph();
  onnx::NodeProto *node = graph->add_node();
  node->set_name("add");
  node->set_op_type("Add");
  node->add_input("x");
  node->add_input("w");
  node->add_output("y");
  onnx::ValueInfoProto *x = graph->add_input();
  x->set_name("x");
  auto *type = x->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  type->mutable_shape()->add_dim()->set_dim_value(2);
  type->mutable_shape()->add_dim()->set_dim_param("n");
  onnx::TensorProto *w = graph->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(2);
  w->add_dims(2);
  for (int i = 0; i < 4; ++i)
    w->add_float_data(i);
  graph->add_output()->set_name("y");
  return model;
}

std::string write(const std::string &name, const std::string &bytes) {
  const std::string path = tempPath(name);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  return path;
}

/// Imports `model` (written as `name`) with x given as 2×2; the error.
frontend::OnnxImportError
importError(const std::string &name, const onnx::ModelProto &model,
            frontend::OnnxImportOptions options = {{{"x", {2, 2}}}}) {
  const std::string path = write(name, model.SerializeAsString());
  mlir::MLIRContext context;
  frontend::OnnxImportError error;
  auto module = frontend::importOnnx(context, path, options, error);
  if (module)
    return {"(no error)", false};
  return error;
}

std::string messageOf(const std::string &name, const onnx::ModelProto &model,
                      frontend::OnnxImportOptions options = {{{"x", {2, 2}}}}) {
  return importError(name, model, std::move(options)).message;
}
} // namespace

TEST(OnnxImporter, ImportsTheWellFormedModel) {
  EXPECT_EQ(messageOf("good", addModel()), "(no error)");
}

TEST(OnnxImporter, RefusesFilesThatAreNotModels) {
  mlir::MLIRContext context;
  frontend::OnnxImportError error;
  const std::string garbage = write("garbage", "\xff\xff\xff garbage");
  EXPECT_FALSE(frontend::importOnnx(context, garbage, {}, error));
  EXPECT_EQ(error.message,
            garbage + ": not an ONNX model (the protobuf does not parse)");
  const std::string whole = addModel().SerializeAsString();
  const std::string truncated = write("truncated", whole.substr(0, 30));
  EXPECT_FALSE(frontend::importOnnx(context, truncated, {}, error));
  EXPECT_EQ(error.message,
            truncated + ": not an ONNX model (the protobuf does not parse)");
  EXPECT_FALSE(frontend::importOnnx(context, tempPath("absent"), {}, error));
  EXPECT_EQ(error.message, tempPath("absent") + ": cannot open the file");
}

TEST(OnnxImporter, NamesWhatItDoesNotImport) {
  onnx::ModelProto old = addModel();
  old.mutable_opset_import(0)->set_version(11);
  auto error = importError("old", old);
  EXPECT_TRUE(error.unsupported);
  EXPECT_EQ(error.message,
            tempPath("old") + ": opset 11; weft imports opset 13 to 20");

  onnx::ModelProto hardmax = addModel();
  hardmax.mutable_graph()->mutable_node(0)->set_op_type("Hardmax");
  EXPECT_EQ(messageOf("hardmax", hardmax),
            tempPath("hardmax") +
                ": node 'add': op Hardmax is not imported (weft import "
                "--list-ops lists those that are)");

  onnx::ModelProto half = addModel();
  half.mutable_graph()->mutable_initializer(0)->set_data_type(
      onnx::TensorProto::FLOAT16);
  EXPECT_EQ(messageOf("half", half),
            tempPath("half") + ": tensor 'w' has element type FLOAT16; weft "
                               "imports FLOAT, INT64, INT32 and BOOL tensors");

  EXPECT_EQ(messageOf("symbolic", addModel(), {}),
            tempPath("symbolic") +
                ": input 'x' has a symbolic dimension 'n'; give its shape "
                "with --input-shape x=AxB…");
}

TEST(OnnxImporter, RefusesInconsistentGraphs) {
  onnx::ModelProto ghost = addModel();
  ghost.mutable_graph()->mutable_node(0)->set_input(1, "ghost");
  auto error = importError("ghost", ghost);
  EXPECT_FALSE(error.unsupported);
  EXPECT_EQ(error.message,
            tempPath("ghost") +
                ": node 'add' reads 'ghost', which nothing defines");

  onnx::ModelProto wide = addModel();
  wide.mutable_graph()->mutable_initializer(0)->set_dims(0, 3);
  for (int i = 0; i < 2; ++i)
    wide.mutable_graph()->mutable_initializer(0)->add_float_data(i);
  EXPECT_EQ(messageOf("wide", wide),
            tempPath("wide") + ": node 'add': shapes do not broadcast: "
                               "dimension 0 is 2 and 3");

  onnx::ModelProto reshape = addModel();
  onnx::NodeProto *node = reshape.mutable_graph()->mutable_node(0);
  node->set_op_type("Reshape");
  node->set_name("view");
  node->set_input(1, "shape");
  onnx::TensorProto *shape = reshape.mutable_graph()->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(1);
  shape->add_int64_data(3);
  EXPECT_EQ(messageOf("reshape", reshape),
            tempPath("reshape") +
                ": Reshape 'view' cannot reshape 4 elements to 3");

  // What the op's type inference rejects (the fuzzer's first finding: it
  // was LLVM's fatal error).
  onnx::ModelProto concat = addModel();
  concat.mutable_graph()->mutable_node(0)->set_op_type("Concat");
  concat.mutable_graph()->mutable_initializer(0)->set_dims(1, 3);
  for (int i = 0; i < 2; ++i)
    concat.mutable_graph()->mutable_initializer(0)->add_float_data(i);
  EXPECT_EQ(messageOf("concat", concat),
            tempPath("concat") + ": node 'add': 'weft.concat' inputs "
                                 "'tensor<2x2xf32>' and 'tensor<2x3xf32>' "
                                 "differ in dimension 1");

  EXPECT_EQ(messageOf("rank", addModel(), {{{"x", {4}}}}),
            tempPath("rank") + ": --input-shape gives input 'x' rank 1; the "
                               "model has rank 2");
  EXPECT_EQ(messageOf("fixed", addModel(), {{{"x", {3, 2}}}}),
            tempPath("fixed") + ": --input-shape gives input 'x' dimension 0 "
                                "= 3; the model fixes it to 2");
}

TEST(OnnxImporter, RefusesBadTensorData) {
  onnx::ModelProto few = addModel();
  few.mutable_graph()
      ->mutable_initializer(0)
      ->mutable_float_data()
      ->RemoveLast();
  EXPECT_EQ(messageOf("few", few),
            tempPath("few") +
                ": tensor 'w' holds 3 elements, its shape needs 4");

  onnx::ModelProto odd = addModel();
  onnx::TensorProto *w = odd.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_raw_data(std::string(15, '\0'));
  EXPECT_EQ(messageOf("odd", odd),
            tempPath("odd") + ": tensor 'w' has 15 bytes of data, not a "
                              "multiple of its element size 4");

  onnx::ModelProto negative = addModel();
  negative.mutable_graph()->mutable_initializer(0)->set_dims(0, -2);
  EXPECT_EQ(messageOf("negative", negative),
            tempPath("negative") +
                ": tensor 'w' has the negative dimension -2");
}

TEST(OnnxImporter, RefusesBadExternalData) {
  auto external = [](const std::string &location, const std::string &offset,
                     const std::string &length) {
    onnx::ModelProto model = addModel();
    onnx::TensorProto *w = model.mutable_graph()->mutable_initializer(0);
    w->clear_float_data();
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    for (auto [key, value] : {std::pair{"location", location},
                              {"offset", offset},
                              {"length", length}}) {
      auto *entry = w->add_external_data();
      entry->set_key(key);
      entry->set_value(value);
    }
    return model;
  };
  write("weights.bin", std::string(16, '\0'));
  const std::string data = "weft_onnx_weights.bin";
  EXPECT_EQ(messageOf("external", external(data, "0", "16")), "(no error)");
  EXPECT_EQ(messageOf("past_end", external(data, "8", "16")),
            tempPath("past_end") +
                ": tensor 'w': external data [8, +16) "
                "runs past the end of " +
                tempPath("weights.bin") + " (16 bytes)");
  EXPECT_EQ(messageOf("no_file", external("weft_onnx_absent.bin", "0", "16")),
            tempPath("no_file") +
                ": tensor 'w': cannot open its external "
                "data " +
                tempPath("absent.bin"));
  EXPECT_EQ(messageOf("escape", external("../etc/passwd", "0", "16")),
            tempPath("escape") + ": tensor 'w': external data location "
                                 "'../etc/passwd' is not a relative path "
                                 "inside the model's folder");
  EXPECT_EQ(messageOf("nan_offset", external(data, "x1", "16")),
            tempPath("nan_offset") +
                ": tensor 'w': external data offset 'x1' is not a number");
}

TEST(OnnxImporter, SequencesOfLargeInitializersConcatenate) {
  // A weight above the folding size stays unread until used; a sequence
  // of it still concatenates (it used to be read as a missing value).
  onnx::ModelProto model = addModel();
  onnx::GraphProto *graph = model.mutable_graph();
  onnx::TensorProto *w = graph->mutable_initializer(0);
  w->clear_float_data();
  w->set_dims(1, 40000);
  w->set_raw_data(std::string(2 * 40000 * 4, '\0'));
  onnx::NodeProto *node = graph->mutable_node(0);
  node->set_op_type("SequenceConstruct");
  node->set_input(0, "w");
  node->set_output(0, "pair");
  onnx::NodeProto *concat = graph->add_node();
  concat->set_op_type("ConcatFromSequence");
  concat->add_input("pair");
  concat->add_output("y");
  auto *axis = concat->add_attribute();
  axis->set_name("axis");
  axis->set_type(onnx::AttributeProto::INT);
  axis->set_i(0);
  EXPECT_EQ(messageOf("large_sequence", model), "(no error)");
}

TEST(OnnxImporter, FoldsWithinItsAllowanceAndEmitsTheRest) {
  // ConstantOfShape([64, 64]) doubled eight times: each value known at
  // import holds 4096 elements. With an allowance of 10000 two of them fold
  // and the rest import as operations (the chain once took minutes and
  // gigabytes at large shapes, each value kept as doubles).
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(17);
  onnx::GraphProto *graph = model.mutable_graph();
  onnx::TensorProto *shape = graph->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(2);
  shape->add_int64_data(64);
  shape->add_int64_data(64);
  onnx::NodeProto *fill = graph->add_node();
  fill->set_op_type("ConstantOfShape");
  fill->add_input("shape");
  fill->add_output("v0");
  auto *value = fill->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  value->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  value->mutable_t()->add_dims(1);
  value->mutable_t()->add_float_data(1.0f);
  for (int i = 0; i < 8; ++i) {
    onnx::NodeProto *add = graph->add_node();
    add->set_op_type("Add");
    add->add_input("v" + std::to_string(i));
    add->add_input("v" + std::to_string(i));
    add->add_output("v" + std::to_string(i + 1));
  }
  graph->add_output()->set_name("v8");

  auto countAdds = [&](int64_t allowance) {
    frontend::OnnxImportOptions options;
    options.foldElements = allowance;
    const std::string path = write("fold_allowance", model.SerializeAsString());
    mlir::MLIRContext context;
    frontend::OnnxImportError error;
    auto module = frontend::importOnnx(context, path, options, error);
    EXPECT_TRUE(module) << error.message;
    int adds = 0;
    if (module)
      module->walk([&](mlir::Operation *op) {
        adds += op->getName().getStringRef() == "weft.add";
      });
    return adds;
  };
  EXPECT_EQ(countAdds(int64_t{1} << 26), 0); // all folded
  EXPECT_EQ(countAdds(10000), 7);            // v0 and v1 folded
}
