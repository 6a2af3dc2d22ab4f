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
#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/Path.h"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
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
/// Initializers up to this many elements are read for folding at import.
constexpr int64_t kLiteralElements = int64_t{1} << 16;

std::vector<int64_t> vec(ArrayRef<int64_t> a) { return {a.begin(), a.end()}; }

int64_t product(ArrayRef<int64_t> dims) {
  return std::accumulate(dims.begin(), dims.end(), int64_t{1},
                         std::multiplies<>());
}

class Importer {
public:
  Importer(MLIRContext &context, const std::string &path,
           const OnnxImportOptions &options)
      : context(context), path(path), options(options), builder(&context),
        foldBudget(options.foldElements) {}

  OwningOpRef<ModuleOp> run();
  /// The ops with a handler (that emit IR).
  std::vector<std::string> opNames() {
    registerHandlers();
    std::vector<std::string> names;
    for (const auto &[name, handler] : handlers)
      names.push_back(name);
    return names;
  }

private:
  /// What a name holds: a computed value, a value known at import (or
  /// both, once materialized), or a sequence of tensors (SplitToSequence,
  /// SequenceInsert, a Loop's carried sequence), which import resolves.
  struct Entry {
    Value value;
    std::optional<Literal> literal;
    std::shared_ptr<const std::vector<Entry>> sequence;
    /// A large initializer, read only when a computed op reads it (straight
    /// from its bytes into a constant, never into a Literal).
    const onnx::TensorProto *initializer = nullptr;
  };
  using Handler = std::function<void(const onnx::NodeProto &)>;

  Type elementType(int32_t onnxType, const std::string &what);
  Value materialize(const Literal &literal);
  Value materialize(const onnx::TensorProto &initializer);
  /// An initializer: small ones (shapes, masks' pieces, scalars) are read
  /// into Literals for folding; large ones (weights) are only checked.
  Entry initializerEntry(const onnx::TensorProto &tensor) {
    int64_t n = 1;
    bool small = true;
    for (int64_t d : tensor.dims())
      small &= !__builtin_mul_overflow(n, d, &n) && n <= kLiteralElements;
    if (small) // readTensor checks it (a negative dimension included)
      return Entry{Value(), readTensor(tensor, path), nullptr};
    readTensorData(tensor, path, /*withData=*/false); // checks only
    return Entry{Value(), std::nullopt, nullptr, &tensor};
  }
  /// The shape of what `entry` holds (a tensor), without materializing it.
  std::vector<int64_t> shapeOf(const Entry &entry);
  /// What `entry` holds as a value, materialized if need be (uncached).
  Value tensorOf(const Entry &entry);
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
    bind(node.output(output), Entry{v, std::nullopt, nullptr});
  }
  void defineLiteral(const onnx::NodeProto &node, int output, Literal l) {
    bind(node.output(output), Entry{Value(), std::move(l), nullptr});
  }
  void defineSequence(const onnx::NodeProto &node, int output,
                      std::vector<Entry> items) {
    bind(node.output(output),
         Entry{Value(), std::nullopt,
               std::make_shared<const std::vector<Entry>>(std::move(items))});
  }
  /// Names are bound in the innermost open scope (a Loop body or an If
  /// branch being imported); closing it restores what they held outside.
  void bind(const std::string &name, Entry entry);
  const Entry &lookup(const std::string &name);
  const std::vector<Entry> &sequenceOf(const std::string &name);
  /// Imports `graph` (a Loop body, an If branch) inline with `inputs` bound
  /// to its inputs; what its outputs hold.
  std::vector<Entry> importSubgraph(const onnx::GraphProto &graph,
                                    const std::vector<Entry> &inputs);
  /// `items` (tensors of one rank and type) concatenated along `axis`, or
  /// stacked along a new one.
  Entry concatEntries(const onnx::NodeProto &node,
                      const std::vector<Entry> &items, int64_t axis,
                      bool newAxis);
  void registerControlFlow();
  /// Creates an op whose result type it infers; operands that the op
  /// rejects (an ill-formed model) are an import error naming the node, not
  /// the fatal error ODS's inferring builders raise.
  template <class OpT, class... Args>
  Value checked(Location at, Args &&...args) {
    auto op = builder.create<OpT>(at, builder.getNoneType(),
                                  std::forward<Args>(args)...);
    std::string why;
    SmallVector<Type> types;
    {
      ScopedDiagnosticHandler capture(&context, [&](Diagnostic &d) {
        why = d.str();
        return success();
      });
      if (failed(OpT::inferReturnTypes(
              &context, at, op->getOperands(), op->getRawDictionaryAttrs(),
              op->getPropertiesStorage(), op->getRegions(), types))) {
        op->erase();
        invalid("node " + (current ? label(*current) : std::string()) + ": " +
                why);
      }
    }
    op->getResult(0).setType(types[0]);
    return op->getResult(0);
  }
  Value broadcastTo(Location at, Value v, ArrayRef<int64_t> shape);
  std::pair<Value, Value> broadcastPair(Location at, Value a, Value b);
  Value transposed(Location at, Value v, ArrayRef<int64_t> perm);
  Value reshaped(Location at, Value v, ArrayRef<int64_t> shape);
  Value splat(Location at, RankedTensorType type, double v);
  Value einsum(const onnx::NodeProto &node);
  std::vector<int64_t> intsOf(const std::string &name, const char *what);
  void registerHandlers();
  void importNode(const onnx::NodeProto &node);

  MLIRContext &context;
  std::string path;
  const OnnxImportOptions &options;
  OpBuilder builder;
  std::map<std::string, Entry> entries;
  /// Per open scope, what each name it rebound held before (nullopt: none).
  std::vector<std::map<std::string, std::optional<Entry>>> scopes;
  std::map<std::string, Handler> handlers;
  int64_t opset = 0;
  const onnx::NodeProto *current = nullptr;
  /// What folding may still hold (`fold`).
  int64_t foldBudget;
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

