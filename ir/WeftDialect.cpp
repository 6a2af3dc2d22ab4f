// The weft dialect's registration, printing aliases and attribute verifiers.
#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace weft;

#include "ir/WeftDialect.cpp.inc"

namespace {
/// Prints meshes as `#mesh`, `#mesh1`, … aliases at the top of a module.
struct WeftOpAsmInterface : public OpAsmDialectInterface {
  using OpAsmDialectInterface::OpAsmDialectInterface;
  AliasResult getAlias(Attribute attr, raw_ostream &os) const override {
    if (isa<MeshAttr>(attr)) {
      os << "mesh";
      return AliasResult::FinalAlias;
    }
    return AliasResult::NoAlias;
  }
};

/// Checks a `weft.sharding` attached to a value of type `type`.
LogicalResult verifyShardingOf(Type type, Attribute attr,
                               function_ref<InFlightDiagnostic()> emitError) {
  auto sharding = dyn_cast<ShardingAttr>(attr);
  if (!sharding)
    return emitError() << "'" << WeftDialect::kShardingAttrName
                       << "' must be a #weft.sharding, found " << attr;
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor)
    return emitError() << "'" << WeftDialect::kShardingAttrName
                       << "' applies to ranked tensors, found " << type;
  if (sharding.getDims().size() != static_cast<size_t>(tensor.getRank()))
    return emitError() << "sharding has " << sharding.getDims().size()
                       << " dimension entries but the tensor " << type
                       << " has rank " << tensor.getRank();
  return success();
}
} // namespace

void WeftDialect::initialize() {
  registerAttributes();
  addOperations<
#define GET_OP_LIST
#include "ir/WeftOps.cpp.inc"
      >();
  addInterfaces<WeftOpAsmInterface>();
}

LogicalResult WeftDialect::verifyOperationAttribute(Operation *op,
                                                    NamedAttribute attr) {
  if (attr.getName() == kShardingAttrName) {
    if (op->getNumResults() != 1)
      return op->emitOpError()
             << "'" << kShardingAttrName << "' needs an op with one result";
    return verifyShardingOf(op->getResult(0).getType(), attr.getValue(),
                            [&] { return op->emitOpError(); });
  }
  return success();
}

LogicalResult WeftDialect::verifyRegionArgAttribute(Operation *op,
                                                    unsigned regionIndex,
                                                    unsigned argIndex,
                                                    NamedAttribute attr) {
  Type argType = op->getRegion(regionIndex).getArgument(argIndex).getType();
  auto emit = [&] {
    return op->emitOpError() << "argument " << argIndex << ": ";
  };
  if (attr.getName() == kShardingAttrName)
    return verifyShardingOf(argType, attr.getValue(), emit);
  if (attr.getName() == kParamAttrName || attr.getName() == kInputAttrName ||
      attr.getName() == kStateAttrName) {
    auto name = dyn_cast<StringAttr>(attr.getValue());
    if (!name || name.getValue().empty())
      return emit() << "'" << attr.getName().getValue()
                    << "' must be a non-empty string";
  }
  return success();
}

int64_t weft::tensorBytes(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  if (!tensor.hasStaticShape())
    return ShapedType::kDynamic;
  return tensor.getNumElements() * ((tensor.getElementTypeBitWidth() + 7) / 8);
}

Value weft::countLabeledTokens(OpBuilder &b, Location loc, Value labels,
                               int64_t ignoreIndex) {
  auto type = cast<RankedTensorType>(labels.getType());
  Value ignore = b.create<ConstantOp>(
      loc, DenseElementsAttr::get(
               type, b.getIntegerAttr(type.getElementType(), ignoreIndex)));
  Value counted = b.create<ConvertOp>(
      loc, type.clone(b.getF32Type()),
      b.create<CompareOp>(loc, CompareDirection::ne, labels, ignore));
  SmallVector<int64_t> all =
      llvm::to_vector(llvm::seq<int64_t>(0, type.getRank()));
  return b.create<ReduceOp>(loc, ReduceKind::sum, counted,
                            b.getDenseI64ArrayAttr(all), false);
}

func::FuncOp weft::findEntryFunction(ModuleOp module) {
  for (llvm::StringRef name : {"forward", "train_step"})
    if (auto entry = module.lookupSymbol<func::FuncOp>(name))
      return entry;
  auto funcs = module.getOps<func::FuncOp>();
  if (!funcs.empty() && std::next(funcs.begin()) == funcs.end())
    return *funcs.begin();
  return nullptr;
}

bool weft::isHostTensor(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && isa_and_nonnull<HostMemoryAttr>(tensor.getEncoding());
}
