// The elementwise expressions shared by the kernel generators.
#include "codegen/Elementwise.h"

#include "ir/WeftDialect.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Sequence.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace weft;

FailureOr<codegen::ElementCTypes>
weft::codegen::elementCTypes(Operation *where, Type tensorType,
                             StringRef backend) {
  Type element = cast<RankedTensorType>(tensorType).getElementType();
  if (element.isF32())
    return ElementCTypes{"float", "float", 4};
  if (element.isBF16())
    return ElementCTypes{"uint16_t", "float", 2};
  if (element.isInteger(64))
    return ElementCTypes{"int64_t", "int64_t", 8};
  if (element.isInteger(32))
    return ElementCTypes{"int32_t", "int32_t", 4};
  if (element.isInteger(8))
    return ElementCTypes{"int8_t", "int8_t", 1};
  if (element.isInteger(1))
    return ElementCTypes{"uint8_t", "uint8_t", 1};
  return where->emitError()
         << "has element type " << element << ", which the " << backend
         << " backend does not run yet (f32, bf16, i64, "
            "i32, i8 and i1 only)";
}

FailureOr<codegen::InputLayout>
weft::codegen::inputLayout(FusionGroupOp group, BlockArgument input) {
  auto type = cast<RankedTensorType>(input.getType());
  auto groupType = cast<RankedTensorType>(group.getResult(0).getType());
  if (type.getShape() == groupType.getShape())
    return InputLayout::Row;
  if (groupType.getRank() > 0 &&
      type.getShape() == groupType.getShape().drop_back() &&
      !input.use_empty() && llvm::all_of(input.getUsers(), [](Operation *user) {
        return isa<BroadcastOp>(user);
      }))
    return InputLayout::PerRow;
  if (type.getRank() == 1 && type.getDimSize(0) == group.getRowLength())
    return InputLayout::Column;
  return group.emitError() << "input " << input.getArgNumber() << " of type "
                           << type
                           << " is neither a row, a column nor a value per row";
}

LogicalResult weft::codegen::checkRowProducer(FusionGroupOp group,
                                              Operation *op) {
  auto shape = cast<RankedTensorType>(op->getResult(0).getType()).getShape();
  if (auto iota = dyn_cast<IotaOp>(op)) {
    if (iota.getDim() == static_cast<int64_t>(shape.size()) - 1)
      return success();
    return op->emitError() << "in a fusion group counts along dimension "
                           << iota.getDim() << ", not the last";
  }
  auto broadcast = cast<BroadcastOp>(op);
  auto input = dyn_cast<BlockArgument>(broadcast.getX());
  FailureOr<InputLayout> layout =
      input ? inputLayout(group, input) : FailureOr<InputLayout>(failure());
  if (succeeded(layout) && *layout == InputLayout::PerRow &&
      llvm::equal(broadcast.getDims(), llvm::seq<int64_t>(0, shape.size() - 1)))
    return success();
  if (succeeded(layout) && *layout == InputLayout::Column &&
      broadcast.getDims() == ArrayRef<int64_t>{int64_t(shape.size()) - 1})
    return success();
  return op->emitError()
         << "in a fusion group broadcasts other than a group input's value "
            "per row along the rows or its column vector to every row";
}

const char *const weft::codegen::kSelectHelper =
    "template <typename A, typename B>\n"
    "static inline auto weftSelect(bool p, A a, B b) { return p ? a : b; }\n";

std::string weft::codegen::floatLiteral(double value) {
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format("%.9g", value);
  if (text.find_first_of(".en") == std::string::npos)
    text += ".0";
  return text + "f";
}