void Importer::bind(const std::string &name, Entry entry) {
  if (!scopes.empty() && !scopes.back().count(name)) {
    auto it = entries.find(name);
    scopes.back()[name] =
        it == entries.end() ? std::nullopt : std::optional<Entry>(it->second);
  }
  entries[name] = std::move(entry);
}

const Importer::Entry &Importer::lookup(const std::string &name) {
  auto it = entries.find(name);
  if (it == entries.end())
    invalid("node " + (current ? label(*current) : "") + " reads '" + name +
            "', which nothing defines");
  return it->second;
}

const std::vector<Importer::Entry> &
Importer::sequenceOf(const std::string &name) {
  const Entry &entry = lookup(name);
  if (!entry.sequence)
    invalid("node " + label(*current) + " reads '" + name +
            "' as a sequence; it is a tensor");
  return *entry.sequence;
}

Value Importer::materialize(const onnx::TensorProto &initializer) {
  TensorData t = readTensorData(initializer, path);
  auto type = RankedTensorType::get(
      t.shape, elementType(t.type, "tensor '" + initializer.name() + "'"));
  if (t.type == onnx::TensorProto::BOOL) // one byte each; MLIR packs bits
    return materialize(readTensor(initializer, path));
  return builder.create<ConstantOp>(
      builder.getUnknownLoc(),
      DenseElementsAttr::getFromRawBuffer(
          type, ArrayRef<char>(t.bytes.data(), t.bytes.size())));
}

std::vector<int64_t> Importer::shapeOf(const Entry &entry) {
  if (entry.sequence)
    invalid("node " + (current ? label(*current) : "") +
            " reads a sequence as a tensor");
  if (entry.literal)
    return entry.literal->shape;
  if (entry.initializer)
    return {entry.initializer->dims().begin(), entry.initializer->dims().end()};
  return vec(typeOf(entry.value).getShape());
}

Value Importer::tensorOf(const Entry &entry) {
  shapeOf(entry); // refuses a sequence
  if (entry.value)
    return entry.value;
  return entry.literal ? materialize(*entry.literal)
                       : materialize(*entry.initializer);
}

