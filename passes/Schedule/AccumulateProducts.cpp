// weft-accumulate-products: a matrix product added to another tensor is
// computed onto it, the GEMM's accumulator.
#include "passes/Schedule/Passes.h"

#include "mlir/IR/Builders.h"

namespace weft {
#define GEN_PASS_DEF_ACCUMULATEPRODUCTS
#include "passes/Schedule/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
/// The product `v` is, seen through reshapes that only it reads (added to
/// `views`, outermost first): a float matmul with no accumulator whose result
/// only `v` stands for.
MatmulOp productOf(Value v, SmallVectorImpl<ReshapeOp> &views) {
  views.clear();
  while (auto reshape = v.getDefiningOp<ReshapeOp>()) {
    if (!reshape.getResult().hasOneUse())
      return {};
    views.push_back(reshape);
    v = reshape.getOperand();
  }
  auto matmul = v.getDefiningOp<MatmulOp>();
  if (!matmul || matmul.getAcc() || !matmul.getResult().hasOneUse() ||
      !isa<FloatType>(matmul.getType().getElementType()))
    return {};
  return matmul;
}

/// `v` as `type`: the tensor under its reshapes where that has the type,
/// else one reshape of it.
Value viewAs(OpBuilder &b, Location loc, Value v, RankedTensorType type) {
  Value source = v;
  while (source.getType() != type)
    if (auto reshape = source.getDefiningOp<ReshapeOp>())
      source = reshape.getOperand();
    else
      break;
  if (source.getType() == type)
    return source;
  return b.create<ReshapeOp>(loc, type, source);
}

/// Erases `v`'s reshapes that nothing reads any more, outermost first.
void eraseDeadViews(Value v) {
  while (auto reshape = v.getDefiningOp<ReshapeOp>()) {
    if (!reshape->use_empty())
      return;
    v = reshape.getOperand();
    reshape.erase();
  }
}

/// Whether `v` is ready where `op` is: an argument, or made before it.
bool readyAt(Value v, Operation *op) {
  Operation *def = v.getDefiningOp();
  return !def ||
         (def->getBlock() == op->getBlock() && def->isBeforeInBlock(op));
}

/// Whether `v` is zeros: a splat 0 constant, or one broadcast.
bool isZeros(Value v) {
  if (auto broadcast = v.getDefiningOp<BroadcastOp>())
    v = broadcast.getX();
  auto constant = v.getDefiningOp<ConstantOp>();
  auto value =
      constant ? dyn_cast<DenseElementsAttr>(constant.getValue()) : nullptr;
  if (!value || !value.isSplat())
    return false;
  Attribute element = value.getSplatValue<Attribute>();
  if (auto f = dyn_cast<FloatAttr>(element))
    return f.getValue().isZero();
  auto i = dyn_cast<IntegerAttr>(element);
  return i && i.getValue().isZero();
}

/// Erases the zeros `v` (a broadcast, its constant) where nothing reads
/// them any more.
void eraseDeadZeros(Value v) {
  Operation *def = v.getDefiningOp();
  if (!def || !def->use_empty())
    return;
  Value source = isa<BroadcastOp>(def) ? def->getOperand(0) : Value();
  def->erase();
  if (source && source.getDefiningOp() && source.getDefiningOp()->use_empty())
    source.getDefiningOp()->erase();
}

/// add(scatter_add(zeros, i, u), y) → scatter_add(y, i, u), where y is
/// ready before the scatter and only the add reads it: a slice's gradient
/// (scattered into zeros by its rule) added into the sliced value's.
bool scatterOntoAddend(AddOp add) {
  for (auto [p, other] : {std::pair(add.getLhs(), add.getRhs()),
                          std::pair(add.getRhs(), add.getLhs())}) {
    auto scatter = p.getDefiningOp<ScatterAddOp>();
    if (!scatter || !p.hasOneUse() || p == other ||
        !isZeros(scatter.getBase()) || other.getType() != p.getType() ||
        !readyAt(other, scatter))
      continue;
    Value zeros = scatter.getBase();
    scatter.getBaseMutable().assign(other);
    add.replaceAllUsesWith(scatter.getResult());
    add.erase();
    eraseDeadZeros(zeros);
    return true;
  }
  return false;
}

struct AccumulateProducts
    : public weft::impl::AccumulateProductsBase<AccumulateProducts> {
  void runOnOperation() override {
    SmallVector<AddOp> adds;
    getOperation().walk([&](AddOp add) { adds.push_back(add); });
    for (AddOp add : adds) {
      if (scatterOntoAddend(add))
        continue;
      // The addend that is a product made after the other addend is ready
      // (the later one where both are): nothing moves, and the sum needs no
      // memory of its own where the other addend dies there.
      Value lhs = add.getLhs(), rhs = add.getRhs();
      if (lhs == rhs || lhs.getType() != rhs.getType())
        continue;
      MatmulOp product;
      Value addend;
      SmallVector<ReshapeOp> views, candidateViews;
      for (auto [p, other] : {std::pair(lhs, rhs), std::pair(rhs, lhs)}) {
        MatmulOp candidate = productOf(p, candidateViews);
        if (candidate && readyAt(other, candidate) &&
            (!product || product->isBeforeInBlock(candidate))) {
          product = candidate;
          addend = other;
          views = candidateViews;
        }
      }
      if (!product)
        continue;
      OpBuilder b(product);
      product.getAccMutable().assign(
          viewAs(b, add.getLoc(), addend, product.getType()));
      b.setInsertionPoint(add);
      add.replaceAllUsesWith(
          viewAs(b, add.getLoc(), product.getResult(), add.getType()));
      add.erase();
      for (ReshapeOp view : views)
        view.erase();
      eraseDeadViews(addend);
    }
  }
};
} // namespace
