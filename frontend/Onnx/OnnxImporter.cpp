// The ONNX importer: one handler per op type; values known at import time
// (initializers, constants, shapes) are kept as host literals so that shape
// subgraphs fold to static shapes, and become weft.constant only when a
// computed op reads them.
#include "frontend/Onnx/OnnxImporter.h"

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/Support/Path.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <numeric>
#include <optional>

using namespace mlir;
using namespace weft;
using namespace weft::frontend;

namespace {
/// A tensor whose value is known at import: data as doubles (floats) or
/// int64 (integers and bools).
struct Literal {
  int32_t type = onnx::TensorProto::FLOAT;
  std::vector<int64_t> shape;
  std::vector<double> floats;
  std::vector<int64_t> ints;

  bool isInteger() const {
    return type == onnx::TensorProto::INT64 ||
           type == onnx::TensorProto::INT32 || type == onnx::TensorProto::BOOL;
  }
  int64_t size() const {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1},
                           std::multiplies<>());
  }
  double at(int64_t i) const {
    return isInteger() ? static_cast<double>(ints[i]) : floats[i];
  }
};

/// Raised inside the importer; caught at the top.
struct ImportFailure {
  std::string message;
  bool unsupported;
};

[[noreturn]] void unsupported(const std::string &message) {
  throw ImportFailure{message, true};
}
[[noreturn]] void invalid(const std::string &message) {
  throw ImportFailure{message, false};
}

int64_t product(ArrayRef<int64_t> dims) {
  return std::accumulate(dims.begin(), dims.end(), int64_t{1},
                         std::multiplies<>());
}

class Importer {
public:
  Importer(MLIRContext &context, const std::string &path,
           const OnnxImportOptions &options)
      : context(context), path(path), options(options), builder(&context) {}

  OwningOpRef<ModuleOp> run();

private:
  struct Entry {
    Value value;
    std::optional<Literal> literal;
  };
  using Handler = std::function<void(const onnx::NodeProto &)>;

  Type elementType(int32_t onnxType, const std::string &what);
  Literal readTensor(const onnx::TensorProto &tensor);
  Value materialize(const Literal &literal);
  Value value(const std::string &name);
  const Literal *literal(const std::string &name);
  RankedTensorType typeOf(Value v) {
    return cast<RankedTensorType>(v.getType());
  }
  Location loc(const onnx::NodeProto &node) {
    return NameLoc::get(StringAttr::get(&context, node.name().empty()
                                                      ? node.op_type()
                                                      : node.name()),
                        FileLineColLoc::get(&context, path, 1, 1));
  }
  void define(const onnx::NodeProto &node, int output, Value v) {
    entries[node.output(output)] = Entry{v, std::nullopt};
  }
  void defineLiteral(const onnx::NodeProto &node, int output, Literal l) {
    entries[node.output(output)] = Entry{Value(), std::move(l)};
  }
  Value broadcastTo(Location at, Value v, ArrayRef<int64_t> shape);
  std::pair<Value, Value> broadcastPair(Location at, Value a, Value b);
  std::vector<int64_t> intsOf(const std::string &name, const char *what);
  void registerHandlers();

  MLIRContext &context;
  std::string path;
  const OnnxImportOptions &options;
  OpBuilder builder;
  std::map<std::string, Entry> entries;
  std::map<std::string, Handler> handlers;
  int64_t opset = 0;
  const onnx::NodeProto *current = nullptr;
};

const onnx::AttributeProto *attribute(const onnx::NodeProto &node,
                                      const char *name) {
  for (const auto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t intAttr(const onnx::NodeProto &node, const char *name,
                int64_t otherwise) {
  const auto *a = attribute(node, name);
  return a ? a->i() : otherwise;
}

float floatAttr(const onnx::NodeProto &node, const char *name,
                float otherwise) {
  const auto *a = attribute(node, name);
  return a ? a->f() : otherwise;
}

std::vector<int64_t> intsAttr(const onnx::NodeProto &node, const char *name) {
  const auto *a = attribute(node, name);
  if (!a)
    return {};
  return {a->ints().begin(), a->ints().end()};
}

/// A node for messages: its name, or the first value it writes.
std::string label(const onnx::NodeProto &node) {
  if (!node.name().empty())
    return "'" + node.name() + "'";
  return "(" + node.op_type() + " writing '" +
         (node.output_size() ? node.output(0) : "") + "')";
}

int64_t normalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    invalid("axis " + std::to_string(axis) + " is outside a rank-" +
            std::to_string(rank) + " tensor");
  return axis < 0 ? axis + rank : axis;
}
} // namespace

Type Importer::elementType(int32_t onnxType, const std::string &what) {
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
    return builder.getF32Type();
  case onnx::TensorProto::INT64:
    return builder.getI64Type();
  case onnx::TensorProto::INT32:
    return builder.getI32Type();
  case onnx::TensorProto::BOOL:
    return builder.getI1Type();
  case onnx::TensorProto::BFLOAT16:
    return builder.getBF16Type();
  default:
    unsupported(what + " has element type " +
                onnx::TensorProto::DataType_Name(
                    static_cast<onnx::TensorProto::DataType>(onnxType)) +
                "; weft imports FLOAT, BFLOAT16, INT64, INT32 and BOOL");
  }
}