Value Importer::value(const std::string &name) {
  lookup(name);
  Entry &entry = entries[name];
  if (entry.sequence)
    invalid("node " + (current ? label(*current) : "") + " reads '" + name +
            "' as a tensor; it is a sequence");
  entry.value = tensorOf(entry); // materialized once
  return entry.value;
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

Value Importer::transposed(Location at, Value v, ArrayRef<int64_t> perm) {
  bool identity = true;
  for (size_t d = 0; d < perm.size(); ++d)
    identity &= perm[d] == static_cast<int64_t>(d);
  if (identity)
    return v;
  return checked<TransposeOp>(at, v, builder.getDenseI64ArrayAttr(perm));
}

Value Importer::reshaped(Location at, Value v, ArrayRef<int64_t> shape) {
  if (typeOf(v).getShape() == shape)
    return v;
  return builder.create<ReshapeOp>(at, typeOf(v).clone(shape), v);
}

Value Importer::splat(Location at, RankedTensorType type, double v) {
  Type element = type.getElementType();
  Attribute scalar =
      isa<FloatType>(element)
          ? Attribute(builder.getFloatAttr(element, v))
          : Attribute(builder.getIntegerAttr(element, static_cast<int64_t>(v)));
  return builder.create<ConstantOp>(
      at, DenseElementsAttr::get(type, cast<TypedAttr>(scalar)));
}

/// Einsum as weft's batched matmul: operand letters summed away alone are
/// reduced first, then each operand is transposed to (batch, free,
/// contracted) and reshaped to rank 3, and the product is reshaped and
/// transposed to the output's letters. One or two operands; `...` stands
/// for the same leading dimensions in each; no diagonals.
Value Importer::einsum(const onnx::NodeProto &node) {
  const auto *attr = attribute(node, "equation");
  if (!attr)
    invalid("Einsum " + label(node) + " has no equation");
  std::string equation;
  for (char c : attr->s())
    if (c != ' ')
      equation += c;
  const int operands = node.input_size();
  if (operands < 1 || operands > 2)
    unsupported("Einsum " + label(node) + " of " + std::to_string(operands) +
                " operands is not imported (one or two are)");
  const size_t arrow = equation.find("->");
  std::string lhs = equation.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t at = 0;;) {
    size_t comma = lhs.find(',', at);
    terms.push_back(lhs.substr(at, comma - at));
    if (comma == std::string::npos)
      break;
    at = comma + 1;
  }
  if (static_cast<int>(terms.size()) != operands)
    invalid("Einsum " + label(node) + ": equation '" + attr->s() + "' has " +
            std::to_string(terms.size()) + " terms for " +
            std::to_string(operands) + " inputs");
  // `...` becomes as many fresh uppercase-free letters as it covers.
  std::vector<Value> inputs;
  std::string ellipsis;
  auto expand = [&](std::string term, int64_t rank) {
    const size_t dots = term.find("...");
    if (dots == std::string::npos)
      return term;
    const int64_t covered = rank - static_cast<int64_t>(term.size()) + 3;
    if (covered < 0)
      invalid("Einsum " + label(node) + ": term '" + term +
              "' has more letters than its input has dimensions");
    std::string fresh;
    for (int64_t i = 0; i < covered; ++i)
      fresh += static_cast<char>('0' + i); // digits never clash with letters
    if (!ellipsis.empty() && ellipsis != fresh)
      unsupported("Einsum " + label(node) +
                  ": '...' covering different ranks is not imported");
    ellipsis = fresh;
    return term.replace(dots, 3, fresh);
  };
  for (int i = 0; i < operands; ++i) {
    inputs.push_back(value(node.input(i)));
    terms[i] = expand(terms[i], typeOf(inputs[i]).getRank());
    if (static_cast<int64_t>(terms[i].size()) != typeOf(inputs[i]).getRank())
      invalid("Einsum " + label(node) + ": term '" + terms[i] + "' has " +
              std::to_string(terms[i].size()) + " letters for a rank-" +
              std::to_string(typeOf(inputs[i]).getRank()) + " input");
    for (size_t a = 0; a < terms[i].size(); ++a)
      if (terms[i].find(terms[i][a], a + 1) != std::string::npos)
        unsupported("Einsum " + label(node) + ": a repeated letter in '" +
                    terms[i] + "' (a diagonal) is not imported");
  }
  std::string out;
  if (arrow != std::string::npos) {
    out = equation.substr(arrow + 2);
    if (out.find("...") != std::string::npos)
      out.replace(out.find("..."), 3, ellipsis);
  } else { // implicit: '...' first, then letters seen once, sorted
    std::map<char, int> count;
    for (const std::string &t : terms)
      for (char c : t)
        count[c] += 1;
    out = ellipsis;
    for (auto [c, n] : count)
      if (n == 1 && !std::isdigit(c))
        out += c;
  }
  std::map<char, int64_t> size;
  for (int i = 0; i < operands; ++i)
    for (size_t a = 0; a < terms[i].size(); ++a) {
      const int64_t d = typeOf(inputs[i]).getDimSize(a);
      auto [it, fresh] = size.emplace(terms[i][a], d);
      if (!fresh && it->second != d)
        invalid("Einsum " + label(node) + ": '" + std::string(1, it->first) +
                "' is " + std::to_string(it->second) + " and " +
                std::to_string(d));
    }
  for (char c : out)
    if (!size.count(c))
      invalid("Einsum " + label(node) + ": output letter '" +
              std::string(1, c) + "' is in no input");
  const Location at = loc(node);
  auto in = [&](const std::string &t, char c) {
    return t.find(c) != std::string::npos;
  };
  // Letters in one operand only and not in the output are summed first.
  for (int i = 0; i < operands; ++i) {
    const std::string &other = terms[operands - 1 - i];
    std::vector<int64_t> axes;
    std::string kept;
    for (size_t a = 0; a < terms[i].size(); ++a) {
      const char c = terms[i][a];
      if (!in(out, c) && (operands == 1 || !in(other, c)))
        axes.push_back(a);
      else
        kept += c;
    }
    if (!axes.empty()) {
      inputs[i] =
          checked<ReduceOp>(at, ReduceKind::sum, inputs[i], axes, false);
      terms[i] = kept;
    }
  }
  if (operands == 1) {
    SmallVector<int64_t> perm;
    for (char c : out)
      perm.push_back(terms[0].find(c));
    return transposed(at, inputs[0], perm);
  }
  std::string batch, left, right, contracted;
  for (char c : terms[0]) {
    if (in(terms[1], c))
      (in(out, c) ? batch : contracted) += c;
    else
      left += c;
  }
  for (char c : terms[1])
    if (!in(terms[0], c))
      right += c;
  auto arrange = [&](int i, const std::string &order) {
    SmallVector<int64_t> perm;
    for (char c : order)
      perm.push_back(terms[i].find(c));
    return transposed(at, inputs[i], perm);
  };
  auto extent = [&](const std::string &letters) {
    int64_t n = 1;
    for (char c : letters)
      n *= size[c];
    return n;
  };
  const int64_t b = extent(batch), m = extent(left), k = extent(contracted),
                n = extent(right);
  Value a3 = reshaped(at, arrange(0, batch + left + contracted), {b, m, k});
  Value b3 = reshaped(at, arrange(1, batch + contracted + right), {b, k, n});
  Value product =
      checked<MatmulOp>(at, a3, b3, Value(), UnitAttr(), UnitAttr());
  const std::string order = batch + left + right;
  SmallVector<int64_t> shape, perm;
  for (char c : order)
    shape.push_back(size[c]);
  for (char c : out)
    perm.push_back(order.find(c));
  return transposed(at, reshaped(at, product, shape), perm);
}

std::vector<Importer::Entry>
Importer::importSubgraph(const onnx::GraphProto &graph,
                         const std::vector<Entry> &inputs) {
  const onnx::NodeProto *outer = current;
  if (graph.input_size() != static_cast<int>(inputs.size()))
    invalid("node " + label(*outer) + ": its graph '" + graph.name() +
            "' takes " + std::to_string(graph.input_size()) + " inputs, " +
            std::to_string(inputs.size()) + " are given");
  scopes.emplace_back();
  for (const auto &init : graph.initializer())
    bind(init.name(), initializerEntry(init));
  for (int i = 0; i < graph.input_size(); ++i)
    bind(graph.input(i).name(), inputs[i]);
  for (const auto &node : graph.node())
    importNode(node);
  current = outer;
  std::vector<Entry> results;
  for (const auto &output : graph.output())
    results.push_back(lookup(output.name()));
  // Close the scope: restore what its names held outside.
  for (auto &[name, before] : scopes.back()) {
    if (before)
      entries[name] = std::move(*before);
    else
      entries.erase(name);
  }
  scopes.pop_back();
  return results;
}

