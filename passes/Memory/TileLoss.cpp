// weft-tile-loss and weft-interleave-loss-tiles: ALST's tiled logits and
// loss. The first cuts the output projection and its cross-entropy into
// tiles of tokens before the backward is built; the second, after, runs
// each tile's forward right before its backward.
#include "passes/Memory/Passes.h"

#include "ir/WeftDialect.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

namespace weft {
#define GEN_PASS_DEF_TILELOSS
#define GEN_PASS_DEF_INTERLEAVELOSSTILES
#include "passes/Memory/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
/// A tile's ops carry its index (kLossTileAttr); the ops that sum the
/// tiles' losses carry kSumAttr.
constexpr llvm::StringLiteral kSumAttr = "weft.loss_sum";

struct TileLoss : public weft::impl::TileLossBase<TileLoss> {
  using TileLossBase::TileLossBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (tiles < 2) {
      emitError(module.getLoc())
          << "weft-tile-loss: tiles is " << static_cast<int64_t>(tiles)
          << "; expected at least 2";
      return signalPassFailure();
    }
    SmallVector<CrossEntropyOp> losses;
    module.walk([&](CrossEntropyOp loss) {
      auto linear = loss.getLogits().getDefiningOp<LinearOp>();
      if (linear && !linear.getBias() &&
          loss.getReduction() != LossReduction::none &&
          llvm::all_of(linear->getUses(), [&](OpOperand &use) {
            return use.getOwner() == loss || isLogitsResult(use);
          }))
        losses.push_back(loss);
    });
    if (losses.empty()) {
      emitError(module.getLoc())
          << "weft-tile-loss: finds no loss to tile: a "
             "cross_entropy (mean or sum) of a linear without a "
             "bias that nothing else reads (the output "
             "projection)";
      return signalPassFailure();
    }
    for (CrossEntropyOp loss : losses)
      if (failed(tile(loss)))
        return signalPassFailure();
  }

  /// Whether `use` returns the function's "logits" output (a model's
  /// second result, which a training step does not return).
  static bool isLogitsResult(OpOperand &use) {
    auto ret = dyn_cast<func::ReturnOp>(use.getOwner());
    if (!ret)
      return false;
    auto func = ret->getParentOfType<func::FuncOp>();
    auto name = func.getResultAttrOfType<StringAttr>(
        use.getOperandNumber(), WeftDialect::kOutputAttrName);
    return name && name.getValue() == "logits";
  }

