// weft-form-fusion-groups: elementwise and row-reduction ops into groups.
#include "passes/Schedule/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/Sequence.h"
#include "llvm/ADT/SetVector.h"

namespace weft {
#define GEN_PASS_DEF_FORMFUSIONGROUPS
#include "passes/Schedule/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

bool weft::isRowKernelOp(Operation *op) {
  if (op->getNumResults() != 1 || !isa<CostOpInterface>(op))
    return false;
  if (op->hasTrait<OpTrait::Elementwise>())
    return !isa<IotaOp, BroadcastOp>(op);
  if (isa<RmsNormOp, RmsNormGradOp, LayerNormOp, LayerNormGradOp>(op))
    return true;
  auto lastDim = [](Value x, int64_t dim) {
    return dim == cast<RankedTensorType>(x.getType()).getRank() - 1;
  };
  if (auto softmax = dyn_cast<SoftmaxOp>(op))
    return lastDim(softmax.getX(), softmax.getDim());
  if (auto logSoftmax = dyn_cast<LogSoftmaxOp>(op))
    return lastDim(logSoftmax.getX(), logSoftmax.getDim());
  return false;
}

namespace {
ArrayRef<int64_t> shapeOf(Operation *op) {
  return cast<RankedTensorType>(op->getResult(0).getType()).getShape();
}

struct Group {
  SmallVector<Operation *> ops;
  llvm::SmallPtrSet<Operation *, 8> members;
};

struct FormFusionGroups
    : public weft::impl::FormFusionGroupsBase<FormFusionGroups> {
  /// Each op's place in the block, renumbered when ops move up.
  DenseMap<Operation *, unsigned> position;
  std::vector<Group> groups;
  DenseMap<Operation *, unsigned> groupOf;

  void runOnOperation() override {
    Block &body = getOperation().getBody().front();
    foldRoundings(body);
    position.clear();
    groups.clear();
    groupOf.clear();
    number(body);
    SmallVector<Operation *> ops;
    for (Operation &op : body)
      if (isRowKernelOp(&op))
        ops.push_back(&op);
    for (Operation *op : ops)
      place(op);
    for (Group &group : groups)
      if (!group.ops.empty()) // (emptied by a merge)
        materialize(group);
    // Splat constants and row producers every reader of which now holds a
    // copy (readers first: a broadcast before the constant it reads).
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
      if ((isSplatConstant(&op) || isa<IotaOp, BroadcastOp>(op)) &&
          op.use_empty())
        op.erase();
  }

  void number(Block &body) {
    for (auto [i, op] : llvm::enumerate(body))
      position[&op] = i;
  }

  bool before(Operation *a, Operation *b) {
    return position.lookup(a) < position.lookup(b);
  }

  /// Puts `op` into a group: the group of an operand (or all of them, as
  /// one), a group that ends just before it and reads one of its inputs, or
  /// a group of its own.
  void place(Operation *op) {
    std::optional<unsigned> chosen;
    SmallVector<unsigned> operandGroups; // of op's shape
    for (Value operand : op->getOperands()) {
      Operation *def = operand.getDefiningOp();
      auto it = def ? groupOf.find(def) : groupOf.end();
      if (it == groupOf.end())
        continue;
      Group &group = groups[it->second];
      if (shapeOf(group.ops.front()) != shapeOf(op))
        continue;
      if (!llvm::is_contained(operandGroups, it->second))
        operandGroups.push_back(it->second);
      if (!canJoin(it->second, op))
        continue;
      if (!chosen || before(groups[*chosen].ops.back(), group.ops.back()))
        chosen = it->second;
    }
    // An op reading several groups joins them all where it can and where
    // no group's inputs would outlive what it stops writing (the softmax,
    // the one-hot and the scale of a loss's gradient become one kernel
    // instead of three, two of them writing [tokens, vocab]).
    if (operandGroups.size() > 1 && canJoin(operandGroups, op) &&
        llvm::all_of(operandGroups, [&](unsigned id) {
          return keepsMemory(operandGroups, id, op);
        })) {
      chosen = operandGroups.front();
      for (unsigned id : operandGroups)
        if (before(groups[*chosen].ops.back(), groups[id].ops.back()))
          chosen = id;
      merge(*chosen, operandGroups);
    } else if ((operandGroups.size() > 1 || !chosen) &&
               !operandGroups.empty()) {
      // Else up to the group that ends first, with the others, where that
      // can be done (SwiGLU's gate gradient beside its up gradient); where
      // it can join none, up to one of them, the latest first (a residual
      // add after its norm gradient's weight-sum rows, whose reduction reads
      // the group before the add).
      // (A move that succeeds empties the groups it merges: the fallback
      // orders them only when it failed.)
      std::optional<unsigned> up = hoist(operandGroups, op);
      if (!up && !chosen && operandGroups.size() > 1) {
        llvm::sort(operandGroups, [&](unsigned a, unsigned b) {
          return before(groups[b].ops.back(), groups[a].ops.back());
        });
        for (unsigned id : operandGroups)
          if (!up)
            up = hoist(id, op);
      }
      if (up)
        chosen = up;
    }
    if (!chosen)
      chosen = sibling(op);
    if (!chosen) {
      chosen = groups.size();
      groups.emplace_back();
    }
    groups[*chosen].ops.push_back(op);
    groups[*chosen].members.insert(op);
    groupOf[op] = *chosen;
  }

  /// Joining moves groups `ids` down to `op` as one: no value of theirs may
  /// be used by an op outside them that comes before `op`.
  bool canJoin(ArrayRef<unsigned> ids, Operation *op) {
    auto inside = [&](Operation *user) {
      return llvm::any_of(
          ids, [&](unsigned id) { return groups[id].members.contains(user); });
    };
    for (unsigned id : ids)
      for (Operation *member : groups[id].ops)
        for (Operation *user : member->getUsers())
          if (user != op && !inside(user) && before(user, op))
            return false;
    return true;
  }

  /// Moves the members of groups `ids` into group `into`, in block order.
  void merge(unsigned into, ArrayRef<unsigned> ids) {
    Group &group = groups[into];
    for (unsigned id : ids) {
      if (id == into)
        continue;
      for (Operation *member : groups[id].ops) {
        group.ops.push_back(member);
        group.members.insert(member);
        groupOf[member] = into;
      }
      groups[id] = Group();
    }
    llvm::sort(group.ops,
               [&](Operation *a, Operation *b) { return before(a, b); });
  }

  /// Moves `op` and the groups of `ids` up to just after the one of them
  /// that ends first, as one group there, where every input they read is
  /// ready there and what they then hold longer (their results read
  /// outside, now written earlier) weighs no more than what they free
  /// (inputs read last by them, now dead earlier, and that group's values
  /// read only by them, no longer written). Returns that group.
  std::optional<unsigned> hoist(ArrayRef<unsigned> ids, Operation *op) {
    unsigned first = ids.front();
    for (unsigned id : ids)
      if (before(groups[id].ops.back(), groups[first].ops.back()))
        first = id;
    Operation *last = groups[first].ops.back();
    ArrayRef<int64_t> shape = shapeOf(op);
    llvm::SmallPtrSet<Operation *, 16> moved{op};
    for (unsigned id : ids)
      if (id != first)
        moved.insert(groups[id].ops.begin(), groups[id].ops.end());
    auto merged = [&](Operation *user) {
      return moved.contains(user) || groups[first].members.contains(user);
    };
    auto readyAt = [&](Value value) {
      Operation *def = value.getDefiningOp();
      return !def || !before(last, def);
    };
    int64_t held = 0, freed = 0;
    llvm::SmallPtrSet<Value, 8> inputs;
    for (Operation *member : moved) {
      for (Value operand : member->getOperands()) {
        Operation *def = operand.getDefiningOp();
        if (def && (merged(def) || isSplatConstant(def)))
          continue;
        if (isRowProducer(def, shape)) {
          if (!llvm::all_of(def->getOperands(), readyAt))
            return std::nullopt;
          continue;
        }
        if (!readyAt(operand))
          return std::nullopt;
        if (inputs.insert(operand).second &&
            llvm::none_of(operand.getUsers(), [&](Operation *user) {
              return !merged(user) && before(last, user);
            }))
          freed += tensorBytes(operand.getType());
      }
      for (Value result : member->getResults())
        if (llvm::any_of(result.getUsers(), std::not_fn(merged)))
          held += tensorBytes(result.getType());
    }
    for (Operation *member : groups[first].ops)
      for (Value result : member->getResults())
        if (llvm::all_of(result.getUsers(), merged) &&
            llvm::any_of(result.getUsers(),
                         [&](Operation *user) { return moved.contains(user); }))
          freed += tensorBytes(result.getType());
    if (held > freed)
      return std::nullopt;
    SmallVector<Operation *> order(moved.begin(), moved.end());
    llvm::sort(order, [&](Operation *a, Operation *b) { return before(a, b); });
    Operation *anchor = last->getNextNode();
    for (Operation *member : order)
      if (member == anchor)
        anchor = anchor->getNextNode();
      else
        member->moveBefore(anchor);
    number(*last->getBlock());
    merge(first, ids);
    return first;
  }

  /// A group of `op`'s shape that ends just before it and reads one of its
  /// inputs (a gradient's two products with one upstream gradient): one
  /// kernel reads the shared input once.
  std::optional<unsigned> sibling(Operation *op) {
    Operation *previous = op->getPrevNode();
    auto it = previous ? groupOf.find(previous) : groupOf.end();
    if (it == groupOf.end() ||
        shapeOf(groups[it->second].ops.front()) != shapeOf(op) ||
        !canJoin(it->second, op))
      return std::nullopt;
    for (Value operand : op->getOperands())
      if (!isSplatConstant(operand.getDefiningOp()) &&
          llvm::any_of(operand.getUsers(), [&](Operation *user) {
            return groups[it->second].members.contains(user);
          }))
        return it->second;
    return std::nullopt;
  }

  /// An update whose new weights are converted to bf16 (a bf16 parameter's
  /// copy of its master weights) writes the copy itself (round_to_bf16):
  /// one pass over the weights instead of two, and no kernel of its own.
  static void foldRoundings(Block &body) {
    for (AdamWUpdateOp adamw :
         llvm::make_early_inc_range(body.getOps<AdamWUpdateOp>())) {
      if (adamw.getRoundToBf16())
        continue;
      ConvertOp convert;
      for (Operation *user : adamw.getNewParam().getUsers())
        if (auto c = dyn_cast<ConvertOp>(user);
            c && c.getType().getElementType().isBF16())
          convert = c;
      if (!convert)
        continue;
      OpBuilder b(adamw);
      auto fused = b.create<AdamWUpdateOp>(
          adamw.getLoc(), adamw.getParam(), adamw.getGrad(), adamw.getExpAvg(),
          adamw.getExpAvgSq(), adamw.getLr(), adamw.getStep(),
          adamw.getGradNorm(), adamw.getBeta1Attr(), adamw.getBeta2Attr(),
          adamw.getEpsAttr(), adamw.getWeightDecayAttr(),
          adamw.getMaxGradNormAttr(), adamw.getGradScaleAttr(),
          b.getUnitAttr());
      fused->setDiscardableAttrs(adamw->getDiscardableAttrDictionary());
      adamw->replaceAllUsesWith(fused->getResults().take_front(3));
      convert.replaceAllUsesWith(fused.getRoundedParam());
      convert.erase();
      adamw.erase();
    }
  }

  /// Whether group `id` can move down to `op` inside the groups `ids`
  /// without more memory between: nothing lies there but their members, or
  /// the inputs it would keep alive longer (read by no one else at or after
  /// `op`) weigh no more than its values read outside it, which are then
  /// not written until `op`.
  bool keepsMemory(ArrayRef<unsigned> ids, unsigned id, Operation *op) {
    auto merged = [&](Operation *user) {
      return user == op || llvm::any_of(ids, [&](unsigned other) {
               return groups[other].members.contains(user);
             });
    };
    const Group &group = groups[id];
    bool between = false;
    for (Operation *next = group.ops.back()->getNextNode(); next != op;
         next = next->getNextNode())
      between |= !merged(next) && !isSplatConstant(next);
    if (!between)
      return true;
    int64_t longer = 0, later = 0;
    llvm::SmallPtrSet<Value, 8> inputs;
    for (Operation *member : group.ops) {
      for (Value operand : member->getOperands())
        if (!group.members.contains(operand.getDefiningOp()) &&
            !isSplatConstant(operand.getDefiningOp()) &&
            !isRowProducer(operand.getDefiningOp(), shapeOf(member)) &&
            inputs.insert(operand).second &&
            llvm::none_of(operand.getUsers(), [&](Operation *user) {
              return !group.members.contains(user) &&
                     (merged(user) || !before(user, op));
            }))
          longer += tensorBytes(operand.getType());
      for (Value result : member->getResults())
        if (llvm::any_of(result.getUsers(), [&](Operation *user) {
              return !group.members.contains(user);
            }))
          later += tensorBytes(result.getType());
    }
    return longer <= later;
  }

  /// An iota along the last dimension, a broadcast that only adds the last
  /// dimension (a value per row, such as each token's label), or one of a
  /// vector along the last dimension to every row (a norm's weight in its
  /// backward), of the group's shape: a group computes its own copy (the
  /// column index, its row's element or its column's element of the
  /// broadcast operand) instead of reading a materialised tensor of it.
  static bool isRowProducer(Operation *op, ArrayRef<int64_t> shape) {
    if (!op || op->getNumResults() != 1 || shape.empty() ||
        cast<RankedTensorType>(op->getResult(0).getType()).getShape() != shape)
      return false;
    if (auto iota = dyn_cast<IotaOp>(op))
      return iota.getDim() == static_cast<int64_t>(shape.size()) - 1;
    auto broadcast = dyn_cast<BroadcastOp>(op);
    if (!broadcast)
      return false;
    ArrayRef<int64_t> from = broadcast.getX().getType().getShape();
    if (from == shape.drop_back())
      return llvm::equal(broadcast.getDims(),
                         llvm::seq<int64_t>(0, shape.size() - 1));
    // A column vector; never where it could read as a value per row.
    return shape.size() > 1 && from == shape.take_back() &&
           broadcast.getDims() == ArrayRef<int64_t>{int64_t(shape.size()) - 1};
  }

  /// The value of a constant whose every element is one value, or of a
  /// broadcast of one (an embedding gradient's zeros): a group holds its
  /// own copy (a literal in the kernel) instead of reading a buffer of it.
  static DenseElementsAttr splatOf(Operation *op) {
    if (auto broadcast = dyn_cast_or_null<BroadcastOp>(op)) {
      DenseElementsAttr value = splatOf(broadcast.getX().getDefiningOp());
      return value ? DenseElementsAttr::get(broadcast.getType(),
                                            value.getSplatValue<Attribute>())
                   : nullptr;
    }
    auto constant = dyn_cast_or_null<ConstantOp>(op);
    auto value =
        constant ? dyn_cast<DenseElementsAttr>(constant.getValue()) : nullptr;
    return value && value.isSplat() ? value : nullptr;
  }
  static bool isSplatConstant(Operation *op) { return bool(splatOf(op)); }

  /// Replaces the group's ops by one weft.fusion_group where the last was.
  void materialize(Group &group) {
    llvm::SetVector<Value> inputs;
    SmallVector<Value> yielded;
    SmallVector<Location> locs;
    llvm::SetVector<Operation *> splats, producers;
    for (Operation *op : group.ops) {
      locs.push_back(op->getLoc());
      for (Value operand : op->getOperands())
        if (isSplatConstant(operand.getDefiningOp()))
          splats.insert(operand.getDefiningOp());
        else if (isRowProducer(operand.getDefiningOp(), shapeOf(op))) {
          producers.insert(operand.getDefiningOp());
          for (Value x : operand.getDefiningOp()->getOperands())
            inputs.insert(x);
        } else if (!group.members.contains(operand.getDefiningOp())) {
          inputs.insert(operand);
        }
      for (Value result : op->getResults())
        if (llvm::any_of(result.getUsers(), [&](Operation *user) {
              return !group.members.contains(user);
            }))
          yielded.push_back(result);
    }
    OpBuilder builder(group.ops.back());
    SmallVector<Type> resultTypes;
    for (Value v : yielded)
      resultTypes.push_back(v.getType());
    auto fused = builder.create<FusionGroupOp>(
        group.ops.size() == 1 ? locs.front() : builder.getFusedLoc(locs),
        resultTypes, inputs.getArrayRef());
    Block *block = builder.createBlock(&fused.getBody());
    IRMapping mapping;
    for (Value input : inputs)
      mapping.map(input, block->addArgument(input.getType(), input.getLoc()));
    for (Operation *splat : splats)
      mapping.map(splat->getResult(0),
                  builder.create<ConstantOp>(splat->getLoc(), splatOf(splat))
                      .getResult());
    for (Operation *producer : producers)
      builder.clone(*producer, mapping);
    for (Operation *op : group.ops)
      builder.clone(*op, mapping);
    SmallVector<Value> yieldValues;
    for (Value v : yielded)
      yieldValues.push_back(mapping.lookup(v));
    builder.create<YieldOp>(fused.getLoc(), yieldValues);
    for (auto [value, result] : llvm::zip(yielded, fused.getResults()))
      value.replaceUsesWithIf(result, [&](OpOperand &use) {
        return !group.members.contains(use.getOwner());
      });
    for (Operation *op : llvm::reverse(group.ops))
      op->erase();
  }
};
} // namespace
