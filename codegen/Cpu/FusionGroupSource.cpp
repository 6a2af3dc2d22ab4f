// Generating C++ for fusion groups. Each value of the group gets a row
// pointer: an input's row, a result's row in its output buffer, or a row of
// per-thread scratch; each op is a loop over the row's columns.
#include "codegen/Cpu/FusionGroupSource.h"

#include "codegen/Cpu/KernelCompiler.h"
#include "codegen/Elementwise.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace weft;

namespace {
bool isBf16(Type type) {
  return cast<RankedTensorType>(type).getElementType().isBF16();
}

/// The C++ type a row of `type` is stored in (bf16 as its bits).
FailureOr<StringRef> storageType(Operation *where, Type type) {
  FailureOr<codegen::ElementCTypes> t =
      codegen::elementCTypes(where, type, "CPU");
  if (failed(t))
    return failure();
  return t->storage;
}

/// The C++ type a row of `type` is computed in: bf16 widens to float.
FailureOr<StringRef> computeType(Operation *where, Type type) {
  FailureOr<codegen::ElementCTypes> t =
      codegen::elementCTypes(where, type, "CPU");
  if (failed(t))
    return failure();
  return t->compute;
}

/// bf16 ⇄ f32 in generated code: round to nearest even, NaN kept NaN.
constexpr const char *kBf16Helpers = R"(
static inline float weftBf16ToFloat(uint16_t bits) {
  return __builtin_bit_cast(float, static_cast<uint32_t>(bits) << 16);
}
static inline uint16_t weftFloatToBf16(float value) {
  uint32_t word = __builtin_bit_cast(uint32_t, value);
  if ((word & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>(word >> 16 | 0x40);
  word += 0x7fffu + (word >> 16 & 1);
  return static_cast<uint16_t>(word >> 16);
}
)";

} // namespace

FailureOr<std::pair<std::string, std::string>>
weft::codegen::generateFusionGroupSource(FusionGroupOp group,
                                         int64_t scratchStride) {
  Block &body = group.getBody().front();
  auto groupType = cast<RankedTensorType>(group.getResult(0).getType());
  const int64_t cols = group.getRowLength();
  const int64_t rows = groupType.getNumElements() / std::max<int64_t>(cols, 1);
  const int64_t scratchRowBytes = group.getScratchRowBytes();

  std::string code;
  llvm::raw_string_ostream os(code);
  llvm::DenseMap<Value, std::string> row;
  unsigned arg = 0, next = 0;
  auto name = [&](Value v) { return row[v] = "v" + std::to_string(next++); };

  // Rows kept in per-thread scratch (see getRowScratchValues); bf16 rows
  // are widened into them and narrowed out of them.
  llvm::DenseMap<Value, int64_t> scratchOffset;
  for (Value v : group.getRowScratchValues())
    scratchOffset[v] = scratchOffset.size() * scratchRowBytes;
  bool usesBf16 = false;
  auto declareScratch = [&](Value v, Operation *where) -> LogicalResult {
    FailureOr<StringRef> t = computeType(where, v.getType());
    if (failed(t))
      return failure();
    os << "    " << *t << " *" << name(v) << " = reinterpret_cast<" << *t
       << " *>(scratch + " << scratchOffset.lookup(v) << ");\n";
    return success();
  };

  // Inputs: a full row, a per-column vector (norm weights) or a value per
  // row (a scalar, read by broadcasts).
  for (BlockArgument input : body.getArguments()) {
    auto type = cast<RankedTensorType>(input.getType());
    FailureOr<StringRef> t = storageType(group, type);
    if (failed(t))
      return failure();
    FailureOr<codegen::InputLayout> layout = codegen::inputLayout(group, input);
    if (failed(layout))
      return failure();
    const std::string in = "in" + std::to_string(input.getArgNumber());
    os << "    const " << *t << " *" << in << " = reinterpret_cast<const " << *t
       << " *>(args[" << arg++ << "])"
       << (*layout == codegen::InputLayout::Row ? " + r * kCols" : "") << ";\n";
    if (*layout == codegen::InputLayout::PerRow) {
      FailureOr<StringRef> c = computeType(group, type);
      if (failed(c))
        return failure();
      usesBf16 |= isBf16(type);
      row[input] = in + "_row";
      os << "    const " << *c << " " << row[input] << " = "
         << (isBf16(type) ? "weftBf16ToFloat(" + in + "[r])" : in + "[r]")
         << ";\n";
      continue;
    }
    if (isBf16(type)) {
      usesBf16 = true;
      if (failed(declareScratch(input, group)))
        return failure();
      os << "    for (int64_t c = 0; c < kCols; ++c)\n      " << row[input]
         << "[c] = weftBf16ToFloat(in" << input.getArgNumber() << "[c]);\n";
    } else {
      row[input] = "in" + std::to_string(input.getArgNumber());
    }
  }
  // Results write straight into their output rows (bf16 ones after
  // narrowing from scratch); the rest use scratch.
  YieldOp yield = group.getYield();
  SmallVector<std::string> outputs;
  for (Value result : yield.getValues()) {
    FailureOr<StringRef> t = storageType(group, result.getType());
    if (failed(t))
      return failure();
    std::string out = "out" + std::to_string(outputs.size());
    os << "    " << *t << " *" << out << " = reinterpret_cast<" << *t
       << " *>(args[" << arg++ << "]) + r * kCols;\n";
    outputs.push_back(out);
    if (!row.count(result) && result.getDefiningOp() &&
        !isBf16(result.getType()))
      row[result] = out;
  }
  const unsigned workspaceArg = arg;
  for (Value v : group.getRowScratchValues())
    if (!row.count(v) && v.getDefiningOp()) {
      usesBf16 |= isBf16(v.getType());
      if (failed(declareScratch(v, v.getDefiningOp())))
        return failure();
    }

  // LayerNorm's (and its gradient's) row statistics of the row `x`: its
  // mean and the inverse root of its biased variance plus epsilon.
  auto emitMeanAndInverse = [&](const std::string &x, APFloat epsilon) {
    os << "      float mean = 0.0f, var = 0.0f;\n"
       << "      for (int64_t c = 0; c < kCols; ++c)\n        mean += " << x
       << "[c];\n      mean /= kCols;\n"
       << "      for (int64_t c = 0; c < kCols; ++c)\n        var += (" << x
       << "[c] - mean) * (" << x << "[c] - mean);\n"
       << "      const float inv = 1.0f / std::sqrt(var / kCols + "
       << codegen::floatLiteral(epsilon.convertToDouble()) << ");\n";
  };
  for (Operation &op : body.without_terminator()) {
    SmallVector<std::string> in;
    for (Value operand : op.getOperands())
      in.push_back(row.lookup(operand));
    const std::string &out = row[op.getResult(0)];
    os << "    // " << op.getName() << "\n";
    SmallVector<std::string> columns;
    for (const std::string &operand : in)
      columns.push_back(operand + "[c]");
    std::string expression = elementwiseExpression(&op, columns);
    if (auto convert = dyn_cast<ConvertOp>(op)) {
      FailureOr<StringRef> t = computeType(&op, convert.getType());
      if (failed(t))
        return failure();
      expression = "static_cast<" + t->str() + ">(" + in[0] + "[c])";
      if (isBf16(convert.getType())) // round to bf16's precision
        expression = "weftBf16ToFloat(weftFloatToBf16(" + expression + "))";
    } else if (isa<BroadcastOp, IotaOp>(op)) {
      // Row producers (FormFusionGroups): the row's value, the column.
      FailureOr<StringRef> t = computeType(&op, op.getResult(0).getType());
      if (failed(t) || failed(codegen::checkRowProducer(group, &op)))
        return failure();
      // A value per row is a scalar; a column vector is indexed.
      if (isa<IotaOp>(op))
        expression = "static_cast<" + t->str() + ">(c)";
      else
        expression = *codegen::inputLayout(
                         group, cast<BlockArgument>(op.getOperand(0))) ==
                             codegen::InputLayout::PerRow
                         ? in[0]
                         : columns[0];
    }
    if (!expression.empty()) {
      os << "    for (int64_t c = 0; c < kCols; ++c)\n      " << out
         << "[c] = " << expression << ";\n";
    } else if (auto norm = dyn_cast<RmsNormOp>(op)) {
      os << "    {\n      float sum = 0.0f;\n"
         << "      for (int64_t c = 0; c < kCols; ++c)\n        sum += "
         << in[0] << "[c] * " << in[0] << "[c];\n"
         << "      const float inv = 1.0f / std::sqrt(sum / kCols + "
         << codegen::floatLiteral(norm.getEpsilon().convertToDouble()) << ");\n"
         << "      for (int64_t c = 0; c < kCols; ++c)\n        " << out
         << "[c] = " << in[0] << "[c] * inv * " << in[1] << "[c];\n    }\n";
    } else if (auto grad = dyn_cast<RmsNormGradOp>(op)) {
      // x, weight, grad: r·(g·w) − x·r³·mean(g·w·x), as the CUDA kernel.
      os << "    {\n      float sum = 0.0f, dot = 0.0f;\n"
         << "      for (int64_t c = 0; c < kCols; ++c) {\n        sum += "
         << in[0] << "[c] * " << in[0] << "[c];\n        dot += " << in[2]
         << "[c] * " << in[1] << "[c] * " << in[0] << "[c];\n      }\n"
         << "      const float inv = 1.0f / std::sqrt(sum / kCols + "
         << codegen::floatLiteral(grad.getEpsilon().convertToDouble())
         << ");\n      const float inv3 = inv * inv * inv, mean = dot / "
            "kCols;\n"
         << "      for (int64_t c = 0; c < kCols; ++c)\n        " << out
         << "[c] = inv * (" << in[2] << "[c] * " << in[1] << "[c]) - " << in[0]
         << "[c] * inv3 * mean;\n    }\n";
    } else if (auto grad = dyn_cast<LayerNormGradOp>(op)) {
      // x, weight, grad: r·(g·w − mean(g·w) − x̂·mean(g·w·x̂)), as the CUDA
      // kernel.
      const std::string x = in[0] + "[c]", w = in[1] + "[c]", g = in[2] + "[c]";
      os << "    {\n";
      emitMeanAndInverse(in[0], grad.getEpsilon());
      os << "      float gw = 0.0f, gwx = 0.0f;\n"
         << "      for (int64_t c = 0; c < kCols; ++c) {\n        gw += " << g
         << " * " << w << ";\n        gwx += " << g << " * " << w << " * (("
         << x << " - mean) * inv);\n      }\n"
         << "      gw /= kCols;\n      gwx /= kCols;\n"
         << "      for (int64_t c = 0; c < kCols; ++c)\n        " << out
         << "[c] = inv * (" << g << " * " << w << " - gw - (" << x
         << " - mean) * inv * gwx);\n    }\n";
    } else if (auto norm = dyn_cast<LayerNormOp>(op)) {
      os << "    {\n";
      emitMeanAndInverse(in[0], norm.getEpsilon());
      os << "      for (int64_t c = 0; c < kCols; ++c)\n        " << out
         << "[c] = (" << in[0] << "[c] - mean) * inv * " << in[1] << "[c]"
         << (norm.getBias() ? " + " + in[2] + "[c]" : "") << ";\n    }\n";
    } else if (isa<SoftmaxOp, LogSoftmaxOp>(op)) {
      bool logarithm = isa<LogSoftmaxOp>(op);
      os << "    {\n      float max = -INFINITY, sum = 0.0f;\n"
         << "      for (int64_t c = 0; c < kCols; ++c)\n        max = "
            "std::max(max, "
         << in[0] << "[c]);\n"
         << "      for (int64_t c = 0; c < kCols; ++c)\n        sum += "
            "std::exp("
         << in[0] << "[c] - max);\n";
      if (logarithm)
        os << "      const float logSum = std::log(sum) + max;\n"
           << "      for (int64_t c = 0; c < kCols; ++c)\n        " << out
           << "[c] = " << in[0] << "[c] - logSum;\n    }\n";
      else
        os << "      const float inv = 1.0f / sum;\n"
           << "      for (int64_t c = 0; c < kCols; ++c)\n        " << out
           << "[c] = std::exp(" << in[0] << "[c] - max) * inv;\n    }\n";
    } else {
      return op.emitError()
             << "cannot be generated as part of a CPU fusion group";
    }
  }
  // bf16 results are narrowed from scratch; a value yielded twice (or an
  // input yielded) still needs its copy.
  for (auto [i, value] : llvm::enumerate(yield.getValues()))
    if (isBf16(value.getType()))
      os << "    for (int64_t c = 0; c < kCols; ++c)\n      " << outputs[i]
         << "[c] = weftFloatToBf16(" << row.lookup(value) << "[c]);\n";
    else if (row.lookup(value) != outputs[i])
      os << "    for (int64_t c = 0; c < kCols; ++c)\n      " << outputs[i]
         << "[c] = " << row.lookup(value) << "[c];\n";

  std::string opNames;
  for (Operation &op : body.without_terminator())
    opNames +=
        (opNames.empty() ? "" : ", ") + op.getName().stripDialect().str();
  std::string source;
  llvm::raw_string_ostream src(source);
  src << "// weft fusion group: " << opNames << " over " << rows << " rows of "
      << cols << "\n"
      << "#include <algorithm>\n#include <cmath>\n#include <cstdint>\n"
      << "#include <omp.h>\n"
      << (usesBf16 ? kBf16Helpers : "")
      << (group.getBody().front().getOps<SelectOp>().empty() ? ""
                                                             : kSelectHelper)
      << "\n"
      << "extern \"C\" void @ENTRY@(char *const *args, int threads) {\n"
      << "  constexpr int64_t kRows = " << rows << ", kCols = " << cols << ";\n"
      << "#pragma omp parallel for num_threads(threads) schedule(static)\n"
      << "  for (int64_t r = 0; r < kRows; ++r) {\n"
      << "    char *scratch = args[" << workspaceArg << "] + "
      << "static_cast<int64_t>(omp_get_thread_num()) * " << scratchStride
      << ";\n"
      << "    (void)scratch;\n"
      << code << "  }\n}\n";

  std::string entry = "weft_group_" + codegen::contentHash(source);
  size_t at = source.find("@ENTRY@");
  source.replace(at, 7, entry);
  return std::make_pair(entry, source);
}