  LogicalResult tile(CrossEntropyOp loss) {
    auto linear = loss.getLogits().getDefiningOp<LinearOp>();
    Value h = linear.getX(), weight = linear.getWeight();
    Value labels = loss.getLabels();
    auto hType = cast<RankedTensorType>(h.getType());
    auto labelType = cast<RankedTensorType>(labels.getType());
    const int64_t hidden = hType.getShape().back();
    const int64_t tokens = labelType.getNumElements();
    if (tokens < tiles)
      return emitError(loss.getLoc())
             << "weft-tile-loss: " << static_cast<int64_t>(tiles)
             << " tiles of " << tokens << " tokens (at most one a token)";
    if (hType.getNumElements() != tokens * hidden)
      return emitError(loss.getLoc())
             << "weft-tile-loss: the projection reads " << hType
             << " for labels " << labelType << "; expected a row a label";
    // The logits are never whole: the function no longer returns them.
    for (OpOperand &use : llvm::make_early_inc_range(linear->getUses()))
      if (isLogitsResult(use)) {
        auto ret = cast<func::ReturnOp>(use.getOwner());
        auto func = ret->getParentOfType<func::FuncOp>();
        unsigned index = use.getOperandNumber();
        ret->eraseOperand(index);
        func.eraseResult(index);
      }
    Location loc = loss.getLoc();
    OpBuilder b(loss);
    Value rows = b.create<ReshapeOp>(loc, hType.clone({tokens, hidden}), h);
    Value flatLabels =
        b.create<ReshapeOp>(loc, labelType.clone({tokens}), labels);
    auto i64s = [&](ArrayRef<int64_t> values) {
      return b.getDenseI64ArrayAttr(values);
    };
    // Tile t takes tokens [t·T/N, (t+1)·T/N): N tiles whose sizes differ by
    // one at most.
    Value total;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t start = t * tokens / tiles, end = (t + 1) * tokens / tiles;
      auto mark = [&](Value v) {
        v.getDefiningOp()->setAttr(kLossTileAttr, b.getI64IntegerAttr(t));
        return v;
      };
      Value x = mark(b.create<SliceOp>(loc, hType.clone({end - start, hidden}),
                                       rows, i64s({start, 0}),
                                       i64s({end, hidden}), i64s({1, 1})));
      Value y = mark(b.create<SliceOp>(loc, labelType.clone({end - start}),
                                       flatLabels, i64s({start}), i64s({end}),
                                       i64s({1})));
      Value logits =
          mark(b.create<LinearOp>(linear.getLoc(), x, weight, Value()));
      Value sum = mark(b.create<CrossEntropyOp>(
          loc, logits, y, loss.getIgnoreIndex(), LossReduction::sum));
      if (!total) {
        total = sum;
        continue;
      }
      total = b.create<AddOp>(loc, total, sum);
      total.getDefiningOp()->setAttr(kSumAttr, b.getUnitAttr());
    }
    if (loss.getReduction() == LossReduction::mean) {
      // Over the count of non-ignored tokens, 1 at least: the mean's.
      Value count =
          countLabeledTokens(b, loc, flatLabels, loss.getIgnoreIndex());
      Value one = b.create<ConstantOp>(
          loc, DenseElementsAttr::get(RankedTensorType::get({}, b.getF32Type()),
                                      b.getF32FloatAttr(1.0f)));
      count = b.create<MaxOp>(loc, count, one);
      total = b.create<DivOp>(loc, total, count);
      total.getDefiningOp()->setAttr(kSumAttr, b.getUnitAttr());
    }
    loss.getResult().replaceAllUsesWith(total);
    loss.erase();
    linear.erase();
    return success();
  }
};

struct InterleaveLossTiles
    : public weft::impl::InterleaveLossTilesBase<InterleaveLossTiles> {
  void runOnOperation() override {
    Block &body = getOperation().getBody().front();
    llvm::MapVector<int64_t, SmallVector<Operation *>> tiles;
    SmallVector<Operation *> sums;
    for (Operation &op : body) {
      if (auto t = op.getAttrOfType<IntegerAttr>(kLossTileAttr))
        tiles[t.getInt()].push_back(&op);
      if (op.hasAttr(kSumAttr))
        sums.push_back(&op);
    }
    auto clear = [&] {
      for (auto &[t, ops] : tiles)
        for (Operation *op : ops)
          op->removeAttr(kLossTileAttr);
      for (Operation *op : sums)
        op->removeAttr(kSumAttr);
    };
    // The loss's sum moves to the end, with what reads it but the return
    // (the mean over data-parallel ranks): scalars that only the return
    // reads in the end.
    Operation *end = body.getTerminator();
    llvm::SetVector<Operation *> loss(sums.begin(), sums.end());
    for (size_t i = 0; i < loss.size(); ++i)
      for (Operation *user : loss[i]->getUsers())
        if (user != end)
          loss.insert(user);
    for (Operation *op : loss)
      if (op->hasAttr(kLossTileAttr) ||
          llvm::any_of(op->getResultTypes(), [](Type type) {
            return cast<RankedTensorType>(type).getRank() != 0;
          }))
        return clear();
    SmallVector<Operation *> ordered(loss.begin(), loss.end());
    llvm::sort(ordered, [](Operation *a, Operation *b) {
      return a->isBeforeInBlock(b);
    });
    for (Operation *op : ordered)
      op->moveBefore(end);
    // Each tile's forward moves down to the first op outside it that reads
    // it (its gradient's first op), where every other reader follows.
    for (auto &[t, ops] : tiles) {
      Operation *first = nullptr;
      for (Operation *op : ops)
        for (Operation *user : op->getUsers())
          if (!llvm::is_contained(ops, user) && !loss.contains(user) &&
              (!first || user->isBeforeInBlock(first)))
            first = user;
      if (!first || first == end)
        continue;
      for (Operation *op : ops)
        if (op->isBeforeInBlock(first))
          op->moveBefore(first);
    }
    clear();
  }
};
} // namespace