Literal Importer::readTensor(const onnx::TensorProto &tensor) {
  Literal l;
  l.type = tensor.data_type();
  l.shape.assign(tensor.dims().begin(), tensor.dims().end());
  const std::string what = "tensor '" + tensor.name() + "'";
  elementType(l.type, what); // rejects what weft cannot hold
  std::string raw = tensor.raw_data();
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto &entry : tensor.external_data()) {
      if (entry.key() == "location")
        location = entry.value();
      else if (entry.key() == "offset")
        offset = std::stoll(entry.value());
      else if (entry.key() == "length")
        length = std::stoll(entry.value());
    }
    llvm::SmallString<256> file(llvm::sys::path::parent_path(path));
    llvm::sys::path::append(file, location);
    std::ifstream in(std::string(file), std::ios::binary);
    if (!in)
      invalid(what + ": cannot open its external data " + std::string(file));
    in.seekg(0, std::ios::end);
    const int64_t size = in.tellg();
    if (length < 0)
      length = size - offset;
    if (offset < 0 || offset + length > size)
      invalid(what + ": external data [" + std::to_string(offset) + ", " +
              std::to_string(offset + length) + ") runs past the end of " +
              std::string(file) + " (" + std::to_string(size) + " bytes)");
    raw.resize(length);
    in.seekg(offset);
    in.read(raw.data(), length);
  }
  const int64_t n = l.size();
  auto need = [&](int64_t have) {
    if (have != n)
      invalid(what + " holds " + std::to_string(have) +
              " elements, its shape needs " + std::to_string(n));
  };
  switch (l.type) {
  case onnx::TensorProto::FLOAT:
    if (!raw.empty()) {
      need(raw.size() / 4);
      l.floats.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, raw.data() + 4 * i, 4);
        l.floats[i] = f;
      }
    } else {
      need(tensor.float_data_size());
      l.floats.assign(tensor.float_data().begin(), tensor.float_data().end());
    }
    break;
  case onnx::TensorProto::INT64:
    if (!raw.empty()) {
      need(raw.size() / 8);
      l.ints.resize(n);
      std::memcpy(l.ints.data(), raw.data(), 8 * n);
    } else {
      need(tensor.int64_data_size());
      l.ints.assign(tensor.int64_data().begin(), tensor.int64_data().end());
    }
    break;
  case onnx::TensorProto::INT32:
  case onnx::TensorProto::BOOL: {
    const int64_t width = l.type == onnx::TensorProto::BOOL ? 1 : 4;
    if (!raw.empty()) {
      need(raw.size() / width);
      l.ints.resize(n);
      for (int64_t i = 0; i < n; ++i) {
        int32_t v = 0;
        std::memcpy(&v, raw.data() + width * i, width);
        l.ints[i] = width == 1 ? (v & 0xff) != 0 : v;
      }
    } else {
      need(tensor.int32_data_size());
      l.ints.assign(tensor.int32_data().begin(), tensor.int32_data().end());
    }
    break;
  }
  default:
    unsupported(what + ": its element type is not read yet");
  }
  return l;
}

Value Importer::materialize(const Literal &l) {
  Type element = elementType(l.type, "a constant");
  auto type = RankedTensorType::get(l.shape, element);
  DenseElementsAttr attr;
  if (element.isF32()) {
    std::vector<float> values(l.floats.begin(), l.floats.end());
    attr = DenseElementsAttr::get(type, ArrayRef<float>(values));
  } else if (element.isInteger(64)) {
    attr = DenseElementsAttr::get(type, ArrayRef<int64_t>(l.ints));
  } else if (element.isInteger(32)) {
    std::vector<int32_t> values(l.ints.begin(), l.ints.end());
    attr = DenseElementsAttr::get(type, ArrayRef<int32_t>(values));
  } else if (element.isInteger(1)) {
    std::vector<bool> values(l.ints.begin(), l.ints.end());
    SmallVector<bool> flags(values.begin(), values.end());
    attr = DenseElementsAttr::get(type, ArrayRef<bool>(flags));
  } else {
    unsupported("constants of this element type are not materialized yet");
  }
  return builder.create<ConstantOp>(builder.getUnknownLoc(), attr);
}

Value Importer::value(const std::string &name) {
  auto it = entries.find(name);
  if (it == entries.end())
    invalid("node " + (current ? label(*current) : "") + " reads '" + name +
            "', which nothing defines");
  if (!it->second.value)
    it->second.value = materialize(*it->second.literal);
  return it->second.value;
}

const Literal *Importer::literal(const std::string &name) {
  auto it = entries.find(name);
  if (it == entries.end() || !it->second.literal)
    return nullptr;
  return &*it->second.literal;
}

std::vector<int64_t> Importer::intsOf(const std::string &name,
                                      const char *what) {
  const Literal *l = literal(name);
  if (!l || !l->isInteger())
    unsupported(std::string(what) + " '" + name +
                "' is computed at run time; weft needs it known at import "
                "(give --input-shape for symbolic dimensions)");
  return l->ints;
}

Value Importer::broadcastTo(Location at, Value v, ArrayRef<int64_t> shape) {
  RankedTensorType type = typeOf(v);
  if (type.getShape() == shape)
    return v;
  const int64_t offset = shape.size() - type.getRank();
  SmallVector<int64_t> dims;
  for (int64_t d = 0; d < type.getRank(); ++d)
    dims.push_back(offset + d);
  return builder.create<BroadcastOp>(
      at, RankedTensorType::get(shape, type.getElementType()), v,
      builder.getDenseI64ArrayAttr(dims));
}