Importer::Entry Importer::concatEntries(const onnx::NodeProto &node,
                                        const std::vector<Entry> &items,
                                        int64_t axis, bool newAxis) {
  if (items.empty())
    invalid("node " + label(node) + " concatenates an empty sequence");
  bool known = true;
  for (const Entry &item : items) {
    if (item.sequence)
      invalid("node " + label(node) + " concatenates a sequence of sequences");
    known &= item.literal.has_value();
  }
  const int64_t rank = shapeOf(items[0]).size() + (newAxis ? 1 : 0);
  axis = normalizeAxis(axis, rank, node);
  auto widened = [&](std::vector<int64_t> shape) {
    if (newAxis)
      shape.insert(shape.begin() + axis, 1);
    return shape;
  };
  if (known) {
    std::vector<Literal> parts;
    for (const Entry &item : items) {
      parts.push_back(*item.literal);
      parts.back().shape = widened(parts.back().shape);
    }
    std::vector<const Literal *> in;
    for (const Literal &p : parts)
      in.push_back(&p);
    return Entry{Value(), concatLiterals(node, in, axis), nullptr};
  }
  SmallVector<Value> values;
  for (const Entry &item : items) {
    values.push_back(
        reshaped(loc(node), tensorOf(item), widened(shapeOf(item))));
  }
  if (values.size() == 1)
    return Entry{values[0], std::nullopt, nullptr};
  return Entry{
      checked<ConcatOp>(loc(node), values, builder.getI64IntegerAttr(axis)),
      std::nullopt, nullptr};
}

