// weft-partition: the SPMD rewrite of a training step from global shapes to
// one rank's, through each op's sharding rule (see Passes.td).
#include "passes/Partition/Passes.h"

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <map>

namespace weft {
#define GEN_PASS_DEF_PARTITION
#include "passes/Partition/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// How a value is split over the model axis (sp or tp): the global tensor's
/// flat index has a factor of `size` elements at `stride` (row-major), and rank
/// r holds its r-th block of size/P. stride 0: replicated.
struct Shard {
  int64_t stride = 0, size = 0;
  explicit operator bool() const { return stride != 0; }
  bool operator==(const Shard &o) const {
    return stride == o.stride && size == o.size;
  }
  bool operator<(const Shard &o) const {
    return std::tie(stride, size) < std::tie(o.stride, o.size);
  }
};

/// Elements after dimension d in `shape`.
int64_t after(ArrayRef<int64_t> shape, int64_t d) {
  int64_t n = 1;
  for (size_t i = d + 1; i < shape.size(); ++i)
    n *= shape[i];
  return n;
}

/// The dimension of `shape` that holds `shard` whole and the stride of the
/// shard inside it; nullopt when it straddles dimensions.
std::optional<std::pair<int64_t, int64_t>> locate(ArrayRef<int64_t> shape,
                                                  Shard shard) {
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    const int64_t below = after(shape, d);
    if (shard.stride % below != 0)
      continue;
    const int64_t inner = shard.stride / below;
    if (inner * shard.size <= shape[d] && shape[d] % (inner * shard.size) == 0)
      return std::pair{d, inner};
  }
  return std::nullopt;
}

/// A factor's share of a shard: the stride inside the factor and the size.
struct FactorShard {
  int64_t inner = 1, size = 0;
  bool operator==(const FactorShard &o) const {
    return inner == o.inner && size == o.size;
  }
};

using DimFactors = ArrayRef<SmallVector<int64_t, 1>>;
using FactorSplit = DenseMap<int64_t, FactorShard>;

/// The factor of `dims` (a tensor's dimensions in a rule, of global
/// `shape`) that `shard` splits over `parts` ranks, and how; nullopt when it
/// splits none whole. A split that reaches a factor's outermost element is
/// that factor's split into `parts` blocks, whatever lies inside it: the
/// output features of a column-parallel linear split heads.
std::optional<std::pair<int64_t, FactorShard>>
factorOf(const OpShardingRule &rule, DimFactors dims, ArrayRef<int64_t> shape,
         Shard shard, int64_t parts) {
  auto at = locate(shape, shard);
  if (!at || at->first >= static_cast<int64_t>(dims.size()))
    return std::nullopt;
  const auto &factors = dims[at->first];
  const int64_t inner = at->second, extent = inner * shard.size;
  int64_t below = 1;
  for (int64_t k = static_cast<int64_t>(factors.size()) - 1; k >= 0; --k) {
    const int64_t f = factors[k], size = rule.factorSizes[f];
    if (inner % below == 0 && inner / below * shard.size <= size &&
        size % (inner / below * shard.size) == 0) {
      FactorShard fs{inner / below, shard.size};
      if (fs.inner * fs.size == size)
        fs = FactorShard{1, size};
      return std::pair{f, fs};
    }
    if (below % inner == 0 && extent == below * size && size % parts == 0)
      return std::pair{f, FactorShard{1, size}};
    below *= size;
  }
  return std::nullopt;
}

/// How a tensor of `dims` (global `shape`) is split when its factors are
/// split as `split`: the first split factor found.
Shard shardOf(const OpShardingRule &rule, DimFactors dims,
              ArrayRef<int64_t> shape, const FactorSplit &split) {
  for (auto [d, factors] : llvm::enumerate(dims)) {
    int64_t below = 1;
    for (int64_t k = static_cast<int64_t>(factors.size()) - 1; k >= 0; --k) {
      if (auto it = split.find(factors[k]); it != split.end())
        return Shard{it->second.inner * below * after(shape, d),
                     it->second.size};
      below *= rule.factorSizes[factors[k]];
    }
  }
  return Shard{};
}

/// How a [batch, seq, heads, dim] tensor of global type `type` is split
/// along its sequence (Ulysses' activations).
Shard sequenceShard(RankedTensorType type) {
  return Shard{type.getDimSize(2) * type.getDimSize(3), type.getDimSize(1)};
}

/// How attention's log-sum-exp [batch, heads, seq] of global type `type` is
/// split along its heads (Ulysses' local attention computes its heads over
/// the whole sequence).
Shard headShard(RankedTensorType type) {
  return Shard{type.getDimSize(2), type.getDimSize(1)};
}