/// The numpy broadcast of two shapes; `what` starts the message when they do
/// not broadcast.
SmallVector<int64_t> broadcastShape(ArrayRef<int64_t> x, ArrayRef<int64_t> y,
                                    const std::string &what) {
  const size_t rank = std::max(x.size(), y.size());
  SmallVector<int64_t> shape(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t p = i + x.size() >= rank ? x[i + x.size() - rank] : 1;
    int64_t q = i + y.size() >= rank ? y[i + y.size() - rank] : 1;
    if (p != q && p != 1 && q != 1)
      invalid(what + " do not broadcast: dimension " + std::to_string(i) +
              " is " + std::to_string(p) + " and " + std::to_string(q));
    shape[i] = p == 1 ? q : p;
  }
  return shape;
}

std::pair<Value, Value> Importer::broadcastPair(Location at, Value a, Value b) {
  SmallVector<int64_t> shape =
      broadcastShape(typeOf(a).getShape(), typeOf(b).getShape(), "shapes");
  return {broadcastTo(at, a, shape), broadcastTo(at, b, shape)};
}

void Importer::registerHandlers() {
  auto binary = [&](auto tag) {
    using OpT = decltype(tag);
    return [this](const onnx::NodeProto &node) {
      const Literal *a = literal(node.input(0)), *b = literal(node.input(1));
      // Integer arithmetic on known values (shape computations) folds.
      if (a && b && a->isInteger() && b->isInteger() &&
          (a->size() == 1 || b->size() == 1 || a->shape == b->shape)) {
        Literal r = a->size() >= b->size() ? *a : *b;
        for (int64_t i = 0; i < r.size(); ++i) {
          int64_t x = a->ints[a->size() == 1 ? 0 : i],
                  y = b->ints[b->size() == 1 ? 0 : i];
          if constexpr (std::is_same_v<OpT, AddOp>)
            r.ints[i] = x + y;
          else if constexpr (std::is_same_v<OpT, SubOp>)
            r.ints[i] = x - y;
          else if constexpr (std::is_same_v<OpT, MulOp>)
            r.ints[i] = x * y;
          else if constexpr (std::is_same_v<OpT, DivOp>) {
            if (y == 0)
              invalid("node " + label(node) + " divides by zero");
            r.ints[i] = x / y;
          } else
            unsupported("integer " + node.op_type() + " is not folded");
        }
        return defineLiteral(node, 0, r);
      }
      auto [x, y] =
          broadcastPair(loc(node), value(node.input(0)), value(node.input(1)));
      define(node, 0, builder.create<OpT>(loc(node), x, y));
    };
  };
  handlers["Add"] = binary(AddOp());
  handlers["Sub"] = binary(SubOp());
  handlers["Mul"] = binary(MulOp());
  handlers["Div"] = binary(DivOp());
  handlers["Pow"] = [this](const onnx::NodeProto &node) {
    Value base = value(node.input(0)), exponent = value(node.input(1));
    Type element = typeOf(base).getElementType();
    if (!isa<FloatType>(element))
      unsupported("Pow " + label(node) + " of integers is not imported");
    if (typeOf(exponent).getElementType() != element) // T1 may differ
      exponent = builder.create<ConvertOp>(
          loc(node), typeOf(exponent).clone(element), exponent);
    auto [x, y] = broadcastPair(loc(node), base, exponent);
    define(node, 0, builder.create<PowOp>(loc(node), x, y));
  };
  // Max and Min take any number of inputs, broadcast together.
  auto variadic = [&](auto tag) {
    using OpT = decltype(tag);
    return [this](const onnx::NodeProto &node) {
      Value result = value(node.input(0));
      for (int i = 1; i < node.input_size(); ++i) {
        auto [x, y] = broadcastPair(loc(node), result, value(node.input(i)));
        result = builder.create<OpT>(loc(node), x, y);
      }
      define(node, 0, result);
    };
  };
  handlers["Max"] = variadic(MaxOp());
  handlers["Min"] = variadic(MinOp());

  auto unary = [&](auto tag) {
    using OpT = decltype(tag);
    return [this](const onnx::NodeProto &node) {
      define(node, 0, builder.create<OpT>(loc(node), value(node.input(0))));
    };
  };
  handlers["Neg"] = unary(NegOp());
  handlers["Abs"] = unary(AbsOp());
  handlers["Exp"] = unary(ExpOp());
  handlers["Log"] = unary(LogOp());
  handlers["Tanh"] = unary(TanhOp());
  handlers["Sigmoid"] = unary(SigmoidOp());
  handlers["Sqrt"] = unary(SqrtOp());
  handlers["Erf"] = unary(ErfOp());
  handlers["Relu"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    Value zero = builder.create<ConstantOp>(
        loc(node),
        DenseElementsAttr::get(
            typeOf(x), builder.getZeroAttr(typeOf(x).getElementType())));
    define(node, 0, builder.create<MaxOp>(loc(node), x, zero));
  };
  handlers["Reciprocal"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    Value one = builder.create<ConstantOp>(
        loc(node),
        DenseElementsAttr::get(
            typeOf(x), builder.getFloatAttr(typeOf(x).getElementType(), 1.0)));
    define(node, 0, builder.create<DivOp>(loc(node), one, x));
  };
  handlers["Identity"] = [this](const onnx::NodeProto &node) {
    entries[node.output(0)] = entries.at(node.input(0));
  };
  handlers["Constant"] = [this](const onnx::NodeProto &node) {
    const auto *t = attribute(node, "value");
    if (!t || !t->has_t())
      unsupported("Constant " + label(node) +
                  " without a tensor 'value' is not imported");
    defineLiteral(node, 0, readTensor(t->t()));
  };
  handlers["Shape"] = [this](const onnx::NodeProto &node) {
    ArrayRef<int64_t> shape = typeOf(value(node.input(0))).getShape();
    const int64_t rank = shape.size();
    int64_t start = intAttr(node, "start", 0), end = intAttr(node, "end", rank);
    start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
    end = std::clamp<int64_t>(end < 0 ? end + rank : end, 0, rank);
    Literal l{onnx::TensorProto::INT64, {std::max<int64_t>(0, end - start)}};
    l.ints.assign(shape.begin() + start, shape.begin() + std::max(start, end));
    defineLiteral(node, 0, l);
  };
  handlers["Cast"] = [this](const onnx::NodeProto &node) {
    const int32_t to = intAttr(node, "to", 0);
    if (const Literal *l = literal(node.input(0))) {
      Literal r = *l;
      r.type = to;
      if (r.isInteger() && !l->isInteger())
        for (double f : l->floats)
          r.ints.push_back(static_cast<int64_t>(f));
      if (!r.isInteger() && l->isInteger())
        for (int64_t i : l->ints)
          r.floats.push_back(static_cast<double>(i));
      if (to == onnx::TensorProto::BOOL)
        for (int64_t &i : r.ints)
          i = i != 0;
      elementType(to, "Cast " + label(node) + "");
      return defineLiteral(node, 0, r);
    }
    Value x = value(node.input(0));
    Type element = elementType(to, "Cast " + label(node) + "");
    if (element == typeOf(x).getElementType())
      return define(node, 0, x);
    define(node, 0,
           builder.create<ConvertOp>(loc(node), typeOf(x).clone(element), x));
  };
  auto reshapeTo = [this](const onnx::NodeProto &node,
                          ArrayRef<int64_t> shape) {
    if (const Literal *l = literal(node.input(0))) {
      Literal r = *l;
      r.shape.assign(shape.begin(), shape.end());
      return defineLiteral(node, 0, r);
    }
    Value x = value(node.input(0));
    define(node, 0,
           builder.create<ReshapeOp>(loc(node), typeOf(x).clone(shape), x));
  };
  auto shapeOf = [this](const std::string &name) -> std::vector<int64_t> {
    if (const Literal *l = literal(name))
      return l->shape;
    ArrayRef<int64_t> s = typeOf(value(name)).getShape();
    return {s.begin(), s.end()};
  };
  handlers["Reshape"] = [=](const onnx::NodeProto &node) {
    std::vector<int64_t> in = shapeOf(node.input(0));
    std::vector<int64_t> shape = intsOf(node.input(1), "Reshape's shape");
    const bool allowZero = intAttr(node, "allowzero", 0) != 0;
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 0 && !allowZero && i < in.size())
        shape[i] = in[i];
      if (shape[i] == -1)
        infer = i;
      else
        known *= shape[i];
    }
    if (infer >= 0)
      shape[infer] = known ? product(in) / known : 0;
    if (product(shape) != product(in))
      invalid("Reshape " + label(node) + " cannot reshape " +
              std::to_string(product(in)) + " elements to " +
              std::to_string(product(shape)));
    reshapeTo(node, shape);
  };
  handlers["Flatten"] = [=](const onnx::NodeProto &node) {
    std::vector<int64_t> in = shapeOf(node.input(0));
    const int64_t rank = in.size();
    int64_t axis = intAttr(node, "axis", 1);
    if (axis < -rank || axis > rank)
      invalid("Flatten " + label(node) + ": axis " + std::to_string(axis) +
              " is outside [-" + std::to_string(rank) + ", " +
              std::to_string(rank) + "]");
    axis = axis < 0 ? axis + rank : axis;
    reshapeTo(node, {product(ArrayRef<int64_t>(in).take_front(axis)),
                     product(ArrayRef<int64_t>(in).drop_front(axis))});
  };
  handlers["Unsqueeze"] = [=](const onnx::NodeProto &node) {
    std::vector<int64_t> in = shapeOf(node.input(0));
    std::vector<int64_t> axes = intsOf(node.input(1), "Unsqueeze's axes");
    const int64_t rank = in.size() + axes.size();
    for (int64_t &a : axes)
      a = normalizeAxis(a, rank);
    std::sort(axes.begin(), axes.end());
    std::vector<int64_t> shape;
    for (int64_t d = 0, i = 0; d < rank; ++d)
      shape.push_back(
          std::binary_search(axes.begin(), axes.end(), d) ? 1 : in[i++]);
    reshapeTo(node, shape);
  };
  handlers["Squeeze"] = [=](const onnx::NodeProto &node) {
    std::vector<int64_t> in = shapeOf(node.input(0));
    std::vector<int64_t> axes;
    if (node.input_size() > 1)
      axes = intsOf(node.input(1), "Squeeze's axes");
    for (int64_t &a : axes)
      a = normalizeAxis(a, in.size());
    std::vector<int64_t> shape;
    for (int64_t d = 0; d < static_cast<int64_t>(in.size()); ++d) {
      bool listed = std::find(axes.begin(), axes.end(), d) != axes.end();
      if (listed && in[d] != 1)
        invalid("Squeeze " + label(node) + " squeezes dimension " +
                std::to_string(d) + " of size " + std::to_string(in[d]));
      if (!(listed || (axes.empty() && in[d] == 1)))
        shape.push_back(in[d]);
    }
    reshapeTo(node, shape);
  };
  handlers["Transpose"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    const int64_t rank = typeOf(x).getRank();
    std::vector<int64_t> perm = intsAttr(node, "perm");
    if (perm.empty())
      for (int64_t d = rank - 1; d >= 0; --d)
        perm.push_back(d);
    SmallVector<int64_t> shape;
    for (int64_t p : perm)
      shape.push_back(typeOf(x).getDimSize(p));
    define(node, 0,
           builder.create<TransposeOp>(loc(node), typeOf(x).clone(shape), x,
                                       builder.getDenseI64ArrayAttr(perm)));
  };
  auto softmax = [&](bool logarithm) {
    return [this, logarithm](const onnx::NodeProto &node) {
      Value x = value(node.input(0));
      int64_t axis =
          normalizeAxis(intAttr(node, "axis", -1), typeOf(x).getRank());
      auto dim = builder.getI64IntegerAttr(axis);
      define(node, 0,
             logarithm
                 ? builder.create<LogSoftmaxOp>(loc(node), x, dim).getResult()
                 : builder.create<SoftmaxOp>(loc(node), x, dim).getResult());
    };
  };
  handlers["Softmax"] = softmax(false);
  handlers["LogSoftmax"] = softmax(true);
  handlers["MatMul"] = [this](const onnx::NodeProto &node) {
    Value a = value(node.input(0)), b = value(node.input(1));
    ArrayRef<int64_t> x = typeOf(a).getShape(), y = typeOf(b).getShape();
    if (x.size() < 2 || y.size() < 2)
      unsupported("MatMul " + label(node) + " of a vector is not imported");
    // Broadcast the batch dimensions; a rank-2 rhs is shared as it is.
    SmallVector<int64_t> batch =
        broadcastShape(x.drop_back(2), y.drop_back(2),
                       "MatMul " + label(node) + ": batch dimensions");
    auto with = [&](ArrayRef<int64_t> tail) {
      SmallVector<int64_t> s(batch);
      s.append(tail.begin(), tail.end());
      return s;
    };
    a = broadcastTo(loc(node), a, with(x.take_back(2)));
    if (y.size() > 2)
      b = broadcastTo(loc(node), b, with(y.take_back(2)));
    define(node, 0,
           builder.create<MatmulOp>(loc(node), a, b, UnitAttr(), UnitAttr()));
  };
  handlers["Gemm"] = [this](const onnx::NodeProto &node) {
    Value a = value(node.input(0)), b = value(node.input(1));
    UnitAttr ta = intAttr(node, "transA", 0) ? builder.getUnitAttr() : nullptr;
    UnitAttr tb = intAttr(node, "transB", 0) ? builder.getUnitAttr() : nullptr;
    Value y = builder.create<MatmulOp>(loc(node), a, b, ta, tb);
    auto scaled = [&](Value v, float s) -> Value {
      if (s == 1.0f)
        return v;
      Value c = builder.create<ConstantOp>(
          loc(node), DenseElementsAttr::get(typeOf(v), s));
      return builder.create<MulOp>(loc(node), v, c);
    };
    y = scaled(y, floatAttr(node, "alpha", 1.0f));
    if (node.input_size() > 2 && !node.input(2).empty()) {
      Value c =
          broadcastTo(loc(node), value(node.input(2)), typeOf(y).getShape());
      y = builder.create<AddOp>(loc(node), y,
                                scaled(c, floatAttr(node, "beta", 1.0f)));
    }
    define(node, 0, y);
  };
  handlers["Gather"] = [this](const onnx::NodeProto &node) {
    const Literal *data = literal(node.input(0)), *idx = literal(node.input(1));
    if (data && idx && data->isInteger() && data->shape.size() == 1) {
      Literal r{data->type, idx->shape};
      for (int64_t i : idx->ints) {
        int64_t j = i < 0 ? i + data->size() : i;
        if (j < 0 || j >= data->size())
          invalid("Gather " + label(node) + ": index " + std::to_string(i) +
                  " is outside [0, " + std::to_string(data->size()) + ")");
        r.ints.push_back(data->ints[j]);
      }
      return defineLiteral(node, 0, r);
    }
    Value table = value(node.input(0));
    int64_t axis =
        normalizeAxis(intAttr(node, "axis", 0), typeOf(table).getRank());
    Value indices;
    if (idx) { // negative indices count from the end
      Literal fixed = *idx;
      for (int64_t &i : fixed.ints)
        if (i < 0)
          i += typeOf(table).getDimSize(axis);
      fixed.type = onnx::TensorProto::INT64;
      indices = materialize(fixed);
    } else { // negative indices count from the end: i + size where i < 0
      indices = value(node.input(1));
      RankedTensorType type = typeOf(indices);
      auto splat = [&](int64_t v) -> Value {
        return builder.create<ConstantOp>(
            loc(node),
            DenseElementsAttr::get(
                type, builder.getIntegerAttr(type.getElementType(), v)));
      };
      Value negative = builder.create<CompareOp>(
          loc(node), CompareDirection::lt, indices, splat(0));
      Value wrapped = builder.create<AddOp>(
          loc(node), indices, splat(typeOf(table).getDimSize(axis)));
      indices = builder.create<SelectOp>(loc(node), negative, wrapped, indices);
    }
    define(node, 0,
           builder.create<GatherOp>(loc(node), table, indices,
                                    builder.getI64IntegerAttr(axis)));
  };
  handlers["Concat"] = [this](const onnx::NodeProto &node) {
    bool allLiteral = true;
    for (const auto &in : node.input())
      allLiteral &= literal(in) && literal(in)->isInteger() &&
                    literal(in)->shape.size() == 1;
    if (allLiteral) {
      Literal r{literal(node.input(0))->type, {0}};
      for (const auto &in : node.input())
        r.ints.insert(r.ints.end(), literal(in)->ints.begin(),
                      literal(in)->ints.end());
      r.shape = {static_cast<int64_t>(r.ints.size())};
      return defineLiteral(node, 0, r);
    }
    SmallVector<Value> inputs;
    for (const auto &in : node.input())
      inputs.push_back(value(in));
    int64_t axis =
        normalizeAxis(intAttr(node, "axis", 0), typeOf(inputs[0]).getRank());
    define(node, 0,
           builder.create<ConcatOp>(loc(node), inputs,
                                    builder.getI64IntegerAttr(axis)));
  };
  auto reduce = [&](ReduceKind kind, bool axesAsInput) {
    return [this, kind, axesAsInput](const onnx::NodeProto &node) {
      Value x = value(node.input(0));
      const int64_t rank = typeOf(x).getRank();
      std::vector<int64_t> axes =
          axesAsInput ? (node.input_size() > 1 && !node.input(1).empty()
                             ? intsOf(node.input(1), "the reduction's axes")
                             : std::vector<int64_t>{})
                      : intsAttr(node, "axes");
      if (axes.empty() && intAttr(node, "noop_with_empty_axes", 0))
        return define(node, 0, x);
      if (axes.empty())
        for (int64_t d = 0; d < rank; ++d)
          axes.push_back(d);
      for (int64_t &a : axes)
        a = normalizeAxis(a, rank);
      std::sort(axes.begin(), axes.end());
      axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
      const bool keep = intAttr(node, "keepdims", 1) != 0;
      define(node, 0, builder.create<ReduceOp>(loc(node), kind, x, axes, keep));
    };
  };
  auto compare = [&](CompareDirection direction) {
    return [this, direction](const onnx::NodeProto &node) {
      auto [x, y] =
          broadcastPair(loc(node), value(node.input(0)), value(node.input(1)));
      define(node, 0, builder.create<CompareOp>(loc(node), direction, x, y));
    };
  };
  handlers["Equal"] = compare(CompareDirection::eq);
  handlers["Less"] = compare(CompareDirection::lt);
  handlers["LessOrEqual"] = compare(CompareDirection::le);
  handlers["Greater"] = compare(CompareDirection::gt);
  handlers["GreaterOrEqual"] = compare(CompareDirection::ge);
  auto splatLike = [this](Location at, Value like, double v) -> Value {
    RankedTensorType type = typeOf(like);
    Type element = type.getElementType();
    Attribute scalar = isa<FloatType>(element)
                           ? Attribute(builder.getFloatAttr(element, v))
                           : Attribute(builder.getIntegerAttr(
                                 element, static_cast<int64_t>(v)));
    return builder.create<ConstantOp>(
        at, DenseElementsAttr::get(type, cast<TypedAttr>(scalar)));
  };
  handlers["Not"] = [=](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    define(node, 0,
           builder.create<CompareOp>(loc(node), CompareDirection::eq, x,
                                     splatLike(loc(node), x, 0)));
  };
  auto logical = [=](bool isAnd) {
    return [=](const onnx::NodeProto &node) {
      auto [x, y] =
          broadcastPair(loc(node), value(node.input(0)), value(node.input(1)));
      // And: x ? y : false; Or: x ? true : y.
      define(node, 0,
             isAnd ? builder.create<SelectOp>(loc(node), x, y,
                                              splatLike(loc(node), x, 0))
                   : builder.create<SelectOp>(loc(node), x,
                                              splatLike(loc(node), x, 1), y));
    };
  };
  handlers["And"] = logical(true);
  handlers["Or"] = logical(false);
  handlers["Where"] = [this](const onnx::NodeProto &node) {
    Value c = value(node.input(0)), x = value(node.input(1)),
          y = value(node.input(2));
    const std::string what = "Where " + label(node) + ": shapes";
    SmallVector<int64_t> shape = broadcastShape(
        broadcastShape(typeOf(c).getShape(), typeOf(x).getShape(), what),
        typeOf(y).getShape(), what);
    define(node, 0,
           builder.create<SelectOp>(loc(node), broadcastTo(loc(node), c, shape),
                                    broadcastTo(loc(node), x, shape),
                                    broadcastTo(loc(node), y, shape)));
  };
  handlers["Expand"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    std::vector<int64_t> shape = intsOf(node.input(1), "Expand's shape");
    Value y = broadcastTo(loc(node), x,
                          broadcastShape(typeOf(x).getShape(), shape,
                                         "Expand " + label(node) + ": shapes"));
    if (y == x) // ONNX still produces a new tensor
      y = builder.create<ReshapeOp>(loc(node), typeOf(x), x);
    define(node, 0, y);
  };
  handlers["Slice"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    ArrayRef<int64_t> in = typeOf(x).getShape();
    const int64_t rank = in.size();
    std::vector<int64_t> starts = intsOf(node.input(1), "Slice's starts");
    std::vector<int64_t> ends = intsOf(node.input(2), "Slice's ends");
    std::vector<int64_t> axes, steps;
    if (node.input_size() > 3 && !node.input(3).empty())
      axes = intsOf(node.input(3), "Slice's axes");
    else
      for (size_t i = 0; i < starts.size(); ++i)
        axes.push_back(i);
    if (node.input_size() > 4 && !node.input(4).empty())
      steps = intsOf(node.input(4), "Slice's steps");
    else
      steps.assign(starts.size(), 1);
    SmallVector<int64_t> start(rank, 0), limit(in), stride(rank, 1), shape(in);
    for (size_t i = 0; i < axes.size(); ++i) {
      const int64_t a = normalizeAxis(axes[i], rank), size = in[a];
      if (steps[i] < 1)
        unsupported("Slice " + label(node) +
                    " with a negative or zero step is not imported");
      auto clampIndex = [&](int64_t v) {
        v = v < 0 ? v + size : v;
        return std::clamp<int64_t>(v, 0, size);
      };
      start[a] = clampIndex(starts[i]);
      limit[a] = std::max(start[a], clampIndex(ends[i]));
      stride[a] = steps[i];
      shape[a] = (limit[a] - start[a] + steps[i] - 1) / steps[i];
    }
    define(node, 0,
           builder.create<SliceOp>(loc(node), typeOf(x).clone(shape), x, start,
                                   limit, stride));
  };
  handlers["ConstantOfShape"] = [this](const onnx::NodeProto &node) {
    std::vector<int64_t> shape =
        intsOf(node.input(0), "ConstantOfShape's shape");
    Literal fill{onnx::TensorProto::FLOAT, {1}, {0.0}, {}};
    if (const auto *v = attribute(node, "value"); v && v->has_t())
      fill = readTensor(v->t());
    Literal r{fill.type, shape};
    if (fill.isInteger())
      r.ints.assign(r.size(), fill.ints.at(0));
    else
      r.floats.assign(r.size(), fill.floats.at(0));
    defineLiteral(node, 0, r);
  };
  handlers["Range"] = [this](const onnx::NodeProto &node) {
    const Literal *s = literal(node.input(0)), *l = literal(node.input(1)),
                  *d = literal(node.input(2));
    if (!s || !l || !d)
      unsupported("Range " + label(node) +
                  " with bounds computed at run time is not imported");
    const double start = s->at(0), limit = l->at(0), delta = d->at(0);
    if (delta == 0)
      invalid("Range " + label(node) + " has a zero delta");
    const int64_t n = std::max<int64_t>(
        0, static_cast<int64_t>(std::ceil((limit - start) / delta)));
    Literal r{s->type, {n}};
    for (int64_t i = 0; i < n; ++i) {
      if (s->isInteger())
        r.ints.push_back(static_cast<int64_t>(start + i * delta));
      else
        r.floats.push_back(start + i * delta);
    }
    defineLiteral(node, 0, r);
  };
  handlers["Clip"] = [=](const onnx::NodeProto &node) {
    Value y = value(node.input(0));
    if (node.input_size() > 1 && !node.input(1).empty())
      y = builder.create<MaxOp>(
          loc(node), y,
          broadcastTo(loc(node), value(node.input(1)), typeOf(y).getShape()));
    if (node.input_size() > 2 && !node.input(2).empty())
      y = builder.create<MinOp>(
          loc(node), y,
          broadcastTo(loc(node), value(node.input(2)), typeOf(y).getShape()));
    if (y == value(node.input(0)))
      y = builder.create<ReshapeOp>(loc(node), typeOf(y), y);
    define(node, 0, y);
  };
  handlers["LayerNormalization"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    const int64_t rank = typeOf(x).getRank();
    if (normalizeAxis(intAttr(node, "axis", -1), rank) != rank - 1)
      unsupported("LayerNormalization " + label(node) +
                  " over more than the last dimension is not imported");
    if (node.output_size() > 1)
      unsupported("LayerNormalization " + label(node) +
                  " with Mean / InvStdDev outputs is not imported");
    Value bias = node.input_size() > 2 && !node.input(2).empty()
                     ? value(node.input(2))
                     : Value();
    define(node, 0,
           builder.create<LayerNormOp>(
               loc(node), x, value(node.input(1)), bias,
               builder.getF32FloatAttr(floatAttr(node, "epsilon", 1e-5f))));
  };
  handlers["ReduceSum"] = reduce(ReduceKind::sum, true);
  handlers["ReduceMean"] = reduce(ReduceKind::mean, opset >= 18);
  handlers["ReduceMax"] = reduce(ReduceKind::max, opset >= 18);
  handlers["ReduceMin"] = reduce(ReduceKind::min, opset >= 18);
}

