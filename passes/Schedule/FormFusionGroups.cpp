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
  if (isa<RmsNormOp, LayerNormOp>(op))
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
  void runOnOperation() override {
    Block &body = getOperation().getBody().front();
    DenseMap<Operation *, unsigned> position;
    for (auto [i, op] : llvm::enumerate(body))
      position[&op] = i;

    std::vector<Group> groups;
    DenseMap<Operation *, unsigned> groupOf;
    // Joining moves the group down to `op`: no value of the group may be
    // used by an op outside it that comes before `op`.
    auto canJoin = [&](const Group &group, Operation *op) {
      for (Operation *member : group.ops)
        for (Operation *user : member->getUsers())
          if (user != op && !group.members.contains(user) &&
              position[user] < position[op])
            return false;
      return true;
    };
    for (Operation &op : body) {
      if (!isRowKernelOp(&op))
        continue;
      std::optional<unsigned> chosen;
      for (Value operand : op.getOperands()) {
        Operation *def = operand.getDefiningOp();
        auto it = def ? groupOf.find(def) : groupOf.end();
        if (it == groupOf.end())
          continue;
        Group &group = groups[it->second];
        if (shapeOf(group.ops.front()) != shapeOf(&op) || !canJoin(group, &op))
          continue;
        if (!chosen ||
            position[groups[*chosen].ops.back()] < position[group.ops.back()])
          chosen = it->second;
      }
      if (!chosen) {
        chosen = groups.size();
        groups.emplace_back();
      }
      groups[*chosen].ops.push_back(&op);
      groups[*chosen].members.insert(&op);
      groupOf[&op] = *chosen;
    }
    for (Group &group : groups)
      materialize(group);
    // Splat constants and row producers every reader of which now holds a
    // copy.
    for (Operation &op : llvm::make_early_inc_range(body))
      if ((isSplatConstant(&op) || isa<IotaOp, BroadcastOp>(op)) &&
          op.use_empty())
        op.erase();
  }

  /// An iota along the last dimension, or a broadcast that only adds the
  /// last dimension (a value per row, such as each token's label), of the
  /// group's shape: a group computes its own copy (the column index, or its
  /// row's element of the broadcast operand) instead of reading a
  /// materialised tensor of it.
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
    return from == shape.drop_back() &&
           llvm::equal(broadcast.getDims(),
                       llvm::seq<int64_t>(0, shape.size() - 1));
  }

  /// A constant whose every element is one value: a group holds its own
  /// copy (a literal in the kernel) instead of reading a buffer of it.
  static bool isSplatConstant(Operation *op) {
    auto constant = dyn_cast_or_null<ConstantOp>(op);
    auto value =
        constant ? dyn_cast<DenseElementsAttr>(constant.getValue()) : nullptr;
    return value && value.isSplat();
  }

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
      builder.clone(*splat, mapping);
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
