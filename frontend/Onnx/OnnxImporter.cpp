// The ONNX importer: one handler per op type; values known at import time
// (initializers, constants, shapes) are kept as host literals so that shape
// subgraphs fold to static shapes, and become weft.constant only when a
// computed op reads them.
#include "frontend/Onnx/OnnxImporter.h"
#include "frontend/Onnx/OnnxLiteral.h"

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

using namespace weft::frontend::onnx_import;

namespace {
/// The opsets whose semantics the handlers follow: 13 (the last change of
/// most ops weft imports) to 20 (Gelu). torch.onnx.export writes 18 or 20.
constexpr int64_t kMinOpset = 13, kMaxOpset = 20;

std::vector<int64_t> vec(ArrayRef<int64_t> a) { return {a.begin(), a.end()}; }

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
  void importNode(const onnx::NodeProto &node);

  MLIRContext &context;
  std::string path;
  const OnnxImportOptions &options;
  OpBuilder builder;
  std::map<std::string, Entry> entries;
  std::map<std::string, Handler> handlers;
  int64_t opset = 0;
  const onnx::NodeProto *current = nullptr;
};

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

std::pair<Value, Value> Importer::broadcastPair(Location at, Value a, Value b) {
  std::vector<int64_t> shape =
      broadcastShape(vec(typeOf(a).getShape()), vec(typeOf(b).getShape()),
                     "node " + label(*current) + ": shapes");
  return {broadcastTo(at, a, shape), broadcastTo(at, b, shape)};
}