OwningOpRef<ModuleOp> Importer::run() {
  onnx::ModelProto model;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      invalid("cannot open the file");
    if (!model.ParseFromIstream(&in))
      invalid("not an ONNX model (the protobuf does not parse)");
  }
  for (const auto &o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx")
      opset = o.version();
  if (opset < 13 || opset > 17)
    unsupported("opset " + std::to_string(opset) +
                "; weft imports opset 13 to 17");
  registerHandlers();
  context.loadDialect<WeftDialect, func::FuncDialect>();
  const onnx::GraphProto &graph = model.graph();

  OwningOpRef<ModuleOp> module =
      ModuleOp::create(FileLineColLoc::get(&context, path, 1, 1));
  builder.setInsertionPointToEnd(module->getBody());
  for (const auto &init : graph.initializer())
    entries[init.name()] = Entry{Value(), readTensor(init)};

  SmallVector<Type> inputTypes;
  std::vector<std::string> inputNames;
  for (const auto &input : graph.input()) {
    if (entries.count(input.name())) // an initializer listed as an input
      continue;
    const auto &t = input.type().tensor_type();
    std::vector<int64_t> shape;
    auto given = options.inputShapes.find(input.name());
    if (given != options.inputShapes.end()) {
      shape = given->second;
    } else {
      for (const auto &d : t.shape().dim()) {
        if (!d.has_dim_value())
          unsupported(
              "input '" + input.name() + "' has a symbolic dimension" +
              (d.dim_param().empty() ? "" : " '" + d.dim_param() + "'") +
              "; give its shape with --input-shape " + input.name() + "=AxB…");
        shape.push_back(d.dim_value());
      }
    }
    inputTypes.push_back(RankedTensorType::get(
        shape, elementType(t.elem_type(), "input '" + input.name() + "'")));
    inputNames.push_back(input.name());
  }
  auto func = builder.create<func::FuncOp>(
      FileLineColLoc::get(&context, path, 1, 1), "forward",
      builder.getFunctionType(inputTypes, {}));
  Block *body = func.addEntryBlock();
  for (auto [i, name] : llvm::enumerate(inputNames)) {
    func.setArgAttr(i, WeftDialect::kInputAttrName,
                    builder.getStringAttr(name));
    entries[name] = Entry{body->getArgument(i), std::nullopt};
  }
  builder.setInsertionPointToStart(body);

  for (const auto &node : graph.node()) {
    current = &node;
    if (!node.domain().empty() && node.domain() != "ai.onnx")
      unsupported("node " + label(node) + " is in domain '" + node.domain() +
                  "'");
    auto handler = handlers.find(node.op_type());
    if (handler == handlers.end())
      unsupported("node " + label(node) + ": op " + node.op_type() +
                  " is not imported (weft import --list-ops lists those that "
                  "are)");
    handler->second(node);
  }

  SmallVector<Value> results;
  for (const auto &output : graph.output()) {
    Value v = value(output.name());
    if (isa<BlockArgument>(v) || v.getDefiningOp<ConstantOp>())
      unsupported("output '" + output.name() +
                  "' is an input or a constant; weft plans return computed "
                  "values");
    results.push_back(v);
  }
  builder.create<func::ReturnOp>(func.getLoc(), results);
  func.setFunctionType(
      builder.getFunctionType(inputTypes, ValueRange(results).getTypes()));
  for (auto [i, output] : llvm::enumerate(graph.output()))
    func.setResultAttr(i, WeftDialect::kOutputAttrName,
                       builder.getStringAttr(output.name()));
  return module;
}

