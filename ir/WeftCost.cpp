// CostOpInterface for every weft op, following the counting rules written in
// the interface's description (ir/WeftInterfaces.td).
#include "ir/WeftDialect.h"

using namespace mlir;
using namespace weft;

namespace {
constexpr int64_t kDynamic = ShapedType::kDynamic;

int64_t numElements(Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return tensor.hasStaticShape() ? tensor.getNumElements() : kDynamic;
}

int64_t bytesOf(Type type) { return tensorBytes(type); }

bool allStatic(Operation *op) {
  auto isStatic = [](Type t) {
    auto tensor = dyn_cast<RankedTensorType>(t);
    return !tensor || tensor.hasStaticShape();
  };
  return llvm::all_of(op->getOperandTypes(), isStatic) &&
         llvm::all_of(op->getResultTypes(), isStatic);
}

/// Every operand read once and every result written once.
int64_t operandAndResultBytes(Operation *op) {
  int64_t bytes = 0;
  for (Type t : op->getOperandTypes())
    bytes += bytesOf(t);
  for (Type t : op->getResultTypes())
    bytes += bytesOf(t);
  return bytes;
}

/// `flopsPerElement` per element of `countedType`, streaming memory traffic.
OpCost streamingCost(Operation *op, int64_t flopsPerElement, Type countedType) {
  if (!allStatic(op))
    return OpCost::unknown();
  OpCost cost;
  cost.flops = flopsPerElement * numElements(countedType);
  cost.memoryBytes = operandAndResultBytes(op);
  return cost;
}

/// Ring-algorithm bytes sent by one rank of a group of `group` ranks moving
/// `bytes` in total: (P − 1)/P of them.
int64_t ringBytes(int64_t bytes, int64_t group) {
  return bytes * (group - 1) / group;
}
} // namespace

// Elementwise ops: 1 flop per result element.
#define WEFT_ELEMENTWISE_COST(OpT)                                             \
  OpCost OpT::getCost() { return streamingCost(*this, 1, getType()); }
WEFT_ELEMENTWISE_COST(AddOp)
WEFT_ELEMENTWISE_COST(SubOp)
WEFT_ELEMENTWISE_COST(MulOp)
WEFT_ELEMENTWISE_COST(DivOp)
WEFT_ELEMENTWISE_COST(MaxOp)
WEFT_ELEMENTWISE_COST(MinOp)
WEFT_ELEMENTWISE_COST(PowOp)
WEFT_ELEMENTWISE_COST(NegOp)
WEFT_ELEMENTWISE_COST(AbsOp)
WEFT_ELEMENTWISE_COST(ExpOp)
WEFT_ELEMENTWISE_COST(LogOp)
WEFT_ELEMENTWISE_COST(TanhOp)
WEFT_ELEMENTWISE_COST(SigmoidOp)
WEFT_ELEMENTWISE_COST(SiluOp)
WEFT_ELEMENTWISE_COST(RsqrtOp)
WEFT_ELEMENTWISE_COST(SqrtOp)
WEFT_ELEMENTWISE_COST(ErfOp)
WEFT_ELEMENTWISE_COST(CosOp)
WEFT_ELEMENTWISE_COST(SinOp)
WEFT_ELEMENTWISE_COST(FloorOp)
WEFT_ELEMENTWISE_COST(CeilOp)
WEFT_ELEMENTWISE_COST(GeluOp)
WEFT_ELEMENTWISE_COST(CompareOp)
WEFT_ELEMENTWISE_COST(SelectOp)
WEFT_ELEMENTWISE_COST(ConvertOp)
#undef WEFT_ELEMENTWISE_COST

OpCost MatmulOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  RankedTensorType lhs = getLhs().getType();
  int64_t k = lhs.getDimSize(lhs.getRank() - (getTransposeLhs() ? 2 : 1));
  OpCost cost;
  cost.flops =
      2 * numElements(getType()) * k + (getAcc() ? numElements(getType()) : 0);
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost LinearOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  int64_t in = getWeight().getType().getDimSize(1);
  int64_t outputs = numElements(getType());
  OpCost cost;
  cost.flops = 2 * outputs * in + (getBias() ? outputs : 0);
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost ReduceOp::getCost() { return streamingCost(*this, 1, getX().getType()); }
OpCost SoftmaxOp::getCost() { return streamingCost(*this, 5, getType()); }
OpCost LogSoftmaxOp::getCost() { return streamingCost(*this, 5, getType()); }
OpCost RmsNormOp::getCost() { return streamingCost(*this, 4, getType()); }
OpCost RmsNormGradOp::getCost() { return streamingCost(*this, 9, getType()); }
OpCost LayerNormGradOp::getCost() {
  return streamingCost(*this, 14, getType());
}
OpCost LayerNormOp::getCost() { return streamingCost(*this, 7, getType()); }
OpCost RopeOp::getCost() { return streamingCost(*this, 3, getType()); }
OpCost BroadcastOp::getCost() { return streamingCost(*this, 0, getType()); }
OpCost TransposeOp::getCost() { return streamingCost(*this, 0, getType()); }
OpCost ConcatOp::getCost() { return streamingCost(*this, 0, getType()); }
OpCost ScatterAddOp::getCost() {
  return streamingCost(*this, 1, getUpdates().getType());
}