void Importer::registerHandlers() {
  auto binary = [&](auto tag) {
    using OpT = decltype(tag);
    return [this](const onnx::NodeProto &node) {
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
    using onnx::TensorProto;
    if (const auto *t = attribute(node, "value"); t && t->has_t())
      return defineLiteral(node, 0, readTensor(t->t(), path));
    if (const auto *f = attribute(node, "value_float"))
      return defineLiteral(node, 0, Literal{TensorProto::FLOAT, {}, {f->f()}});
    if (const auto *f = attribute(node, "value_floats"))
      return defineLiteral(node, 0,
                           Literal{TensorProto::FLOAT,
                                   {f->floats_size()},
                                   {f->floats().begin(), f->floats().end()}});
    if (const auto *i = attribute(node, "value_int"))
      return defineLiteral(node, 0,
                           Literal{TensorProto::INT64, {}, {}, {i->i()}});
    if (const auto *i = attribute(node, "value_ints"))
      return defineLiteral(node, 0,
                           Literal{TensorProto::INT64,
                                   {i->ints_size()},
                                   {},
                                   {i->ints().begin(), i->ints().end()}});
    unsupported("Constant " + label(node) +
                " holds no tensor, float or int value (sparse and string "
                "constants are not imported)");
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
    std::vector<int64_t> batch =
        broadcastShape(vec(x.drop_back(2)), vec(y.drop_back(2)),
                       "MatMul " + label(node) + ": batch dimensions");
    auto with = [&](ArrayRef<int64_t> tail) {
      SmallVector<int64_t> s(batch.begin(), batch.end());
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
    const Literal *idx = literal(node.input(1));
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
    std::vector<int64_t> shape =
        broadcastShape(broadcastShape(vec(typeOf(c).getShape()),
                                      vec(typeOf(x).getShape()), what),
                       vec(typeOf(y).getShape()), what);
    define(node, 0,
           builder.create<SelectOp>(loc(node), broadcastTo(loc(node), c, shape),
                                    broadcastTo(loc(node), x, shape),
                                    broadcastTo(loc(node), y, shape)));
  };
  handlers["Expand"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    std::vector<int64_t> shape = intsOf(node.input(1), "Expand's shape");
    Value y = broadcastTo(loc(node), x,
                          broadcastShape(vec(typeOf(x).getShape()), shape,
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
  // Reached only when the result is too large to fold: a splat constant.
  handlers["ConstantOfShape"] = [this](const onnx::NodeProto &node) {
    std::vector<int64_t> shape =
        intsOf(node.input(0), "ConstantOfShape's shape");
    Literal fill{onnx::TensorProto::FLOAT, {}, {0.0}, {}};
    if (const auto *v = attribute(node, "value"); v && v->has_t())
      fill = readTensor(v->t(), path);
    if (fill.size() != 1)
      invalid("ConstantOfShape " + label(node) +
              ": value does not hold one element");
    Type element = elementType(fill.type, "ConstantOfShape " + label(node));
    Attribute scalar =
        fill.isInteger()
            ? Attribute(builder.getIntegerAttr(element, fill.ints[0]))
            : Attribute(builder.getFloatAttr(element, fill.floats[0]));
    define(node, 0,
           builder.create<ConstantOp>(
               loc(node),
               DenseElementsAttr::get(RankedTensorType::get(shape, element),
                                      cast<TypedAttr>(scalar))));
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

void Importer::importNode(const onnx::NodeProto &node) {
  current = &node;
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    unsupported("node " + label(node) + " is in domain '" + node.domain() +
                "'");
  // A node whose inputs are all known is evaluated here (shape subgraphs,
  // masks, rotary tables); `fold` declines ops it does not evaluate and
  // results past its size limit.
  std::vector<const Literal *> known;
  bool allKnown = true;
  for (const std::string &input : node.input()) {
    const Literal *l = input.empty() ? nullptr : literal(input);
    allKnown &= input.empty() || l;
    known.push_back(l);
  }
  if (allKnown && node.input_size() > 0)
    if (auto results = fold(node, known)) {
      for (size_t i = 0; i < results->size(); ++i)
        defineLiteral(node, i, std::move((*results)[i]));
      return;
    }
  if (foldOnly(node.op_type())) {
    for (int i = 0; i < node.input_size(); ++i)
      if (!node.input(i).empty() && !literal(node.input(i)))
        unsupported(node.op_type() + " " + label(node) + " reads '" +
                    node.input(i) +
                    "', which is computed at run time; weft evaluates " +
                    node.op_type() + " only on values known at import");
    unsupported(node.op_type() + " " + label(node) +
                ": its result is too large to evaluate at import");
  }
  auto handler = handlers.find(node.op_type());
  if (handler == handlers.end())
    unsupported("node " + label(node) + ": op " + node.op_type() +
                " is not imported (weft import --list-ops lists those that "
                "are)");
  handler->second(node);
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
  if (opset < kMinOpset || opset > kMaxOpset)
    unsupported("opset " + std::to_string(opset) + "; weft imports opset " +
                std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset));
  registerHandlers();
  context.loadDialect<WeftDialect, func::FuncDialect>();
  const onnx::GraphProto &graph = model.graph();

  OwningOpRef<ModuleOp> module =
      ModuleOp::create(FileLineColLoc::get(&context, path, 1, 1));
  builder.setInsertionPointToEnd(module->getBody());
  for (const auto &init : graph.initializer())
    entries[init.name()] = Entry{Value(), readTensor(init, path)};

  SmallVector<Type> inputTypes;
  std::vector<std::string> inputNames;
  for (const auto &input : graph.input()) {
    if (entries.count(input.name())) // an initializer listed as an input
      continue;
    const auto &t = input.type().tensor_type();
    std::vector<int64_t> shape;
    auto given = options.inputShapes.find(input.name());
    const auto &dims = t.shape().dim();
    if (given != options.inputShapes.end()) {
      shape = given->second;
      if (t.has_shape() && dims.size() != static_cast<int>(shape.size()))
        invalid("--input-shape gives input '" + input.name() + "' rank " +
                std::to_string(shape.size()) + "; the model has rank " +
                std::to_string(dims.size()));
      for (int d = 0; d < dims.size() && t.has_shape(); ++d)
        if (dims[d].has_dim_value() && dims[d].dim_value() != shape[d])
          invalid("--input-shape gives input '" + input.name() +
                  "' dimension " + std::to_string(d) + " = " +
                  std::to_string(shape[d]) + "; the model fixes it to " +
                  std::to_string(dims[d].dim_value()));
    } else {
      if (!t.has_shape())
        unsupported("input '" + input.name() +
                    "' has no shape; give it with --input-shape " +
                    input.name() + "=AxB…");
      for (const auto &d : dims) {
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

  for (const auto &node : graph.node())
    importNode(node);

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