std::string weft::codegen::elementwiseExpression(Operation *op,
                                                 ArrayRef<std::string> in) {
  auto x = [&](unsigned i) { return in[i]; };
  return llvm::TypeSwitch<Operation *, std::string>(op)
      .Case([&](AddOp) { return x(0) + " + " + x(1); })
      .Case([&](SubOp) { return x(0) + " - " + x(1); })
      .Case([&](MulOp) { return x(0) + " * " + x(1); })
      .Case([&](DivOp) { return x(0) + " / " + x(1); })
      .Case([&](MaxOp) { return "std::max(" + x(0) + ", " + x(1) + ")"; })
      .Case([&](MinOp) { return "std::min(" + x(0) + ", " + x(1) + ")"; })
      .Case([&](PowOp) { return "std::pow(" + x(0) + ", " + x(1) + ")"; })
      .Case([&](NegOp) { return "-" + x(0); })
      .Case([&](AbsOp) { return "std::abs(" + x(0) + ")"; })
      .Case([&](ExpOp) { return "std::exp(" + x(0) + ")"; })
      .Case([&](LogOp) { return "std::log(" + x(0) + ")"; })
      .Case([&](TanhOp) { return "std::tanh(" + x(0) + ")"; })
      .Case(
          [&](SigmoidOp) { return "1.0f / (1.0f + std::exp(-" + x(0) + "))"; })
      .Case(
          [&](SiluOp) { return x(0) + " / (1.0f + std::exp(-" + x(0) + "))"; })
      .Case([&](RsqrtOp) { return "1.0f / std::sqrt(" + x(0) + ")"; })
      .Case([&](SqrtOp) { return "std::sqrt(" + x(0) + ")"; })
      .Case([&](ErfOp) { return "std::erf(" + x(0) + ")"; })
      .Case([&](CosOp) { return "std::cos(" + x(0) + ")"; })
      .Case([&](SinOp) { return "std::sin(" + x(0) + ")"; })
      .Case([&](FloorOp) { return "std::floor(" + x(0) + ")"; })
      .Case([&](CeilOp) { return "std::ceil(" + x(0) + ")"; })
      .Case([&](GeluOp op) {
        if (op.getApproximation() == GeluApproximation::tanh)
          return "0.5f * " + x(0) + " * (1.0f + std::tanh(0.7978845608f * (" +
                 x(0) + " + 0.044715f * " + x(0) + " * " + x(0) + " * " + x(0) +
                 ")))";
        return "0.5f * " + x(0) + " * (1.0f + std::erf(" + x(0) +
               " * 0.70710678118f))";
      })
      .Case([&](CompareOp op) {
        const char *symbols[] = {"==", "!=", "<", "<=", ">", ">="};
        return std::string("static_cast<uint8_t>(") + x(0) + " " +
               symbols[static_cast<int>(op.getDirection())] + " " + x(1) + ")";
      })
      // A call, so that both operands are loaded before the choice: GCC 12's
      // if-conversion of `p[c] ? a[c] : b[c]` into masked AVX2 loads drops
      // elements (-O3 -march=x86-64-v3). kSelectHelper defines it.
      .Case([&](SelectOp) {
        return "weftSelect(" + x(0) + ", " + x(1) + ", " + x(2) + ")";
      })
      // A splat constant's one value (FormFusionGroups copies them into the
      // groups that read them).
      .Case([&](ConstantOp op) {
        auto value = dyn_cast<DenseElementsAttr>(op.getValue());
        if (!value || !value.isSplat())
          return std::string();
        Type element = value.getElementType();
        if (isa<FloatType>(element))
          return floatLiteral(value.getSplatValue<APFloat>().convertToDouble());
        const int64_t v = value.getSplatValue<APInt>().getSExtValue();
        if (element.isInteger(1))
          return std::string(v ? "static_cast<uint8_t>(1)"
                               : "static_cast<uint8_t>(0)");
        const char *type = element.isInteger(64)   ? "int64_t"
                           : element.isInteger(32) ? "int32_t"
                                                   : "int8_t";
        return "static_cast<" + std::string(type) + ">(" + std::to_string(v) +
               "LL)";
      })
      .Default([](Operation *) { return std::string(); });
}