OwningOpRef<ModuleOp>
weft::frontend::importOnnx(MLIRContext &context, const std::string &path,
                           const OnnxImportOptions &options,
                           OnnxImportError &error) {
  try {
    return Importer(context, path, options).run();
  } catch (const ImportFailure &failure) {
    error = {path + ": " + failure.message, failure.unsupported};
    return nullptr;
  }
}

std::vector<std::string> weft::frontend::supportedOnnxOps() {
  std::vector<std::string> names = {"Abs",       "Add",
                                    "And",       "Cast",
                                    "Clip",      "Concat",
                                    "Constant",  "ConstantOfShape",
                                    "Div",       "Equal",
                                    "Erf",       "Exp",
                                    "Expand",    "Flatten",
                                    "Gather",    "Gemm",
                                    "Greater",   "GreaterOrEqual",
                                    "Identity",  "LayerNormalization",
                                    "Less",      "LessOrEqual",
                                    "Log",       "LogSoftmax",
                                    "MatMul",    "Max",
                                    "Min",       "Mul",
                                    "Neg",       "Not",
                                    "Or",        "Pow",
                                    "Range",     "Reciprocal",
                                    "ReduceMax", "ReduceMean",
                                    "ReduceMin", "ReduceSum",
                                    "Relu",      "Reshape",
                                    "Shape",     "Sigmoid",
                                    "Slice",     "Softmax",
                                    "Sqrt",      "Squeeze",
                                    "Sub",       "Tanh",
                                    "Transpose", "Unsqueeze",
                                    "Where"};
  for (std::string &name : names)
    name += " 13-17";
  return names;
}