OpCost ReshapeOp::getCost() {
  return allStatic(*this) ? OpCost() : OpCost::unknown();
}

OpCost SliceOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = 2 * bytesOf(getType());
  return cost;
}

OpCost GatherOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = 2 * bytesOf(getType()) + bytesOf(getIndices().getType());
  return cost;
}

OpCost IotaOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = bytesOf(getType());
  return cost;
}

OpCost ConstantOp::getCost() {
  OpCost cost;
  cost.memoryBytes = bytesOf(getType());
  return cost;
}

OpCost AttentionOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  RankedTensorType q = getQ().getType();
  int64_t batch = q.getDimSize(0), heads = q.getDimSize(2);
  int64_t dqk = q.getDimSize(3), dv = getV().getType().getDimSize(3);
  OpCost cost;
  cost.flops = batch * heads * getNumAttendingPairs() * (2 * dqk + 2 * dv);
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost AttentionGradOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  RankedTensorType q = getQ().getType();
  int64_t batch = q.getDimSize(0), heads = q.getDimSize(2);
  int64_t dqk = q.getDimSize(3), dv = getV().getType().getDimSize(3);
  // Per pair: the score again (2·dqk), dout·v (2·dv), dv (2·dv), dq and dk
  // (2·dqk each).
  OpCost cost;
  cost.flops = batch * heads * getNumAttendingPairs() * (6 * dqk + 4 * dv);
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost CrossEntropyOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.flops = 5 * numElements(getLogits().getType()) +
               numElements(getLabels().getType());
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost MoeGateOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  // Softmax (about 5 per logit) and a top-k scan per token.
  cost.flops = 6 * numElements(getLogits().getType());
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost MoeDispatchOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes =
      operandAndResultBytes(*this) + bytesOf(getRows().getType());
  return cost;
}

OpCost GroupedLinearOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  RankedTensorType x = getX().getType();
  cost.flops = 2 * numElements(x) * getType().getDimSize(1);
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost MoeCombineOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.flops = 2 * numElements(getRows().getType());
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost GradNormOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  for (Value grad : getGrads())
    cost.flops += 2 * numElements(grad.getType());
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost AdamWUpdateOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  // Decay, two moments, the bias-corrected step: about 14 per element.
  cost.flops = 14 * numElements(getParam().getType());
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}

OpCost AllGatherOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = operandAndResultBytes(*this);
  cost.commBytes = ringBytes(bytesOf(getType()), getGroupSize());
  return cost;
}

OpCost ReduceScatterOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  int64_t group = getGroupSize();
  OpCost cost;
  cost.flops = numElements(getX().getType()) * (group - 1) / group;
  cost.memoryBytes = operandAndResultBytes(*this);
  cost.commBytes = ringBytes(bytesOf(getX().getType()), group);
  return cost;
}

OpCost AllSliceOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = 2 * bytesOf(getType());
  return cost;
}

OpCost AllReduceOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  int64_t group = getGroupSize();
  OpCost cost;
  cost.flops = numElements(getX().getType()) * (group - 1) / group;
  cost.memoryBytes = operandAndResultBytes(*this);
  cost.commBytes = 2 * ringBytes(bytesOf(getX().getType()), group);
  return cost;
}

OpCost AllToAllOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = operandAndResultBytes(*this);
  cost.commBytes = ringBytes(bytesOf(getX().getType()), getGroupSize());
  return cost;
}

OpCost SendOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = bytesOf(getX().getType());
  cost.commBytes = bytesOf(getX().getType());
  return cost;
}

OpCost RecvOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = bytesOf(getType());
  return cost;
}

OpCost CollectiveBroadcastOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.memoryBytes = operandAndResultBytes(*this);
  cost.commBytes = bytesOf(getX().getType());
  return cost;
}

OpCost QuantizeBlockwiseOp::getCost() {
  return streamingCost(*this, 3, getX().getType());
}

OpCost DequantizeBlockwiseOp::getCost() {
  return streamingCost(*this, 1, getType());
}

OpCost OffloadOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.transferBytes = bytesOf(getX().getType());
  return cost;
}

OpCost ReloadOp::getCost() {
  if (!allStatic(*this))
    return OpCost::unknown();
  OpCost cost;
  cost.transferBytes = bytesOf(getType());
  return cost;
}

OpCost FusionGroupOp::getCost() {
  // The ops inside compute; only the group's inputs and results touch memory.
  OpCost cost;
  getBody().walk([&](CostOpInterface op) { cost.flops += op.getCost().flops; });
  if (!allStatic(*this))
    return OpCost::unknown();
  cost.memoryBytes = operandAndResultBytes(*this);
  return cost;
}