/// Control flow and sequences resolve at import: a Loop whose trip count and
/// condition are known unrolls (its body imported once per iteration), an
/// If whose condition is known imports its branch, and sequences are lists
/// of tensors the importer holds.
void Importer::registerControlFlow() {
  handlers["Loop"] = [this](const onnx::NodeProto &node) {
    // Past this many iterations a loop is not unrolled.
    constexpr int64_t kMaxIterations = 4096;
    const auto *body = attribute(node, "body");
    if (!body || !body->has_g())
      invalid("Loop " + label(node) + " has no body graph");
    auto knownScalar = [&](int index,
                           const char *what) -> std::optional<int64_t> {
      if (node.input_size() <= index || node.input(index).empty())
        return std::nullopt;
      const Literal *l = literal(node.input(index));
      if (!l || !l->isInteger() || l->size() != 1)
        unsupported("Loop " + label(node) + ": its " + what + " '" +
                    node.input(index) +
                    "' is computed at run time; weft unrolls loops whose "
                    "trip count and condition are known at import");
      return l->ints[0];
    };
    const std::optional<int64_t> trips = knownScalar(0, "trip count");
    bool keepGoing = knownScalar(1, "condition").value_or(1) != 0;
    const int carried = node.input_size() - 2;
    const int scans = body->g().output_size() - 1 - carried;
    if (carried < 0 || scans < 0 || node.output_size() != carried + scans)
      invalid("Loop " + label(node) + ": " + std::to_string(carried) +
              " carried values, a body of " +
              std::to_string(body->g().output_size()) + " outputs and " +
              std::to_string(node.output_size()) + " outputs do not match");
    std::vector<Entry> state;
    for (int i = 0; i < carried; ++i)
      state.push_back(lookup(node.input(2 + i)));
    std::vector<std::vector<Entry>> scanned(scans);
    int64_t i = 0;
    for (; keepGoing && (!trips || i < *trips); ++i) {
      if (i == kMaxIterations)
        unsupported("Loop " + label(node) + " runs past " +
                    std::to_string(kMaxIterations) +
                    " iterations; weft unrolls shorter loops");
      std::vector<Entry> inputs = {
          Entry{Value(), Literal{onnx::TensorProto::INT64, {}, {}, {i}},
                nullptr},
          Entry{Value(), Literal{onnx::TensorProto::BOOL, {}, {}, {1}},
                nullptr}};
      inputs.insert(inputs.end(), state.begin(), state.end());
      std::vector<Entry> results = importSubgraph(body->g(), inputs);
      const Entry &condition = results[0];
      if (!condition.literal || condition.literal->size() != 1)
        unsupported("Loop " + label(node) +
                    ": its body's condition is computed at run time; weft "
                    "unrolls loops whose condition is known at import");
      keepGoing = condition.literal->at(0) != 0;
      state.assign(results.begin() + 1, results.begin() + 1 + carried);
      for (int k = 0; k < scans; ++k)
        scanned[k].push_back(results[1 + carried + k]);
    }
    for (int k = 0; k < carried; ++k)
      bind(node.output(k), state[k]);
    for (int k = 0; k < scans; ++k) {
      if (scanned[k].empty())
        unsupported("Loop " + label(node) +
                    " runs no iteration; its scan outputs have no shape");
      bind(node.output(carried + k), concatEntries(node, scanned[k], 0, true));
    }
  };
  handlers["If"] = [this](const onnx::NodeProto &node) {
    const Literal *condition = literal(node.input(0));
    if (!condition || condition->size() != 1)
      unsupported("If " + label(node) + ": its condition '" + node.input(0) +
                  "' is computed at run time; weft imports the branch of a "
                  "condition known at import");
    const auto *branch =
        attribute(node, condition->at(0) != 0 ? "then_branch" : "else_branch");
    if (!branch || !branch->has_g())
      invalid("If " + label(node) + " lacks a branch graph");
    std::vector<Entry> results = importSubgraph(branch->g(), {});
    if (static_cast<int>(results.size()) != node.output_size())
      invalid("If " + label(node) + ": its branch has " +
              std::to_string(results.size()) + " outputs for " +
              std::to_string(node.output_size()));
    for (size_t k = 0; k < results.size(); ++k)
      bind(node.output(k), results[k]);
  };
  handlers["SequenceEmpty"] = [this](const onnx::NodeProto &node) {
    defineSequence(node, 0, {});
  };
  handlers["SequenceConstruct"] = [this](const onnx::NodeProto &node) {
    std::vector<Entry> items;
    for (const std::string &input : node.input()) {
      items.push_back(lookup(input));
      if (items.back().sequence)
        invalid("SequenceConstruct " + label(node) + ": '" + input +
                "' is a sequence");
    }
    defineSequence(node, 0, std::move(items));
  };
  // A position in [-n, n) (SequenceAt, SequenceErase) or [-n, n]
  // (SequenceInsert), known at import.
  auto position = [this](const onnx::NodeProto &node, int64_t n,
                         bool orEnd) -> int64_t {
    std::vector<int64_t> p = intsOf(node.input(1), "the sequence position");
    if (p.size() != 1 || p[0] < -n || p[0] > (orEnd ? n : n - 1))
      invalid(node.op_type() + " " + label(node) + ": position " +
              (p.size() == 1 ? std::to_string(p[0]) : "(not a scalar)") +
              " is outside a sequence of " + std::to_string(n));
    return p[0] < 0 ? p[0] + n : p[0];
  };
  handlers["SequenceAt"] = [=](const onnx::NodeProto &node) {
    const std::vector<Entry> &items = sequenceOf(node.input(0));
    bind(node.output(0), items[position(node, items.size(), false)]);
  };
  handlers["SequenceLength"] = [this](const onnx::NodeProto &node) {
    defineLiteral(
        node, 0,
        Literal{onnx::TensorProto::INT64,
                {},
                {},
                {static_cast<int64_t>(sequenceOf(node.input(0)).size())}});
  };
  handlers["SequenceInsert"] = [=](const onnx::NodeProto &node) {
    std::vector<Entry> items = sequenceOf(node.input(0));
    const int64_t at = node.input_size() > 2 && !node.input(2).empty()
                           ? position(node, items.size(), true)
                           : static_cast<int64_t>(items.size());
    items.insert(items.begin() + at, lookup(node.input(1)));
    defineSequence(node, 0, std::move(items));
  };
  handlers["SequenceErase"] = [=](const onnx::NodeProto &node) {
    std::vector<Entry> items = sequenceOf(node.input(0));
    if (items.empty())
      invalid("SequenceErase " + label(node) +
              " erases from an empty sequence");
    const int64_t at = node.input_size() > 1 && !node.input(1).empty()
                           ? position(node, items.size(), false)
                           : static_cast<int64_t>(items.size()) - 1;
    items.erase(items.begin() + at);
    defineSequence(node, 0, std::move(items));
  };
  handlers["SplitToSequence"] = [this](const onnx::NodeProto &node) {
    const Entry &x = lookup(node.input(0));
    std::vector<int64_t> shape = shapeOf(x);
    const int64_t rank = shape.size();
    const int64_t axis = normalizeAxis(intAttr(node, "axis", 0), rank, node),
                  dim = shape[axis];
    std::vector<int64_t> sizes;
    bool squeeze = false;
    if (node.input_size() > 1 && !node.input(1).empty()) {
      const Literal *split = literal(node.input(1));
      if (!split || !split->isInteger())
        intsOf(node.input(1), "SplitToSequence's split"); // names it
      if (split->shape.empty()) { // chunks of one size, the last smaller
        const int64_t chunk = split->ints[0];
        if (chunk < 1)
          invalid("SplitToSequence " + label(node) + ": chunk size " +
                  std::to_string(chunk));
        for (int64_t begin = 0; begin < dim; begin += chunk)
          sizes.push_back(std::min(chunk, dim - begin));
      } else {
        sizes = split->ints;
      }
    } else {
      sizes.assign(dim, 1);
      squeeze = intAttr(node, "keepdims", 1) == 0;
    }
    int64_t total = 0;
    for (int64_t size : sizes) {
      if (size < 0)
        invalid("SplitToSequence " + label(node) + ": a negative part size");
      total += size;
    }
    if (total != dim)
      invalid("SplitToSequence " + label(node) + ": parts sum to " +
              std::to_string(total) + ", the dimension is " +
              std::to_string(dim));
    std::vector<int64_t> squeezed = shape;
    squeezed.erase(squeezed.begin() + axis);
    std::vector<Entry> items;
    if (x.literal) {
      for (Literal &part : splitLiteral(*x.literal, axis, sizes)) {
        if (squeeze)
          part.shape = squeezed;
        items.push_back(Entry{Value(), std::move(part), nullptr});
      }
    } else {
      Value v = value(node.input(0));
      int64_t begin = 0;
      for (int64_t size : sizes) {
        SmallVector<int64_t> start(rank, 0), limit(shape.begin(), shape.end()),
            stride(rank, 1), partShape(limit);
        start[axis] = begin;
        limit[axis] = begin + size;
        partShape[axis] = size;
        Value part = builder.create<SliceOp>(
            loc(node), typeOf(v).clone(partShape), v, start, limit, stride);
        if (squeeze)
          part = reshaped(loc(node), part, squeezed);
        items.push_back(Entry{part, std::nullopt, nullptr});
        begin += size;
      }
    }
    defineSequence(node, 0, std::move(items));
  };
  handlers["ConcatFromSequence"] = [this](const onnx::NodeProto &node) {
    const auto *axis = attribute(node, "axis");
    if (!axis)
      invalid("ConcatFromSequence " + label(node) + " has no axis");
    bind(node.output(0),
         concatEntries(node, sequenceOf(node.input(0)), axis->i(),
                       intAttr(node, "new_axis", 0) != 0));
  };
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
  handlers["Cos"] = unary(CosOp());
  handlers["Sin"] = unary(SinOp());
  handlers["Floor"] = unary(FloorOp());
  handlers["Ceil"] = unary(CeilOp());
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
    bind(node.output(0), lookup(node.input(0)));
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
    std::vector<int64_t> shape = shapeOf(lookup(node.input(0)));
    const int64_t rank = shape.size();
    int64_t start = intAttr(node, "start", 0), end = intAttr(node, "end", rank);
    start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
    end = std::clamp<int64_t>(end < 0 ? end + rank : end, 0, rank);
    Literal l{onnx::TensorProto::INT64, {std::max<int64_t>(0, end - start)}};
    l.ints.assign(shape.begin() + start, shape.begin() + std::max(start, end));
    defineLiteral(node, 0, l);
  };
  handlers["Size"] = [this](const onnx::NodeProto &node) {
    defineLiteral(node, 0,
                  Literal{onnx::TensorProto::INT64,
                          {},
                          {},
                          {product(shapeOf(lookup(node.input(0))))}});
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
  auto shapeOf = [this](const std::string &name) {
    return this->shapeOf(lookup(name));
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
      a = normalizeAxis(a, rank, node);
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
      a = normalizeAxis(a, in.size(), node);
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
    define(
        node, 0,
        checked<TransposeOp>(loc(node), x, builder.getDenseI64ArrayAttr(perm)));
  };
  auto softmax = [&](bool logarithm) {
    return [this, logarithm](const onnx::NodeProto &node) {
      Value x = value(node.input(0));
      int64_t axis =
          normalizeAxis(intAttr(node, "axis", -1), typeOf(x).getRank(), node);
      auto dim = builder.getI64IntegerAttr(axis);
      define(node, 0,
             logarithm ? checked<LogSoftmaxOp>(loc(node), x, dim)
                       : checked<SoftmaxOp>(loc(node), x, dim));
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
           checked<MatmulOp>(loc(node), a, b, Value(), UnitAttr(), UnitAttr()));
  };
  handlers["Gemm"] = [this](const onnx::NodeProto &node) {
    Value a = value(node.input(0)), b = value(node.input(1));
    UnitAttr ta = intAttr(node, "transA", 0) ? builder.getUnitAttr() : nullptr;
    UnitAttr tb = intAttr(node, "transB", 0) ? builder.getUnitAttr() : nullptr;
    Value y = checked<MatmulOp>(loc(node), a, b, Value(), ta, tb);
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
        normalizeAxis(intAttr(node, "axis", 0), typeOf(table).getRank(), node);
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
      Value negative = checked<CompareOp>(loc(node), CompareDirection::lt,
                                          indices, splat(0));
      Value wrapped = builder.create<AddOp>(
          loc(node), indices, splat(typeOf(table).getDimSize(axis)));
      indices = builder.create<SelectOp>(loc(node), negative, wrapped, indices);
    }
    define(node, 0,
           checked<GatherOp>(loc(node), table, indices,
                             builder.getI64IntegerAttr(axis)));
  };
  handlers["Concat"] = [this](const onnx::NodeProto &node) {
    SmallVector<Value> inputs;
    for (const auto &in : node.input())
      inputs.push_back(value(in));
    int64_t axis = normalizeAxis(intAttr(node, "axis", 0),
                                 typeOf(inputs[0]).getRank(), node);
    define(
        node, 0,
        checked<ConcatOp>(loc(node), inputs, builder.getI64IntegerAttr(axis)));
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
        a = normalizeAxis(a, rank, node);
      std::sort(axes.begin(), axes.end());
      axes.erase(std::unique(axes.begin(), axes.end()), axes.end());
      const bool keep = intAttr(node, "keepdims", 1) != 0;
      define(node, 0, checked<ReduceOp>(loc(node), kind, x, axes, keep));
    };
  };
  auto compare = [&](CompareDirection direction) {
    return [this, direction](const onnx::NodeProto &node) {
      auto [x, y] =
          broadcastPair(loc(node), value(node.input(0)), value(node.input(1)));
      define(node, 0, checked<CompareOp>(loc(node), direction, x, y));
    };
  };
  handlers["Equal"] = compare(CompareDirection::eq);
  handlers["Less"] = compare(CompareDirection::lt);
  handlers["LessOrEqual"] = compare(CompareDirection::le);
  handlers["Greater"] = compare(CompareDirection::gt);
  handlers["GreaterOrEqual"] = compare(CompareDirection::ge);
  handlers["Not"] = [=](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    define(node, 0,
           checked<CompareOp>(loc(node), CompareDirection::eq, x,
                              splat(loc(node), typeOf(x), 0)));
  };
  auto logical = [=](bool isAnd) {
    return [=](const onnx::NodeProto &node) {
      auto [x, y] =
          broadcastPair(loc(node), value(node.input(0)), value(node.input(1)));
      // And: x ? y : false; Or: x ? true : y.
      define(node, 0,
             isAnd ? builder.create<SelectOp>(loc(node), x, y,
                                              splat(loc(node), typeOf(x), 0))
                   : builder.create<SelectOp>(
                         loc(node), x, splat(loc(node), typeOf(x), 1), y));
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
      const int64_t a = normalizeAxis(axes[i], rank, node), size = in[a];
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
    if (normalizeAxis(intAttr(node, "axis", -1), rank, node) != rank - 1)
      unsupported("LayerNormalization " + label(node) +
                  " over more than the last dimension is not imported");
    if (node.output_size() > 1)
      unsupported("LayerNormalization " + label(node) +
                  " with Mean / InvStdDev outputs is not imported");
    Value bias = node.input_size() > 2 && !node.input(2).empty()
                     ? value(node.input(2))
                     : Value();
    define(node, 0,
           checked<LayerNormOp>(
               loc(node), x, value(node.input(1)), bias,
               builder.getF32FloatAttr(floatAttr(node, "epsilon", 1e-5f))));
  };
  handlers["Einsum"] = [this](const onnx::NodeProto &node) {
    define(node, 0, einsum(node));
  };
  handlers["Split"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    ArrayRef<int64_t> in = typeOf(x).getShape();
    const int64_t rank = in.size();
    const int64_t axis = normalizeAxis(intAttr(node, "axis", 0), rank, node);
    const Literal *given = nullptr;
    if (node.input_size() > 1 && !node.input(1).empty()) {
      given = literal(node.input(1));
      if (!given)
        intsOf(node.input(1), "Split's sizes"); // says it must be known
    }
    int64_t begin = 0;
    for (auto [i, size] : llvm::enumerate(splitSizes(node, given, in[axis]))) {
      SmallVector<int64_t> start(rank, 0), limit(in), stride(rank, 1),
          shape(in);
      start[axis] = begin;
      limit[axis] = begin + size;
      shape[axis] = size;
      define(node, i,
             builder.create<SliceOp>(loc(node), typeOf(x).clone(shape), x,
                                     start, limit, stride));
      begin += size;
    }
  };
  handlers["Tile"] = [this](const onnx::NodeProto &node) {
    // x[d0, d1] tiled (r0, r1) is x broadcast to [r0, d0, r1, d1], reshaped.
    Value x = value(node.input(0));
    ArrayRef<int64_t> in = typeOf(x).getShape();
    std::vector<int64_t> repeats = intsOf(node.input(1), "Tile's repeats");
    if (repeats.size() != in.size())
      invalid("Tile " + label(node) + ": " + std::to_string(repeats.size()) +
              " repeats for a rank-" + std::to_string(in.size()) + " input");
    SmallVector<int64_t> wide, dims, shape;
    for (size_t d = 0; d < in.size(); ++d) {
      if (repeats[d] < 0)
        invalid("Tile " + label(node) + " has a negative repeat");
      wide.append({repeats[d], in[d]});
      dims.push_back(2 * d + 1);
      shape.push_back(repeats[d] * in[d]);
    }
    Value b = builder.create<BroadcastOp>(loc(node), typeOf(x).clone(wide), x,
                                          builder.getDenseI64ArrayAttr(dims));
    define(node, 0, reshaped(loc(node), b, shape));
  };
  handlers["Trilu"] = [this](const onnx::NodeProto &node) {
    Value x = value(node.input(0));
    ArrayRef<int64_t> shape = typeOf(x).getShape();
    if (shape.size() < 2)
      invalid("Trilu " + label(node) + " needs a rank of at least 2");
    int64_t k = 0;
    if (node.input_size() > 1 && !node.input(1).empty())
      k = intsOf(node.input(1), "Trilu's k").at(0);
    const bool upper = intAttr(node, "upper", 1);
    const int64_t rows = shape[shape.size() - 2], cols = shape.back();
    Literal keep{onnx::TensorProto::BOOL, {rows, cols}};
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        keep.ints.push_back(upper ? j - i >= k : j - i <= k);
    Value mask = broadcastTo(loc(node), materialize(keep), shape);
    define(node, 0,
           builder.create<SelectOp>(loc(node), mask, x,
                                    splat(loc(node), typeOf(x), 0)));
  };
  handlers["CumSum"] = [this](const onnx::NodeProto &node) {
    // Along the last axis, a product with a triangle of ones: out[j] =
    // sum over i of x[i]·T[i][j], T[i][j] = 1 where i <= j (exclusive: i < j;
    // reverse: i >= j).
    Value x = value(node.input(0));
    RankedTensorType type = typeOf(x);
    if (!isa<FloatType>(type.getElementType()))
      unsupported("CumSum " + label(node) +
                  " of run-time integers is not imported");
    std::vector<int64_t> axisValue = intsOf(node.input(1), "CumSum's axis");
    if (axisValue.size() != 1)
      invalid("CumSum " + label(node) + ": axis is not a scalar");
    const int64_t rank = type.getRank(),
                  axis = normalizeAxis(axisValue[0], rank, node),
                  n = type.getDimSize(axis);
    const bool exclusive = intAttr(node, "exclusive", 0),
               reverse = intAttr(node, "reverse", 0);
    Literal triangle{onnx::TensorProto::FLOAT, {n, n}};
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j)
        triangle.floats.push_back(reverse ? (exclusive ? i > j : i >= j)
                                          : (exclusive ? i < j : i <= j));
    Value t = materialize(triangle);
    if (typeOf(t).getElementType() != type.getElementType())
      t = builder.create<ConvertOp>(loc(node),
                                    typeOf(t).clone(type.getElementType()), t);
    SmallVector<int64_t> perm;
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis)
        perm.push_back(d);
    perm.push_back(axis);
    Value last = transposed(loc(node), x, perm);
    SmallVector<int64_t> lastShape(typeOf(last).getShape());
    Value rows = reshaped(loc(node), last, {product(lastShape) / n, n});
    Value sums =
        checked<MatmulOp>(loc(node), rows, t, Value(), UnitAttr(), UnitAttr());
    SmallVector<int64_t> inverse(rank);
    for (int64_t d = 0; d < rank; ++d)
      inverse[perm[d]] = d;
    define(
        node, 0,
        transposed(loc(node), reshaped(loc(node), sums, lastShape), inverse));
  };
  handlers["Gelu"] = [this](const onnx::NodeProto &node) {
    const auto *a = attribute(node, "approximate");
    const std::string approximate = a ? a->s() : "none";
    if (approximate != "none" && approximate != "tanh")
      invalid("Gelu " + label(node) + ": approximate '" + approximate +
              "' is neither 'none' nor 'tanh'");
    define(node, 0,
           checked<GeluOp>(loc(node), value(node.input(0)),
                           approximate == "tanh" ? GeluApproximation::tanh
                                                 : GeluApproximation::none));
  };
  registerControlFlow();
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
  auto handler = handlers.find(node.op_type());
  if (handler == handlers.end() && !foldOnlyOps().count(node.op_type()))
    unsupported("node " + label(node) + ": op " + node.op_type() +
                " is not imported (weft import --list-ops lists those that "
                "are)");
  // The inputs every handler and the evaluator read without looking: they
  // must be there and named.
  static const std::map<std::string, int> required = {{"Add", 2},
                                                      {"Sub", 2},
                                                      {"Mul", 2},
                                                      {"Div", 2},
                                                      {"Pow", 2},
                                                      {"Mod", 2},
                                                      {"MatMul", 2},
                                                      {"Gemm", 2},
                                                      {"Equal", 2},
                                                      {"Less", 2},
                                                      {"LessOrEqual", 2},
                                                      {"Greater", 2},
                                                      {"GreaterOrEqual", 2},
                                                      {"And", 2},
                                                      {"Or", 2},
                                                      {"Xor", 2},
                                                      {"Reshape", 2},
                                                      {"Expand", 2},
                                                      {"Tile", 2},
                                                      {"Gather", 2},
                                                      {"GatherND", 2},
                                                      {"CumSum", 2},
                                                      {"Unsqueeze", 2},
                                                      {"LayerNormalization", 2},
                                                      {"SequenceAt", 2},
                                                      {"SequenceInsert", 2},
                                                      {"Loop", 0},
                                                      {"Where", 3},
                                                      {"Slice", 3},
                                                      {"Range", 3},
                                                      {"Constant", 0},
                                                      {"SequenceEmpty", 0},
                                                      {"SequenceConstruct", 0}};
  auto need = required.find(node.op_type());
  const int inputs = need == required.end() ? 1 : need->second;
  for (int i = 0; i < inputs; ++i)
    if (i >= node.input_size() || node.input(i).empty())
      invalid(node.op_type() + " " + label(node) + " lacks its input " +
              std::to_string(i));
  if (node.output_size() < 1 || node.output(0).empty())
    invalid(node.op_type() + " " + label(node) + " has no output");
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
    if (auto results = fold(node, known, foldBudget)) {
      for (size_t i = 0;
           i < results->size() && static_cast<int>(i) < node.output_size(); ++i)
        defineLiteral(node, i, std::move((*results)[i]));
      return;
    }
  if (foldOnlyOps().count(node.op_type())) {
    for (int i = 0; i < node.input_size(); ++i)
      if (!node.input(i).empty() && !literal(node.input(i)))
        unsupported(node.op_type() + " " + label(node) + " reads '" +
                    node.input(i) +
                    "', which is computed at run time; weft evaluates " +
                    node.op_type() + " only on values known at import");
    unsupported(node.op_type() + " " + label(node) +
                ": its result is too large to evaluate at import");
  }
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
    bind(init.name(), initializerEntry(init));

  SmallVector<Type> inputTypes;
  std::vector<std::string> inputNames;
  for (const auto &input : graph.input()) {
    if (entries.count(input.name())) // an initializer listed as an input
      continue;
    if (!input.type().has_tensor_type())
      unsupported("input '" + input.name() +
                  "' is not a tensor (a sequence, map or optional); weft "
                  "imports tensor inputs");
    const auto &t = input.type().tensor_type();
    if (auto known = options.knownInputs.find(input.name());
        known != options.knownInputs.end()) {
      const auto &[shape, ints, floats] = known->second;
      Literal l{t.elem_type(), shape, floats, ints};
      elementType(l.type, "input '" + input.name() + "'");
      if (l.size() !=
          static_cast<int64_t>(l.isInteger() ? l.ints.size() : l.floats.size()))
        invalid(
            "input '" + input.name() + "' given at import holds " +
            std::to_string(l.isInteger() ? l.ints.size() : l.floats.size()) +
            " values of its type, its shape needs " + std::to_string(l.size()));
      bind(input.name(), Entry{Value(), std::move(l), nullptr});
      continue;
    }
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
    bind(name, Entry{body->getArgument(i), std::nullopt, nullptr});
  }
  builder.setInsertionPointToStart(body);

  for (const auto &node : graph.node())
    importNode(node);

  SmallVector<Value> results;
  for (const auto &output : graph.output()) {
    if (lookup(output.name()).sequence)
      unsupported("output '" + output.name() +
                  "' is a sequence; weft plans return tensors");
    Value v = value(output.name());
    // A plan's outputs are computed buffers: an input or a value known at
    // import is copied into one.
    if (isa<BlockArgument>(v) || v.getDefiningOp<ConstantOp>())
      v = builder.create<ReshapeOp>(v.getLoc(), v.getType(), v);
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
  MLIRContext context;
  OnnxImportOptions options;
  std::vector<std::string> names;
  for (const std::string &op : Importer(context, "", options).opNames())
    names.push_back(op + (op == "Gelu" ? " 20" : " 13-20"));
  for (const std::string &op : foldOnlyOps())
    names.push_back(op + " 13-20 (on values known at import)");
  std::sort(names.begin(), names.end());
  return names;
}
