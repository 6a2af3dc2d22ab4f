// weft-data-parallel: the collectives of data parallelism (see Passes.td).
#include "passes/Partition/Passes.h"

#include "passes/Partition/Prefetch.h"

#include "ir/WeftDialect.h"

#include "mlir/IR/Builders.h"

#include <map>
#include <set>

namespace weft {
#define GEN_PASS_DEF_DATAPARALLEL
#include "passes/Partition/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
/// The parameter an AdamW update is for (weft-optimizer names it by its
/// location).
std::string nameOf(AdamWUpdateOp adamw) {
  if (auto name = dyn_cast<NameLoc>(adamw.getLoc()))
    return name.getName().str();
  return "?";
}

/// The ranks ZeRO shards over and gradients are summed over: dp, and sp
/// when weft-partition split the sequence.
struct Group {
  MeshAttr mesh;
  ArrayAttr axes;
  int64_t ranks, sp;
};

/// A gradient weft-partition all-reduced over sp alone is this rank's
/// partial sum again, to be summed over the whole group; any other is
/// summed over sp already (or there is no sp) and takes the dp axis. The
/// value to sum and the axes.
std::pair<Value, ArrayAttr> partialGradient(Value grad, const Group &group) {
  Builder b(grad.getContext());
  if (auto reduce = grad.getDefiningOp<AllReduceOp>())
    if (reduce.getKind() == ReduceKind::sum &&
        reduce.getAxes() == b.getStrArrayAttr({"sp"}))
      return {reduce.getX(), group.axes};
  return {grad, group.sp > 1 ? b.getStrArrayAttr({"dp"}) : group.axes};
}

/// Elements of each rank's block of a flat tensor of `elements` over
/// `ranks`: the tensor is padded with zeros to ranks × block, as DeepSpeed
/// pads its flat buffers.
int64_t blockOf(int64_t elements, int64_t ranks) {
  return (elements + ranks - 1) / ranks;
}

/// Flat `v` [n] padded with zeros to [padded] (itself when n == padded).
Value padFlat(OpBuilder &b, Location loc, Value v, int64_t padded) {
  auto type = cast<RankedTensorType>(v.getType());
  const int64_t n = type.getDimSize(0);
  if (n == padded)
    return v;
  auto tail = type.clone({padded - n});
  Value zeros = b.create<ConstantOp>(
      loc, DenseElementsAttr::get(tail, b.getZeroAttr(type.getElementType())));
  return b.create<ConcatOp>(loc, type.clone({padded}), ValueRange{v, zeros}, 0);
}

/// Flat `v` [padded] cut to its first `n` elements (itself when n == padded).
Value unpadFlat(OpBuilder &b, Location loc, Value v, int64_t n) {
  auto type = cast<RankedTensorType>(v.getType());
  if (type.getDimSize(0) == n)
    return v;
  return b.create<SliceOp>(loc, type.clone({n}), v, ArrayRef<int64_t>{0},
                           ArrayRef<int64_t>{n}, ArrayRef<int64_t>{1});
}

void eraseIfDead(Value v) {
  if (auto reduce = v.getDefiningOp<AllReduceOp>(); reduce && v.use_empty())
    reduce.erase();
}

struct DataParallel : public weft::impl::DataParallelBase<DataParallel> {
  using DataParallelBase::DataParallelBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (dp < 1) {
      module.emitError() << "dp is " << static_cast<int64_t>(dp)
                         << "; a data-parallel group has at least one rank";
      return signalPassFailure();
    }
    if (zero < 0 || zero > 3) {
      module.emitError() << "ZeRO stage " << static_cast<int64_t>(zero)
                         << " is not 0, 1, 2 or 3";
      return signalPassFailure();
    }
    MLIRContext *context = &getContext();
    // weft-partition may have made the mesh (dp × sp); then ZeRO shards
    // over both axes, as DeepSpeed does, and the gradients it left summed
    // over sp only are summed over the whole group at once.
    auto mesh = module->getAttrOfType<MeshAttr>("weft.mesh");
    const int64_t sp =
        mesh && mesh.getAxis("sp") ? mesh.getAxis("sp").getSize() : 1;
    if (zero > 0 && mesh && mesh.getAxis("tp")) {
      module.emitError() << "ZeRO-" << static_cast<int64_t>(zero)
                         << " with tensor parallelism (tp = "
                         << mesh.getAxis("tp").getSize()
                         << ") is not there yet; use --zero 0 with --tp";
      return signalPassFailure();
    }
    if (dp == 1 && (sp == 1 || zero == 0))
      return;
    if (!mesh) {
      mesh = MeshAttr::get(
          context,
          {MeshAxisAttr::get(context, "dp", static_cast<int64_t>(dp))});
      module->setAttr("weft.mesh", mesh);
    }
    if (dp > 1 && !llvm::any_of(mesh.getAxes(), [&](MeshAxisAttr axis) {
          return axis.getName() == "dp" && axis.getSize() == dp;
        })) {
      module.emitError() << "the module's mesh " << mesh
                         << " has no dp axis of " << static_cast<int64_t>(dp);
      return signalPassFailure();
    }
    OpBuilder b(context);
    SmallVector<StringRef> names;
    if (dp > 1)
      names.push_back("dp");
    if (sp > 1)
      names.push_back("sp");
    Group group{mesh, b.getStrArrayAttr(names), dp * sp, sp};
    const float inverse = 1.0f / static_cast<float>(dp);