/// A slice's limits for its operand's local shape: whole split dimensions
/// taken at their local size.
void localizeSlice(SliceOp cut) {
  SmallVector<int64_t> limit(cut.getLimit());
  ArrayRef<int64_t> local = typeOf(cut.getX()).getShape();
  for (size_t d = 0; d < limit.size(); ++d)
    if (cut.getStart()[d] == 0 && cut.getStride()[d] == 1 &&
        limit[d] > local[d])
      limit[d] = local[d];
  cut.setLimit(limit);
}

struct Partition : public weft::impl::PartitionBase<Partition> {
  using PartitionBase::PartitionBase;

  MeshAttr mesh;
  /// The axis values are split over ("sp" or "tp"), as collectives name it,
  /// and its ranks.
  StringRef axis;
  ArrayAttr axes;
  int64_t parts = 1;
  DenseMap<Value, Shard> shards;
  /// The global type of each split value.
  DenseMap<Value, RankedTensorType> globals;

  void setShard(Value v, Shard shard, RankedTensorType global) {
    shards[v] = shard;
    globals[v] = global;
  }
  /// Values resharded once and reused: (value, shard) → local value.
  std::map<std::pair<void *, Shard>, Value> sliced;
  DenseMap<Value, Value> gathered;
  /// Partial results (each rank's share of a split reduction) and their
  /// reduction; each one's combined value, made once.
  DenseMap<Value, ReduceKind> partials;
  DenseMap<Value, Value> combined;
  /// The arguments the strategy split (tensor parallelism's weights and
  /// their optimizer state) by name, and how.
  DenseMap<StringAttr, Shard> splitArguments;
  /// Ulysses: a sequence-sharded value's head-sharded form, and the
  /// head-sharded output of each attention (what its gradient reads).
  DenseMap<Value, Value> byHeads;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (sp < 1 || dp < 1 || tp < 1) {
      module.emitError() << "mesh sizes dp = " << static_cast<int64_t>(dp)
                         << ", sp = " << static_cast<int64_t>(sp)
                         << ", tp = " << static_cast<int64_t>(tp)
                         << " must be at least 1";
      return signalPassFailure();
    }
    if (sp > 1 && tp > 1) {
      module.emitError() << "sp = " << static_cast<int64_t>(sp)
                         << " with tp = " << static_cast<int64_t>(tp)
                         << ": sequence and tensor parallelism together are "
                            "not there yet";
      return signalPassFailure();
    }
    if (sp == 1 && tp == 1)
      return;
    MLIRContext *context = &getContext();
    axis = sp > 1 ? "sp" : "tp";
    parts = sp > 1 ? sp : tp;
    SmallVector<MeshAxisAttr> meshAxes;
    if (dp > 1)
      meshAxes.push_back(MeshAxisAttr::get(context, "dp", dp));
    meshAxes.push_back(MeshAxisAttr::get(context, axis, parts));
    mesh = MeshAttr::get(context, meshAxes);
    module->setAttr("weft.mesh", mesh);
    axes = Builder(context).getStrArrayAttr({axis});
    for (auto func : module.getOps<func::FuncOp>())
      if (failed(partition(func)))
        return signalPassFailure();
  }

  //===--------------------------------------------------------------------===//
  // Resharding
  //===--------------------------------------------------------------------===//

  /// `shape` with the dimension holding `shard` cut to this rank's block.
  SmallVector<int64_t> localShape(ArrayRef<int64_t> shape, Shard shard) {
    SmallVector<int64_t> local(shape);
    if (shard)
      local[locate(shape, shard)->first] /= parts;
    return local;
  }

  /// `v` (local, split by `shard`) reshaped so the shard is a dimension of
  /// its own: [before, outer, size/P (local), inner, after]; and back.
  struct Exposed {
    SmallVector<int64_t> shape;
    int64_t dim;
  };
  Exposed expose(ArrayRef<int64_t> globalShape, Shard shard, bool local) {
    auto [d, inner] = *locate(globalShape, shard);
    Exposed e;
    e.shape.append(globalShape.begin(), globalShape.begin() + d);
    const int64_t outer = globalShape[d] / (inner * shard.size);
    if (outer != 1)
      e.shape.push_back(outer);
    e.dim = e.shape.size();
    e.shape.push_back(local ? shard.size / parts : shard.size);
    if (inner != 1)
      e.shape.push_back(inner);
    e.shape.append(globalShape.begin() + d + 1, globalShape.end());
    return e;
  }

  /// `v` as `type`: a reshape unless it is already.
  Value reshape(OpBuilder &b, Value v, RankedTensorType type) {
    if (v.getType() == type)
      return v;
    return b.create<ReshapeOp>(v.getLoc(), type, v);
  }

  /// Replicated `v` as this rank's block of `shard`: splat constants and
  /// iotas along other dimensions are made at the local shape, the rest
  /// sliced (`weft.all_slice`, nothing sent).
  Value slice(OpBuilder &b, Value v, Shard shard) {
    auto key = std::pair{v.getAsOpaquePointer(), shard};
    if (auto it = sliced.find(key); it != sliced.end())
      return it->second;
    RankedTensorType type = typeOf(v);
    auto local = type.clone(localShape(type.getShape(), shard));
    OpBuilder::InsertionGuard guard(b);
    if (Operation *def = v.getDefiningOp())
      b.setInsertionPointAfter(def);
    else
      b.setInsertionPointToStart(cast<BlockArgument>(v).getOwner());
    Value result;
    auto constant = v.getDefiningOp<ConstantOp>();
    auto dense =
        constant ? dyn_cast<DenseElementsAttr>(constant.getValue()) : nullptr;
    auto iota = v.getDefiningOp<IotaOp>();
    if (dense && dense.isSplat()) {
      result = b.create<ConstantOp>(v.getLoc(), dense.resizeSplat(local));
    } else if (iota && locate(type.getShape(), shard)->first != iota.getDim()) {
      result = b.create<IotaOp>(v.getLoc(), local, iota.getDim());
    } else if (Value computed = sliceThrough(b, v, shard)) {
      result = computed;
    } else {
      Exposed e = expose(type.getShape(), shard, /*local=*/false);
      Value full = reshape(b, v, type.clone(e.shape));
      Value part = b.create<AllSliceOp>(v.getLoc(), full, mesh, axes, e.dim);
      result = reshape(b, part, local);
    }
    sliced[key] = result;
    return result;
  }

  /// Replicated `v`'s block computed as such: its op again on its
  /// operands' blocks, when its rule splits the result's factor (a
  /// broadcast of the labels, a one-hot, a norm's weight spread over the
  /// tokens) — instead of the whole value computed and cut. Null when not.
  Value sliceThrough(OpBuilder &b, Value v, Shard shard) {
    Operation *def = v.getDefiningOp();
    auto ruled = dyn_cast_or_null<ShardingRuleOpInterface>(def);
    if (!ruled || def->getNumResults() != 1 || def->getNumRegions() != 0 ||
        isa<ConstantOp, IotaOp>(def) ||
        llvm::any_of(def->getOperands(),
                     [&](Value x) { return bool(shards.lookup(x)); }))
      return {};
    OpShardingRule rule = ruled.getShardingRule();
    auto found = factorOf(rule, rule.resultFactors[0], typeOf(v).getShape(),
                          shard, parts);
    if (!found || rule.isBlocked(found->first))
      return {};
    FactorSplit split;
    split[found->first] = found->second;
    // The factor must come from an operand (a concat's result dimension,
    // for one, is its own) — or be one a broadcast adds, the same along it.
    SmallVector<Shard> wants;
    for (auto [i, operand] : llvm::enumerate(def->getOperands()))
      wants.push_back(i < rule.operandFactors.size()
                          ? shardOf(rule, rule.operandFactors[i],
                                    typeOf(operand).getShape(), split)
                          : Shard{});
    if (!isa<BroadcastOp>(def) &&
        llvm::none_of(wants, [](Shard want) { return bool(want); }))
      return {};
    SmallVector<Value> operands;
    for (auto [operand, want] : llvm::zip(def->getOperands(), wants))
      operands.push_back(want ? slice(b, operand, want) : operand);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointAfter(def);
    Operation *local = b.clone(*def);
    local->setOperands(operands);
    local->getResult(0).setType(
        typeOf(v).clone(localShape(typeOf(v).getShape(), shard)));
    if (auto cut = dyn_cast<SliceOp>(local))
      localizeSlice(cut);
    return local->getResult(0);
  }

  /// Sharded `v` (its global type `global`) whole on every rank
  /// (`weft.all_gather`), made once after its definition.
  Value gather(OpBuilder &b, Value v) {
    if (auto it = gathered.find(v); it != gathered.end())
      return it->second;
    Shard shard = shards.lookup(v);
    RankedTensorType local = typeOf(v);
    SmallVector<int64_t> global(local.getShape());
    global[locate(globalShapeOf(v), shard)->first] *= parts;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointAfterValue(v);
    Exposed e = expose(global, shard, /*local=*/true);
    Value part = reshape(b, v, local.clone(e.shape));
    SmallVector<int64_t> whole = e.shape;
    whole[e.dim] *= parts;
    Value all = b.create<AllGatherOp>(v.getLoc(), local.clone(whole), part,
                                      mesh, axes, e.dim);
    Value result = reshape(b, all, local.clone(global));
    gathered[v] = result;
    return result;
  }

  /// Partial `v` combined over the axis by its reduction: one all-reduce
  /// right after it, which all its readers share.
  Value combine(OpBuilder &b, Value v) {
    if (auto it = combined.find(v); it != combined.end())
      return it->second;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointAfterValue(v);
    Value total =
        b.create<AllReduceOp>(v.getLoc(), partials.lookup(v), v, mesh, axes);
    combined[v] = total;
    return total;
  }

  /// The global shape of a value (partitioned or not).
  SmallVector<int64_t> globalShapeOf(Value v) {
    if (auto it = globals.find(v); it != globals.end())
      return SmallVector<int64_t>(it->second.getShape());
    return SmallVector<int64_t>(typeOf(v).getShape());
  }

  //===--------------------------------------------------------------------===//
  // The walk
  //===--------------------------------------------------------------------===//

  LogicalResult partition(func::FuncOp func) {
    OpBuilder b(func.getContext());
    Block &body = func.getBody().front();
    if (axis == "tp") {
      if (failed(splitWeights(func)))
        return failure();
    }
    // The strategy: the tokens' sequence dimension on sp. input_ids stays
    // whole in memory (N integers); each rank slices its block.
    for (BlockArgument arg : body.getArguments()) {
      if (axis != "sp")
        break;
      auto name = func.getArgAttrOfType<StringAttr>(
          arg.getArgNumber(), WeftDialect::kInputAttrName);
      if (!name || name.getValue() != "input_ids")
        continue;
      RankedTensorType type = typeOf(arg);
      if (type.getRank() != 2)
        return func.emitError("input_ids is not [batch, sequence]");
      if (failed(checkSequence(func, type.getDimSize(1))))
        return failure();
      Shard shard{1, type.getDimSize(1)};
      SmallVector<OpOperand *> uses;
      for (OpOperand &use : arg.getUses())
        uses.push_back(&use);
      Value local = slice(b, arg, shard);
      for (OpOperand *use : uses)
        use->set(local);
      setShard(local, shard, type);
    }
    // Ulysses' legality, checked before anything is rewritten (tensor
    // parallelism's was, by splitWeights).
    for (auto attention : body.getOps<AttentionOp>())
      if (axis == "sp" &&
          failed(headsLegal(attention, attention.getQ(), attention.getK())))
        return failure();
    auto isSplit = [&](Value v) { return bool(shards.lookup(v)); };
    auto isPartial = [&](Value v) { return partials.count(v) != 0; };
    auto isPartialSum = [&](Value v) {
      auto it = partials.find(v);
      return it != partials.end() && it->second == ReduceKind::sum;
    };
    for (Operation &op : llvm::make_early_inc_range(body.getOperations())) {
      const bool ret = isa<func::ReturnOp>(op);
      if (!ret && llvm::none_of(op.getOperands(), isSplit) &&
          llvm::none_of(op.getOperands(), isPartial))
        continue;
      // Partial sums add up before they are combined (the input gradients
      // of q, k and v: one all-reduce), partial results keep through
      // reshapes and transposes; anything else reads them combined.
      if (isa<AddOp>(op) && llvm::all_of(op.getOperands(), isPartialSum)) {
        partials[op.getResult(0)] = ReduceKind::sum;
        continue;
      }
      if (isa<ReshapeOp, TransposeOp>(op) && isPartial(op.getOperand(0))) {
        partials[op.getResult(0)] = partials.lookup(op.getOperand(0));
        continue;
      }
      for (OpOperand &operand : op.getOpOperands())
        if (isPartial(operand.get()))
          operand.set(combine(b, operand.get()));
      if (!ret && llvm::none_of(op.getOperands(), isSplit))
        continue;
      LogicalResult result = success();
      if (ret) {
        // Updates of split arguments are returned split (a whole one, the
        // accumulators' zeros, sliced); the rest whole.
        b.setInsertionPoint(&op);
        for (OpOperand &operand : op.getOpOperands()) {
          Shard shard = shards.lookup(operand.get());
          auto name = func.getResultAttrOfType<StringAttr>(
              operand.getOperandNumber(), WeftDialect::kUpdateAttrName);
          Shard want = name ? splitArguments.lookup(name) : Shard{};
          if (shard && !(want == shard))
            operand.set(gather(b, operand.get()));
          else if (!shard && want)
            operand.set(slice(b, operand.get(), want));
        }
      } else if (isa<AttentionOp, AttentionGradOp>(op) && axis == "sp") {
        if (auto attention = dyn_cast<AttentionOp>(op))
          result = ulysses(b, attention);
        else
          result = ulysses(b, cast<AttentionGradOp>(op));
      } else if (auto norm = dyn_cast<GradNormOp>(op)) {
        result = gradNorm(b, norm);
      } else if (auto loss = dyn_cast<CrossEntropyOp>(op);
                 loss && loss.getReduction() != LossReduction::none) {
        result = tokenLoss(b, loss);
      } else if (auto rule = dyn_cast<ShardingRuleOpInterface>(op)) {
        result = byRule(b, rule);
      } else {
        result = op.emitError() << "has no sharding rule; weft-partition "
                                   "cannot split it over "
                                << axis;
      }
      if (failed(result))
        return failure();
    }
    // What the split left unread (whole values now computed by blocks).
    for (Operation &op :
         llvm::make_early_inc_range(llvm::reverse(body.getOperations())))
      if (isOpTriviallyDead(&op))
        op.erase();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    func.setType(FunctionType::get(func.getContext(), body.getArgumentTypes(),
                                   ret.getOperandTypes()));
    return success();
  }

  LogicalResult checkSequence(func::FuncOp func, int64_t tokens) {
    if (tokens % sp != 0)
      return func.emitError()
             << "the sequence of " << tokens
             << " tokens does not split over sp = " << static_cast<int64_t>(sp)
             << " ranks (Ulysses needs N % sp == 0; weft compile and weft "
                "train pad a model's sequence to a multiple of sp, this step "
                "was built at N)";
    return success();
  }

  /// The generic rewrite: factor shardings from the operands, blocked
  /// factors gathered, replicated operands sliced where a factor is split,
  /// results at their local shapes, reduction factors all-reduced.
  LogicalResult byRule(OpBuilder &b, ShardingRuleOpInterface ruled) {
    Operation *op = ruled.getOperation();
    // The rule of the global op: its split operands shown at their global
    // types while it is read.
    DenseMap<Value, Type> localTypes;
    for (Value v : op->getOperands())
      if (shards.lookup(v) && !localTypes.count(v))
        localTypes[v] = v.getType();
    for (auto [v, type] : localTypes)
      v.setType(cast<RankedTensorType>(type).clone(globalShapeOf(v)));
    OpShardingRule rule = ruled.getShardingRule();
    for (auto [v, type] : localTypes)
      v.setType(type);
    // Which factor each sharded operand splits.
    FactorSplit split;
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      Shard shard = shards.lookup(op->getOperand(i));
      if (!shard)
        continue;
      std::optional<std::pair<int64_t, FactorShard>> found;
      if (i < rule.operandFactors.size())
        found = factorOf(rule, rule.operandFactors[i],
                         globalShapeOf(op->getOperand(i)), shard, parts);
      if (!found || rule.isBlocked(found->first)) {
        // The op needs the operand whole.
        b.setInsertionPoint(op);
        op->setOperand(i, gather(b, op->getOperand(i)));
        continue;
      }
      auto [it, inserted] = split.try_emplace(found->first, found->second);
      if (!inserted && !(it->second == found->second))
        return op->emitError("reads operands split differently along one "
                             "dimension; weft-partition has no reshard for "
                             "that yet");
    }
    // Operands that hold a split factor but arrive whole are sliced; the
    // results take their local shapes.
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      Value operand = op->getOperand(i);
      if (shards.lookup(operand) || i >= rule.operandFactors.size())
        continue;
      Shard want = shardOf(rule, rule.operandFactors[i],
                           typeOf(operand).getShape(), split);
      if (want) {
        b.setInsertionPoint(op);
        op->setOperand(i, slice(b, operand, want));
      }
    }
    // Attributes that name sizes follow the local shapes.
    if (auto cut = dyn_cast<SliceOp>(op))
      localizeSlice(cut);
    bool partial = false;
    for (auto &[f, fs] : split)
      partial |= rule.isReduction(f);
    for (auto [i, result] : llvm::enumerate(op->getResults())) {
      RankedTensorType type = typeOf(result);
      Shard shard =
          shardOf(rule, rule.resultFactors[i], type.getShape(), split);
      if (!shard)
        continue;
      if (shard.size % parts != 0)
        return op->emitError() << "splits a dimension of " << shard.size
                               << " over " << axis << " = " << parts;
      result.setType(type.clone(localShape(type.getShape(), shard)));
      setShard(result, shard, type);
    }
    if (partial) {
      // Each rank holds its blocks' share: a partial result, combined where
      // it is read (a linear's bias and a product's accumulator added once,
      // to the sum).
      if (op->getNumResults() != 1)
        return op->emitError("reduces a split dimension into several results");
      Value result = op->getResult(0);
      partials[result] = rule.reduction;
      auto addToSum = [&](Value addend, auto broadcast) {
        Value total = combine(b, result);
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointAfterValue(total);
        Value sum = b.create<AddOp>(op->getLoc(), total,
                                    broadcast(typeOf(total), addend));
        result.replaceAllUsesExcept(sum, total.getDefiningOp());
        partials.erase(result);
      };
      if (auto linear = dyn_cast<LinearOp>(op); linear && linear.getBias()) {
        Value bias = linear.getBias();
        linear.getBiasMutable().clear();
        addToSum(bias, [&](RankedTensorType type, Value v) -> Value {
          return b.create<BroadcastOp>(
              op->getLoc(), type, v,
              b.getDenseI64ArrayAttr({type.getRank() - 1}));
        });
      }
      if (auto matmul = dyn_cast<MatmulOp>(op); matmul && matmul.getAcc()) {
        Value acc = matmul.getAcc();
        matmul.getAccMutable().clear();
        addToSum(acc, [](RankedTensorType, Value v) { return v; });
      }
    }
    return success();
  }

  //===--------------------------------------------------------------------===//
  // Tensor parallelism
  //===--------------------------------------------------------------------===//

  /// Megatron's split of a Llama-family parameter: dimension 0 (the
  /// outputs) of a column-parallel linear's weight and bias, 1 (the inputs)
  /// of a row-parallel one's weight; nullopt for the replicated rest.
  static std::optional<int64_t> tensorParallelDim(StringRef param) {
    auto [path, kind] = param.rsplit('.');
    StringRef module = path.rsplit('.').second;
    if (llvm::is_contained(
            {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}, module) &&
        (kind == "weight" || kind == "bias"))
      return 0;
    if ((module == "o_proj" || module == "down_proj") && kind == "weight")
      return 1;
    return std::nullopt;
  }

  /// The parameter a weft.state argument belongs to (weft-optimizer's
  /// names: moments, master weights, gradient accumulators).
  static StringRef parameterOf(StringRef state) {
    state.consume_front("grad_acc.");
    for (StringRef suffix : {".exp_avg_sq", ".exp_avg", ".master"})
      if (state.consume_back(suffix))
        break;
    return state;
  }

  /// The strategy of tensor parallelism: heads checked, the column- and
  /// row-parallel weights and their state made this rank's slices.
  LogicalResult splitWeights(func::FuncOp func) {
    for (auto attention : func.getOps<AttentionOp>()) {
      const int64_t heads = typeOf(attention.getQ()).getDimSize(2),
                    kv = typeOf(attention.getK()).getDimSize(2);
      if (heads % parts != 0 || kv % parts != 0)
        return attention.emitError()
               << "has " << heads << " attention heads and " << kv
               << " key/value heads: tensor parallelism needs both multiples "
                  "of tp = "
               << parts << " (each rank takes whole heads)";
    }
    Builder b(func.getContext());
    for (BlockArgument arg : func.getArguments()) {
      const unsigned n = arg.getArgNumber();
      auto name =
          func.getArgAttrOfType<StringAttr>(n, WeftDialect::kParamAttrName);
      const bool param = bool(name);
      if (!name)
        name =
            func.getArgAttrOfType<StringAttr>(n, WeftDialect::kStateAttrName);
      if (!name)
        continue;
      std::optional<int64_t> dim = tensorParallelDim(
          param ? name.getValue() : parameterOf(name.getValue()));
      if (!dim)
        continue;
      RankedTensorType type = typeOf(arg);
      if (*dim >= type.getRank() || type.getDimSize(*dim) % parts != 0)
        return func.emitError()
               << "tensor parallelism splits '" << name.getValue() << "' ("
               << type << ") along dimension " << *dim
               << ", which does not split over tp = " << parts;
      Shard shard{after(type.getShape(), *dim), type.getDimSize(*dim)};
      arg.setType(type.clone(localShape(type.getShape(), shard)));
      setShard(arg, shard, type);
      splitArguments[name] = shard;
      func.setArgAttr(
          n, param ? "weft.param_shard" : "weft.state_shard",
          b.getDictionaryAttr(
              {b.getNamedAttr("elements",
                              b.getI64IntegerAttr(type.getNumElements())),
               b.getNamedAttr("axes", axes),
               b.getNamedAttr("shape", b.getDenseI64ArrayAttr(type.getShape())),
               b.getNamedAttr("dim", b.getI64IntegerAttr(*dim))}));
    }
    return success();
  }

  /// The global gradient norm when some gradients are split: theirs over
  /// the axis (each rank's squares added), the whole ones' apart, joined.
  LogicalResult gradNorm(OpBuilder &b, GradNormOp norm) {
    if (norm.getMesh())
      return norm.emitError("is a norm over a mesh already");
    SmallVector<Value> split, whole;
    for (Value grad : norm.getGrads())
      (shards.lookup(grad) ? split : whole).push_back(grad);
    b.setInsertionPoint(norm);
    Location loc = norm.getLoc();
    Value result =
        b.create<GradNormOp>(loc, split, norm.getGradScaleAttr(), mesh, axes);
    if (!whole.empty()) {
      Value rest = b.create<GradNormOp>(loc, whole, norm.getGradScaleAttr(),
                                        MeshAttr(), ArrayAttr());
      result = b.create<SqrtOp>(
          loc, b.create<AddOp>(loc, b.create<MulOp>(loc, result, result),
                               b.create<MulOp>(loc, rest, rest)));
    }
    norm.replaceAllUsesWith(result);
    norm.erase();
    return success();
  }

  //===--------------------------------------------------------------------===//
  // Ulysses
  //===--------------------------------------------------------------------===//

  /// The head-sharded form of sequence-sharded `v` [b, s/P, heads, d]:
  /// [b, s, heads/P, d] by all-to-all; key/value heads fewer than P are
  /// repeated first (`repeat` times each) so every rank gets whole heads.
  Value toHeads(OpBuilder &b, Value v, int64_t repeat) {
    if (auto it = byHeads.find(v); it != byHeads.end())
      return it->second;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointAfterValue(v);
    Location loc = v.getLoc();
    Value x = v;
    if (repeat > 1) {
      ArrayRef<int64_t> s = typeOf(v).getShape();
      auto wide = typeOf(v).clone({s[0], s[1], s[2], repeat, s[3]});
      x = b.create<BroadcastOp>(loc, wide, v,
                                b.getDenseI64ArrayAttr({0, 1, 2, 4}));
      x = b.create<ReshapeOp>(
          loc, typeOf(v).clone({s[0], s[1], s[2] * repeat, s[3]}), x);
    }
    Value heads = b.create<AllToAllOp>(loc, x, mesh, axes, 2, 1);
    byHeads[v] = heads;
    return heads;
  }

  /// Head-sharded `v` back to sequence-sharded; repeated heads' gradients
  /// summed.
  Value toSequence(OpBuilder &b, Value v, int64_t repeat) {
    Location loc = v.getLoc();
    Value x = b.create<AllToAllOp>(loc, v, mesh, axes, 1, 2);
    if (repeat > 1) {
      ArrayRef<int64_t> s = typeOf(x).getShape();
      x = b.create<ReshapeOp>(
          loc, typeOf(x).clone({s[0], s[1], s[2] / repeat, repeat, s[3]}), x);
      x = b.create<ReduceOp>(loc, ReduceKind::sum, x,
                             b.getDenseI64ArrayAttr({3}), false);
    }
    return x;
  }

  /// Ulysses' legality (REFERENCE.md): heads % P == 0; kv heads % P == 0,
  /// or P % kv heads == 0 and then each kv head repeated P/kv times. The
  /// repeat count, or failure.
  FailureOr<int64_t> headsLegal(Operation *op, Value q, Value k) {
    const int64_t heads = typeOf(q).getDimSize(2), kv = typeOf(k).getDimSize(2),
                  p = sp;
    if (heads % p != 0)
      return op->emitError() << "has " << heads
                             << " attention heads, not a multiple of sp = " << p
                             << " (Ulysses splits heads over sp)";
    if (kv % p == 0)
      return int64_t{1};
    if (p % kv != 0)
      return op->emitError()
             << "has " << kv << " key/value heads and sp = " << p
             << ": Ulysses needs kv % sp == 0 or sp % kv == 0 (each rank "
                "takes whole kv heads, repeated when sp > kv)";
    return p / kv;
  }

  /// Sequence-sharded attention operands as Ulysses wants them, checking
  /// they are split along the sequence (dim 1).
  LogicalResult sequenceSharded(Operation *op, ValueRange values) {
    for (Value v : values) {
      SmallVector<int64_t> g = globalShapeOf(v);
      Shard shard = shards.lookup(v);
      if (g.size() != 4 || shard.stride != g[2] * g[3] || shard.size != g[1])
        return op->emitError("reads a tensor not split along its sequence "
                             "dimension; Ulysses takes [batch, seq/sp, heads, "
                             "dim] operands");
    }
    return success();
  }

  LogicalResult ulysses(OpBuilder &b, AttentionOp attention) {
    if (attention.getMask() || attention.getAlibiSlopes())
      return attention.emitError("has a mask or ALiBi slopes; Ulysses "
                                 "partitions causal and full attention only "
                                 "yet");
    Value q = attention.getQ(), k = attention.getK(), v = attention.getV();
    for (Value x : {q, k, v})
      if (!shards.lookup(x)) {
        b.setInsertionPoint(attention);
        attention->replaceUsesOfWith(x, slice(b, x, sequenceShard(typeOf(x))));
      }
    q = attention.getQ(), k = attention.getK(), v = attention.getV();
    if (failed(sequenceSharded(attention, {q, k, v})))
      return failure();
    FailureOr<int64_t> repeat = headsLegal(attention, q, k);
    if (failed(repeat))
      return failure();
    Value qh = toHeads(b, q, 1), kh = toHeads(b, k, *repeat),
          vh = toHeads(b, v, *repeat);
    b.setInsertionPoint(attention);
    auto local = b.create<AttentionOp>(
        attention.getLoc(), attention.getKindAttr(), qh, kh, vh, Value(),
        Value(), attention.getScaleAttr(), attention.getWindowAttr(),
        attention.getWithLseAttr());
    Value out = toSequence(b, local.getResult(), 1);
    RankedTensorType global = typeOf(attention.getResult());
    setShard(out, sequenceShard(global), global);
    attention.getResult().replaceAllUsesWith(out);
    byHeads[out] = local.getResult();
    // The log-sum-exp stays as each rank computed it, its heads over the
    // whole sequence: what the gradient's local attention reads.
    if (Value lse = attention.getLse()) {
      setShard(local.getLse(), headShard(typeOf(lse)), typeOf(lse));
      lse.replaceAllUsesWith(local.getLse());
    }
    attention.erase();
    return success();
  }

  LogicalResult ulysses(OpBuilder &b, AttentionGradOp grad) {
    if (grad.getMask() || grad.getAlibiSlopes())
      return grad.emitError("has a mask or ALiBi slopes; Ulysses partitions "
                            "causal and full attention only yet");
    SmallVector<Value> in = {grad.getQ(), grad.getK(), grad.getV(),
                             grad.getOut(), grad.getDout()};
    b.setInsertionPoint(grad);
    for (Value &x : in)
      if (!shards.lookup(x))
        x = slice(b, x, sequenceShard(typeOf(x)));
    if (failed(sequenceSharded(grad, in)))
      return failure();
    FailureOr<int64_t> repeat = headsLegal(grad, in[0], in[1]);
    if (failed(repeat))
      return failure();
    Value qh = toHeads(b, in[0], 1), kh = toHeads(b, in[1], *repeat),
          vh = toHeads(b, in[2], *repeat), oh = toHeads(b, in[3], 1),
          dh = toHeads(b, in[4], 1);
    Value lse = grad.getLse();
    if (lse) {
      const Shard heads = headShard(typeOf(lse).clone(globalShapeOf(lse)));
      Shard shard = shards.lookup(lse);
      if (!shard)
        lse = slice(b, lse, heads);
      else if (!(shard == heads))
        return grad.emitError("reads a log-sum-exp not split along its heads; "
                              "Ulysses' attention gives [batch, heads/sp, "
                              "seq]");
    }
    b.setInsertionPoint(grad);
    auto local = b.create<AttentionGradOp>(
        grad.getLoc(), grad.getKindAttr(), qh, kh, vh, oh, dh, lse, Value(),
        Value(), grad.getScaleAttr(), grad.getWindowAttr());
    Value dq = toSequence(b, local.getDq(), 1),
          dk = toSequence(b, local.getDk(), *repeat),
          dv = toSequence(b, local.getDv(), *repeat);
    SmallVector<Value> grads = {dq, dk, dv};
    for (auto [old, now] : llvm::zip(grad->getResults(), grads)) {
      setShard(now, sequenceShard(typeOf(old)), typeOf(old));
      old.replaceAllUsesWith(now);
    }
    grad.erase();
    return success();
  }

  //===--------------------------------------------------------------------===//
  // The loss
  //===--------------------------------------------------------------------===//

  /// A mean (or sum) over split tokens: each rank sums its tokens' losses
  /// and counts its targets; both are summed over sp and divided
  /// (REFERENCE.md: the loss weighted by each rank's non-ignored tokens).
  LogicalResult tokenLoss(OpBuilder &b, CrossEntropyOp loss) {
    Value logits = loss.getLogits(), labels = loss.getLabels();
    Shard shard = shards.lookup(logits);
    if (!shard)
      return loss.emitError("reads split labels but whole logits");
    b.setInsertionPoint(loss);
    // The labels' shard: the logits' without the vocabulary dimension.
    const int64_t vocab = typeOf(logits).getShape().back();
    if (shard.stride % vocab != 0)
      return loss.emitError("has logits split along the vocabulary");
    Shard tokens{shard.stride / vocab, shard.size};
    if (!shards.lookup(labels))
      labels = slice(b, labels, tokens);
    else if (!(shards.lookup(labels) == tokens))
      return loss.emitError("reads labels split unlike its logits");
    Location loc = loss.getLoc();
    auto scalar = RankedTensorType::get({}, b.getF32Type());
    Value sum = b.create<CrossEntropyOp>(
        loc, logits, labels, loss.getIgnoreIndex(), LossReduction::sum);
    Value total = b.create<AllReduceOp>(loc, ReduceKind::sum, sum, mesh, axes);
    Value result = total;
    if (loss.getReduction() == LossReduction::mean) {
      Value count = countLabeledTokens(b, loc, labels, loss.getIgnoreIndex());
      count = b.create<AllReduceOp>(loc, ReduceKind::sum, count, mesh, axes);
      count = b.create<MaxOp>(
          loc, count,
          b.create<ConstantOp>(
              loc, DenseElementsAttr::get(scalar, b.getF32FloatAttr(1.0f))));
      result = b.create<DivOp>(loc, total, count);
    }
    loss.getResult().replaceAllUsesWith(result);
    loss.erase();
    return success();
  }
};
} // namespace
