// Internal to the ONNX importer: values known at import time (initializers,
// Constants, shapes and what is computed from them only) and the host
// evaluator that folds nodes over them, so that an export's shape subgraphs,
// masks and rotary tables become static shapes and constants.
#ifndef WEFT_FRONTEND_ONNX_ONNXLITERAL_H
#define WEFT_FRONTEND_ONNX_ONNXLITERAL_H

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace weft::frontend::onnx_import {

/// A tensor whose value is known at import: data as doubles (FLOAT, rounded
/// to float after every operation) or int64 (INT64, INT32, BOOL).
struct Literal {
  int32_t type = onnx::TensorProto::FLOAT;
  std::vector<int64_t> shape;
  std::vector<double> floats;
  std::vector<int64_t> ints;

  bool isInteger() const { return isIntegerType(type); }
  int64_t size() const;
  double at(int64_t i) const {
    return isInteger() ? static_cast<double>(ints[i]) : floats[i];
  }

  static bool isIntegerType(int32_t type) {
    return type == onnx::TensorProto::INT64 ||
           type == onnx::TensorProto::INT32 || type == onnx::TensorProto::BOOL;
  }
};

/// Raised anywhere in the importer and caught at its top: `unsupported` when
/// the model is valid ONNX that weft does not import.
struct ImportFailure {
  std::string message;
  bool unsupported;
};
[[noreturn]] void unsupported(const std::string &message);
[[noreturn]] void invalid(const std::string &message);

const onnx::AttributeProto *attribute(const onnx::NodeProto &node,
                                      const char *name);
int64_t intAttr(const onnx::NodeProto &node, const char *name,
                int64_t otherwise);
float floatAttr(const onnx::NodeProto &node, const char *name, float otherwise);
std::vector<int64_t> intsAttr(const onnx::NodeProto &node, const char *name);
/// A node for messages: its name, or its op and the first value it writes.
std::string label(const onnx::NodeProto &node);
/// `axis` in [-rank, rank) made non-negative, or an invalid-model error
/// naming `node`.
int64_t normalizeAxis(int64_t axis, int64_t rank, const onnx::NodeProto &node);
/// The numpy broadcast of two shapes; `what` starts the message when they do
/// not broadcast.
std::vector<int64_t> broadcastShape(const std::vector<int64_t> &x,
                                    const std::vector<int64_t> &y,
                                    const std::string &what);

/// A tensor's data as little-endian bytes (BOOL: one byte per element).
struct TensorData {
  int32_t type;
  std::vector<int64_t> shape;
  std::string bytes;
};

/// Reads an initializer or Constant tensor's data (raw, typed fields, or
/// external data next to `modelPath`), checked against its type and shape;
/// without `withData` only the checks run (external data is not read).
TensorData readTensorData(const onnx::TensorProto &tensor,
                          const std::string &modelPath, bool withData = true);

/// Reads an initializer or Constant tensor; external data is resolved next
/// to `modelPath`.
Literal readTensor(const onnx::TensorProto &tensor,
                   const std::string &modelPath);

/// The sizes of Split's parts along a dimension of `dim`: its `split` input
/// (null when omitted) or attribute, else equal parts (the last smaller, as
/// opset 18's num_outputs has it).
std::vector<int64_t> splitSizes(const onnx::NodeProto &node,
                                const Literal *split, int64_t dim);

/// `in` concatenated along `axis` (checked; messages name `node`).
Literal concatLiterals(const onnx::NodeProto &node,
                       const std::vector<const Literal *> &in, int64_t axis);

/// `x` split along non-negative `axis` into parts of `sizes` (which sum to
/// its dimension).
std::vector<Literal> splitLiteral(const Literal &x, int64_t axis,
                                  const std::vector<int64_t> &sizes);

/// Evaluates `node` when every input it reads is known (`inputs[i]` null for
/// an omitted optional input). Returns nothing when the op is not evaluated
/// on the host, its result would exceed the folding limit, or it would hold
/// more than `budget` elements, the import's allowance for all folded values
/// (reduced by what is returned); the importer then emits IR.
std::optional<std::vector<Literal>>
fold(const onnx::NodeProto &node, const std::vector<const Literal *> &inputs,
     int64_t &budget);

/// The ops `fold` evaluates and the importer has no IR lowering for:
/// they import only when their inputs are known.
const std::set<std::string> &foldOnlyOps();

} // namespace weft::frontend::onnx_import

#endif // WEFT_FRONTEND_ONNX_ONNXLITERAL_H