    // ZeRO-3 under gradient accumulation: @train_step reads the parameters
    // @optimizer_step updates; they are blocks there too, gathered before
    // each use (the plan binds a parameter once for both programs).
    if (zero == 3 && module.lookupSymbol("optimizer_step")) {
      std::set<std::string> trained;
      module.walk([&](AdamWUpdateOp adamw) { trained.insert(nameOf(adamw)); });
      for (auto func : module.getOps<func::FuncOp>()) {
        if (!func.getOps<GradNormOp>().empty())
          continue;
        for (BlockArgument arg : func.getArguments()) {
          auto name = func.getArgAttrOfType<StringAttr>(
              arg.getArgNumber(), WeftDialect::kParamAttrName);
          if (name && trained.count(name.str()) &&
              failed(shardParameter(func, arg, group)))
            return signalPassFailure();
        }
        prefetchGathers(func, [](Operation *) { return true; });
      }
    }

    bool updates = false;
    for (auto func : module.getOps<func::FuncOp>()) {
      // The gradients the optimizer reads are this rank's share: sum them
      // over the group (the update then scales by 1/dp with its own mean).
      SmallVector<GradNormOp> norms(func.getOps<GradNormOp>());
      for (GradNormOp norm : norms) {
        updates = true;
        if (zero > 0) {
          if (failed(shardUpdates(func, norm, group)))
            return signalPassFailure();
          continue;
        }
        for (unsigned i = 0; i < norm.getNumOperands(); ++i) {
          auto [grad, axes] = partialGradient(norm.getOperand(i), group);
          b.setInsertionPoint(norm);
          // bf16 gradients are summed in f32.
          auto type = cast<RankedTensorType>(grad.getType());
          Value wide = grad;
          if (!type.getElementType().isF32())
            wide = b.create<ConvertOp>(norm.getLoc(),
                                       type.clone(b.getF32Type()), grad);
          Value total = b.create<AllReduceOp>(norm.getLoc(), ReduceKind::sum,
                                              wide, mesh, axes);
          Value summed = norm.getOperand(i);
          for (OpOperand &use : llvm::make_early_inc_range(summed.getUses())) {
            auto adamw = dyn_cast<AdamWUpdateOp>(use.getOwner());
            if (use.getOwner() == norm.getOperation() ||
                (adamw && use.getOperandNumber() == 1))
              use.set(total);
          }
          eraseIfDead(summed);
        }
        norm.setGradScale(
            APFloat(norm.getGradScale().convertToFloat() * inverse));
      }
      if (zero == 0) // shardUpdates made its updates with the scale
        func.walk([&](AdamWUpdateOp adamw) {
          adamw.setGradScale(
              APFloat(adamw.getGradScale().convertToFloat() * inverse));
        });
      if (dp == 1)
        continue;
      // The loss each rank reports is the mean over the group's.
      auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
      for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
        auto name = func.getResultAttrOfType<StringAttr>(
            i, WeftDialect::kOutputAttrName);
        if (!name || name.getValue() != "loss")
          continue;
        b.setInsertionPoint(ret);
        ret.setOperand(i, b.create<AllReduceOp>(ret.getLoc(), ReduceKind::mean,
                                                ret.getOperand(i), mesh,
                                                b.getStrArrayAttr({"dp"})));
      }
    }
    // The function types follow the new arguments and results.
    for (auto func : module.getOps<func::FuncOp>()) {
      auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
      func.setType(FunctionType::get(context, func.getBody().getArgumentTypes(),
                                     ret.getOperandTypes()));
    }
    if (!updates) {
      module.emitError("data parallelism needs a training step with its "
                       "optimizer (weft-optimizer), whose gradients it sums "
                       "over the ranks");
      return signalPassFailure();
    }
  }

  /// ZeRO-3: `param` stored as this rank's flat block (in its element type)
  /// and gathered whole right before each op that reads it, but the update.
  LogicalResult shardParameter(func::FuncOp func, BlockArgument param,
                               const Group &group) {
    auto type = cast<RankedTensorType>(param.getType());
    const int64_t elements = type.getNumElements(),
                  size = blockOf(elements, group.ranks);
    auto padded =
        RankedTensorType::get({size * group.ranks}, type.getElementType());
    auto block = RankedTensorType::get({size}, type.getElementType());
    OpBuilder b(func.getContext());
    DenseMap<Operation *, Value> gathered;
    for (OpOperand &use : llvm::make_early_inc_range(param.getUses())) {
      Operation *user = use.getOwner();
      if (isa<AdamWUpdateOp>(user))
        continue;
      Value &copy = gathered[user];
      if (!copy) {
        b.setInsertionPoint(user);
        copy = b.create<AllGatherOp>(param.getLoc(), padded, param, group.mesh,
                                     group.axes, 0);
        copy = unpadFlat(b, param.getLoc(), copy, elements);
        if (type != copy.getType())
          copy = b.create<ReshapeOp>(param.getLoc(), type, copy);
      }
      use.set(copy);
    }
    param.setType(block);
    func.setArgAttr(
        param.getArgNumber(), "weft.param_shard",
        b.getDictionaryAttr(
            {b.getNamedAttr("elements", b.getI64IntegerAttr(elements)),
             b.getNamedAttr("axes", group.axes),
             b.getNamedAttr("shape",
                            b.getDenseI64ArrayAttr(type.getShape()))}));
    return success();
  }

  /// ZeRO-1/2: each rank keeps 1/dp of every parameter's optimizer state
  /// (moments and master weights, flattened) and updates that block only:
  /// the gradients are reduce-scattered (stage 2: each as soon as it is
  /// computed, so only blocks outlive the backward; stage 1: all at the
  /// end), the norm adds the blocks' squares over the group, and the new
  /// weights are all-gathered into every rank's replicated parameter.
  LogicalResult shardUpdates(func::FuncOp func, GradNormOp norm,
                             const Group &group) {
    OpBuilder b(norm);
    const int64_t ranks = group.ranks;
    MeshAttr mesh = group.mesh;
    ArrayAttr axes = group.axes;
    Location loc = norm.getLoc();
    auto flat = [&](Value v, Type element) -> Value {
      auto type = cast<RankedTensorType>(v.getType());
      return b.create<ReshapeOp>(
          loc, RankedTensorType::get({type.getNumElements()}, element), v);
    };
    SmallVector<AdamWUpdateOp> updates;
    for (Operation *user : norm->getUsers())
      if (auto adamw = dyn_cast<AdamWUpdateOp>(user))
        updates.push_back(adamw);
    llvm::sort(updates, [](AdamWUpdateOp a, AdamWUpdateOp b) {
      return a->isBeforeInBlock(b);
    });
    // The parameters' whole types (ZeRO-3 makes them blocks below).
    DenseMap<Operation *, RankedTensorType> wholeTypes;
    for (AdamWUpdateOp adamw : updates)
      wholeTypes[adamw] = cast<RankedTensorType>(adamw.getParam().getType());
    // ZeRO-3: the parameters themselves become blocks, gathered whole
    // right before each op that reads them (forward and backward apart, so
    // each whole copy dies after its use).
    if (zero == 3) {
      std::map<std::string, BlockArgument> params;
      for (BlockArgument arg : func.getArguments())
        if (auto name = func.getArgAttrOfType<StringAttr>(
                arg.getArgNumber(), WeftDialect::kParamAttrName))
          params[name.str()] = arg;
      for (AdamWUpdateOp adamw : updates) {
        BlockArgument param = params[nameOf(adamw)];
        if (!param)
          return adamw.emitError() << "updates '" << nameOf(adamw)
                                   << "', which is no weft.param argument";
        if (failed(shardParameter(func, param, group)))
          return failure();
      }
      prefetchGathers(func, [](Operation *) { return true; });
    }
    // Each gradient's block on this rank, summed over the group. Partial
    // gradients (each dp rank's, each sp rank's share of the tokens) sum
    // to dp times the mean; gradients summed over sp already (read from
    // accumulators) to dp · sp times it.
    SmallVector<Value> blocks, summedOverSp;
    std::optional<bool> partial;
    for (AdamWUpdateOp adamw : updates) {
      RankedTensorType type = wholeTypes[adamw];
      Value summed = adamw.getGrad();
      summedOverSp.push_back(summed);
      auto [gradient, sumAxes] = partialGradient(summed, group);
      const bool isPartial = sumAxes == axes;
      if (partial && *partial != isPartial)
        return adamw.emitError("reads a gradient summed over sp where "
                               "others are partial");
      partial = isPartial;
      if (!isPartial && group.sp > 1) // summed over sp: it stays so
        gradient = summed;
      // Stage 2 reduce-scatters each gradient as soon as it exists, so the
      // whole one dies there; stage 1 keeps every gradient to the end.
      if (zero >= 2 && gradient.getDefiningOp())
        b.setInsertionPointAfter(gradient.getDefiningOp());
      else
        b.setInsertionPoint(norm);
      // Summed in f32, widened before it is flattened: the widening then
      // joins the group that computed the gradient (a bf16 one rounded from
      // f32 becomes one f32 → bf16 → f32 group, written over its input).
      auto gradientType = cast<RankedTensorType>(gradient.getType());
      Value grad = gradient;
      if (!gradientType.getElementType().isF32())
        grad =
            b.create<ConvertOp>(loc, gradientType.clone(b.getF32Type()), grad);
      grad = padFlat(b, loc, flat(grad, b.getF32Type()),
                     blockOf(type.getNumElements(), ranks) * ranks);
      blocks.push_back(
          b.create<ReduceScatterOp>(loc, ReduceKind::sum, grad, mesh, axes, 0));
    }
    const float inverse =
        1.0f /
        static_cast<float>(partial.value_or(true) ? ranks / group.sp : ranks);
    b.setInsertionPoint(norm);
    auto sharded = b.create<GradNormOp>(
        loc, blocks,
        b.getF32FloatAttr(norm.getGradScale().convertToFloat() * inverse), mesh,
        axes);
    norm.replaceAllUsesWith(sharded.getResult());

    auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
    for (auto [adamw, block] : llvm::zip(updates, blocks)) {
      RankedTensorType type = wholeTypes[adamw];
      const int64_t elements = type.getNumElements(),
                    size = blockOf(elements, ranks);
      auto blockType = RankedTensorType::get({size}, b.getF32Type());
      // The moments (and master weights) become this rank's blocks.
      auto shardState = [&](Value state) -> LogicalResult {
        auto arg = dyn_cast<BlockArgument>(state);
        if (!arg ||
            !func.getArgAttr(arg.getArgNumber(), WeftDialect::kStateAttrName))
          return adamw.emitError("reads optimizer state that is not a "
                                 "weft.state argument");
        arg.setType(blockType);
        func.setArgAttr(
            arg.getArgNumber(), "weft.state_shard",
            b.getDictionaryAttr(
                {b.getNamedAttr("elements", b.getI64IntegerAttr(elements)),
                 b.getNamedAttr("axes", axes)}));
        return success();
      };
      b.setInsertionPoint(adamw);
      Value weights = adamw.getParam();
      const bool master =
          func.getArgAttr(cast<BlockArgument>(weights).getArgNumber(),
                          WeftDialect::kStateAttrName) != nullptr;
      if (master) {
        if (failed(shardState(weights)))
          return failure();
      } else if (zero == 3) { // the parameter is the block
      } else {
        weights = b.create<AllSliceOp>(
            loc, padFlat(b, loc, flat(weights, b.getF32Type()), size * ranks),
            mesh, axes, 0);
      }
      if (failed(shardState(adamw.getExpAvg())) ||
          failed(shardState(adamw.getExpAvgSq())))
        return failure();
      auto update = b.create<AdamWUpdateOp>(
          adamw.getLoc(), weights, block, adamw.getExpAvg(),
          adamw.getExpAvgSq(), adamw.getLr(), adamw.getStep(), sharded,
          adamw.getBeta1Attr(), adamw.getBeta2Attr(), adamw.getEpsAttr(),
          adamw.getWeightDecayAttr(), adamw.getMaxGradNormAttr(),
          b.getF32FloatAttr(adamw.getGradScale().convertToFloat() * inverse),
          UnitAttr());
      // Every rank's new weights, in `element`, shaped as `like`.
      auto gathered = [&](Type element, Type like) -> Value {
        Value part = update.getNewParam();
        if (!element.isF32())
          part = b.create<ConvertOp>(loc, blockType.clone(element), part);
        Value all = b.create<AllGatherOp>(
            loc, RankedTensorType::get({size * ranks}, element), part, mesh,
            axes, 0);
        return b.create<ReshapeOp>(loc, like, unpadFlat(b, loc, all, elements));
      };
      adamw.getNewExpAvg().replaceAllUsesWith(update.getNewExpAvg());
      adamw.getNewExpAvgSq().replaceAllUsesWith(update.getNewExpAvgSq());
      for (OpOperand &use :
           llvm::make_early_inc_range(adamw.getNewParam().getUses())) {
        Operation *user = use.getOwner();
        if (user == ret && (master || zero == 3)) {
          use.set(update.getNewParam());
        } else if (user == ret) {
          b.setInsertionPoint(ret);
          use.set(gathered(b.getF32Type(), type));
        } else if (auto convert = dyn_cast<ConvertOp>(user)) {
          b.setInsertionPoint(convert);
          auto narrow = cast<RankedTensorType>(convert.getType());
          // ZeRO-3 rounds its block (the bf16 parameter is a block too).
          convert.replaceAllUsesWith(
              zero == 3 ? b.create<ConvertOp>(
                              loc, blockType.clone(narrow.getElementType()),
                              update.getNewParam())
                        : gathered(narrow.getElementType(), narrow));
          convert.erase();
        } else {
          return user->emitError("reads AdamW's new weights; ZeRO expects "
                                 "them returned or rounded to bf16");
        }
      }
      adamw.erase();
    }
    norm.erase();
    for (Value summed : summedOverSp)
      eraseIfDead(summed);
    return success();
  }
};
} // namespace
