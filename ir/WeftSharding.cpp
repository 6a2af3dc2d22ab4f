// ShardingRuleOpInterface for every weft op (ir/WeftInterfaces.td): which
// factors of its iteration space each dimension is made of, which factors
// it needs whole, and how partial results of a reduction factor combine.
#include "ir/WeftDialect.h"

using namespace mlir;
using namespace weft;

bool OpShardingRule::isReduction(int64_t factor) const {
  for (const auto &dims : resultFactors)
    for (const auto &factors : dims)
      if (llvm::is_contained(factors, factor))
        return false;
  return true;
}

namespace {
using DimFactors = SmallVector<SmallVector<int64_t, 1>>;

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// One new factor per dimension of `type` (none for a dimension of size 1,
/// which has nothing to split).
DimFactors newFactors(OpShardingRule &rule, RankedTensorType type,
                      bool blocked = false) {
  DimFactors dims;
  for (int64_t size : type.getShape()) {
    dims.emplace_back();
    if (size != 1)
      dims.back().push_back(rule.addFactor(size, blocked));
  }
  return dims;
}

/// `like`'s factors for a tensor of `type` with the same rank, dimension by
/// dimension where the sizes agree.
DimFactors sameFactors(const OpShardingRule &rule, const DimFactors &like,
                       RankedTensorType type) {
  DimFactors dims;
  for (auto [d, size] : llvm::enumerate(type.getShape())) {
    dims.emplace_back();
    if (d < like.size() && like[d].size() == 1 &&
        rule.factorSizes[like[d][0]] == size)
      dims.back() = like[d];
  }
  return dims;
}

/// Every dimension of the result(s) a factor of its own, every operand's
/// factor the result's of the same index: elementwise ops.
OpShardingRule elementwiseRule(Operation *op) {
  OpShardingRule rule;
  DimFactors result = newFactors(rule, typeOf(op->getResult(0)));
  for (Value operand : op->getOperands())
    rule.operandFactors.push_back(sameFactors(rule, result, typeOf(operand)));
  rule.resultFactors.push_back(result);
  return rule;
}

/// Nothing splits: every operand factor blocked, results replicated.
OpShardingRule wholeRule(Operation *op) {
  OpShardingRule rule;
  for (Value operand : op->getOperands())
    rule.operandFactors.push_back(
        newFactors(rule, typeOf(operand), /*blocked=*/true));
  for (Value result : op->getResults())
    rule.resultFactors.push_back(newFactors(rule, typeOf(result)));
  return rule;
}

/// The x-like rows of a norm: all dimensions but the last shared, the last
/// (the features) blocked; `perFeature` operands (weight, bias) have it.
OpShardingRule normRule(Operation *op, Value x, ValueRange perFeature) {
  OpShardingRule rule;
  RankedTensorType type = typeOf(x);
  DimFactors dims = newFactors(rule, type);
  if (!dims.back().empty())
    rule.blockedFactors.push_back(dims.back()[0]);
  rule.operandFactors.push_back(dims);
  for (Value v : perFeature)
    if (v)
      rule.operandFactors.push_back({dims.back()});
  rule.resultFactors.push_back(dims);
  return rule;
}

/// A norm's gradient (x, weight, grad): the norm's rule, grad split as x.
OpShardingRule normGradRule(Operation *op, Value x, Value weight) {
  OpShardingRule rule = normRule(op, x, weight);
  rule.operandFactors.push_back(rule.operandFactors.front());
  return rule;
}
} // namespace

#define WEFT_ELEMENTWISE_SHARDING(OpT)                                         \
  OpShardingRule OpT::getShardingRule() { return elementwiseRule(*this); }
WEFT_ELEMENTWISE_SHARDING(AddOp)
WEFT_ELEMENTWISE_SHARDING(SubOp)
WEFT_ELEMENTWISE_SHARDING(MulOp)
WEFT_ELEMENTWISE_SHARDING(DivOp)
WEFT_ELEMENTWISE_SHARDING(MaxOp)
WEFT_ELEMENTWISE_SHARDING(MinOp)
WEFT_ELEMENTWISE_SHARDING(PowOp)
WEFT_ELEMENTWISE_SHARDING(NegOp)
WEFT_ELEMENTWISE_SHARDING(AbsOp)
WEFT_ELEMENTWISE_SHARDING(ExpOp)
WEFT_ELEMENTWISE_SHARDING(LogOp)
WEFT_ELEMENTWISE_SHARDING(TanhOp)
WEFT_ELEMENTWISE_SHARDING(SigmoidOp)
WEFT_ELEMENTWISE_SHARDING(SiluOp)
WEFT_ELEMENTWISE_SHARDING(RsqrtOp)
WEFT_ELEMENTWISE_SHARDING(SqrtOp)
WEFT_ELEMENTWISE_SHARDING(ErfOp)
WEFT_ELEMENTWISE_SHARDING(CosOp)
WEFT_ELEMENTWISE_SHARDING(SinOp)
WEFT_ELEMENTWISE_SHARDING(FloorOp)
WEFT_ELEMENTWISE_SHARDING(CeilOp)
WEFT_ELEMENTWISE_SHARDING(GeluOp)
WEFT_ELEMENTWISE_SHARDING(CompareOp)
WEFT_ELEMENTWISE_SHARDING(SelectOp)
WEFT_ELEMENTWISE_SHARDING(ConvertOp)
WEFT_ELEMENTWISE_SHARDING(DequantizeBlockwiseOp)
#undef WEFT_ELEMENTWISE_SHARDING

// Ops with no partitionable dimension yet: MoE routing and grouped products
// (expert parallelism shards them by the expert dimension later), the
// global norm (weft-partition adds split gradients' squares over their axis
// itself; ZeRO its blocks'), collectives and transfers
// (already per rank), quantization (its blocks are flat).
#define WEFT_WHOLE_SHARDING(OpT)                                               \
  OpShardingRule OpT::getShardingRule() { return wholeRule(*this); }
WEFT_WHOLE_SHARDING(MoeGateOp)
WEFT_WHOLE_SHARDING(MoeDispatchOp)
WEFT_WHOLE_SHARDING(GroupedLinearOp)
WEFT_WHOLE_SHARDING(MoeCombineOp)
WEFT_WHOLE_SHARDING(GradNormOp)
WEFT_WHOLE_SHARDING(AllGatherOp)
WEFT_WHOLE_SHARDING(ReduceScatterOp)
WEFT_WHOLE_SHARDING(AllReduceOp)
WEFT_WHOLE_SHARDING(AllSliceOp)
WEFT_WHOLE_SHARDING(AllToAllOp)
WEFT_WHOLE_SHARDING(SendOp)
WEFT_WHOLE_SHARDING(RecvOp)
WEFT_WHOLE_SHARDING(CollectiveBroadcastOp)
WEFT_WHOLE_SHARDING(QuantizeBlockwiseOp)
WEFT_WHOLE_SHARDING(OffloadOp)
WEFT_WHOLE_SHARDING(ReloadOp)
#undef WEFT_WHOLE_SHARDING

OpShardingRule AdamWUpdateOp::getShardingRule() {
  // The weights, gradient and moments elementwise (a tensor-parallel slice
  // updates as such); the learning rate, step and norm are scalars.
  OpShardingRule rule;
  DimFactors dims = newFactors(rule, typeOf(getParam()));
  for (Value operand : getOperands())
    rule.operandFactors.push_back(sameFactors(rule, dims, typeOf(operand)));
  rule.resultFactors.assign(getNumResults(), dims);
  return rule;
}

OpShardingRule MatmulOp::getShardingRule() {
  // lhs [b..., m, k] (transposed: [b..., k, m]), rhs [b..., k, n]
  // (transposed: [b..., n, k]) or rank 2, acc [b..., m, n] → [b..., m, n];
  // k is reduced (weft-partition adds acc to the combined sum).
  OpShardingRule rule;
  RankedTensorType lhs = typeOf(getLhs()), rhs = typeOf(getRhs());
  const int64_t rank = lhs.getRank();
  DimFactors batch;
  for (int64_t d = 0; d + 2 < rank; ++d)
    batch.push_back(
        lhs.getDimSize(d) == 1
            ? SmallVector<int64_t, 1>{}
            : SmallVector<int64_t, 1>{rule.addFactor(lhs.getDimSize(d))});
  auto factorOf = [&](int64_t size) -> SmallVector<int64_t, 1> {
    if (size == 1)
      return {};
    return {rule.addFactor(size)};
  };
  auto m = factorOf(lhs.getDimSize(rank - (getTransposeLhs() ? 1 : 2)));
  auto k = factorOf(lhs.getDimSize(rank - (getTransposeLhs() ? 2 : 1)));
  auto n =
      factorOf(rhs.getDimSize(rhs.getRank() - (getTransposeRhs() ? 2 : 1)));
  DimFactors l = batch, r, out = batch;
  if (rhs.getRank() == rank)
    r = batch;
  l.append(getTransposeLhs() ? DimFactors{k, m} : DimFactors{m, k});
  r.append(getTransposeRhs() ? DimFactors{n, k} : DimFactors{k, n});
  out.append({m, n});
  rule.operandFactors = {l, r};
  if (getAcc())
    rule.operandFactors.push_back(out);
  rule.resultFactors = {out};
  return rule;
}

OpShardingRule LinearOp::getShardingRule() {
  // x [..., k], weight [o, k], bias [o] → [..., o]; k is reduced.
  OpShardingRule rule;
  RankedTensorType x = typeOf(getX());
  DimFactors rows = newFactors(rule, x);
  SmallVector<int64_t, 1> k = rows.back();
  rows.pop_back();
  const int64_t outputs = typeOf(getWeight()).getDimSize(0);
  SmallVector<int64_t, 1> o;
  if (outputs != 1)
    o.push_back(rule.addFactor(outputs));
  DimFactors in = rows, out = rows;
  in.push_back(k);
  out.push_back(o);
  rule.operandFactors = {in, {o, k}};
  if (getBias())
    rule.operandFactors.push_back({o});
  rule.resultFactors = {out};
  return rule;
}

OpShardingRule ReduceOp::getShardingRule() {
  OpShardingRule rule;
  DimFactors x = newFactors(rule, typeOf(getX())), result;
  for (auto [d, factors] : llvm::enumerate(x)) {
    const bool reduced = llvm::is_contained(getDims(), static_cast<int64_t>(d));
    if (!reduced)
      result.push_back(factors);
    else if (getKeepDims())
      result.emplace_back();
  }
  rule.operandFactors = {x};
  rule.resultFactors = {result};
  rule.reduction = getKind();
  return rule;
}

namespace {
/// Softmax-like ops: elementwise with `dim` whole.
OpShardingRule rowRule(Operation *op, int64_t dim) {
  OpShardingRule rule = elementwiseRule(op);
  const auto &factors = rule.resultFactors[0][dim];
  rule.blockedFactors.append(factors.begin(), factors.end());
  return rule;
}
} // namespace

OpShardingRule SoftmaxOp::getShardingRule() { return rowRule(*this, getDim()); }
OpShardingRule LogSoftmaxOp::getShardingRule() {
  return rowRule(*this, getDim());
}

OpShardingRule ReshapeOp::getShardingRule() {
  // Runs of dimensions with equal products correspond: one dimension
  // against several is split into their factors; several against several
  // (a regrouping) is one blocked factor per operand dimension, the result's
  // left replicated.
  OpShardingRule rule;
  ArrayRef<int64_t> in = typeOf(getX()).getShape(),
                    out = typeOf(getResult()).getShape();
  DimFactors x(in.size()), y(out.size());
  size_t i = 0, j = 0;
  while (i < in.size() || j < out.size()) {
    // Size-1 dimensions belong to no factor.
    if (i < in.size() && in[i] == 1) {
      ++i;
      continue;
    }
    if (j < out.size() && out[j] == 1) {
      ++j;
      continue;
    }
    if (i == in.size() || j == out.size())
      break;
    size_t i1 = i + 1, j1 = j + 1;
    int64_t a = in[i], b = out[j];
    while (a != b && (a < b ? i1 < in.size() : j1 < out.size())) {
      if (a < b)
        a *= in[i1++];
      else
        b *= out[j1++];
    }
    if (a != b) { // the shapes' products differ: an invalid reshape
      for (size_t ii = i; ii < in.size(); ++ii)
        if (in[ii] != 1)
          x[ii].push_back(rule.addFactor(in[ii], /*blocked=*/true));
      break;
    }
    if (i1 - i == 1) { // one operand dimension: the result's factors
      for (size_t jj = j; jj < j1; ++jj)
        if (out[jj] != 1) {
          int64_t f = rule.addFactor(out[jj]);
          x[i].push_back(f);
          y[jj].push_back(f);
        }
    } else if (j1 - j == 1) { // one result dimension: the operand's
      for (size_t ii = i; ii < i1; ++ii)
        if (in[ii] != 1) {
          int64_t f = rule.addFactor(in[ii]);
          x[ii].push_back(f);
          y[j].push_back(f);
        }
    } else {
      for (size_t ii = i; ii < i1; ++ii)
        if (in[ii] != 1)
          x[ii].push_back(rule.addFactor(in[ii], /*blocked=*/true));
    }
    i = i1;
    j = j1;
  }
  rule.operandFactors = {x};
  rule.resultFactors = {y};
  return rule;
}

OpShardingRule TransposeOp::getShardingRule() {
  OpShardingRule rule;
  DimFactors x = newFactors(rule, typeOf(getX())), y;
  for (int64_t from : getPermutation())
    y.push_back(x[from]);
  rule.operandFactors = {x};
  rule.resultFactors = {y};
  return rule;
}

OpShardingRule SliceOp::getShardingRule() {
  // Dimensions taken whole are shared; a cut one is blocked in the operand
  // and the result's own.
  OpShardingRule rule;
  RankedTensorType x = typeOf(getX()), y = typeOf(getResult());
  DimFactors in, out;
  for (int64_t d = 0; d < x.getRank(); ++d) {
    in.emplace_back();
    out.emplace_back();
    const bool whole = getStart()[d] == 0 && getStride()[d] == 1 &&
                       y.getDimSize(d) == x.getDimSize(d);
    if (whole && x.getDimSize(d) != 1) {
      int64_t f = rule.addFactor(x.getDimSize(d));
      in.back().push_back(f);
      out.back().push_back(f);
    } else if (!whole) {
      if (x.getDimSize(d) != 1)
        in.back().push_back(rule.addFactor(x.getDimSize(d), true));
      if (y.getDimSize(d) != 1)
        out.back().push_back(rule.addFactor(y.getDimSize(d)));
    }
  }
  rule.operandFactors = {in};
  rule.resultFactors = {out};
  return rule;
}

OpShardingRule ConcatOp::getShardingRule() {
  OpShardingRule rule;
  RankedTensorType y = typeOf(getResult());
  const int64_t dim = getDim();
  DimFactors out = newFactors(rule, y);
  out[dim].clear();
  if (y.getDimSize(dim) != 1)
    out[dim].push_back(rule.addFactor(y.getDimSize(dim)));
  for (Value input : getInputs()) {
    DimFactors in = sameFactors(rule, out, typeOf(input));
    in[dim].clear();
    if (typeOf(input).getDimSize(dim) != 1)
      in[dim].push_back(rule.addFactor(typeOf(input).getDimSize(dim), true));
    rule.operandFactors.push_back(in);
  }
  rule.resultFactors = {out};
  return rule;
}

OpShardingRule BroadcastOp::getShardingRule() {
  OpShardingRule rule;
  RankedTensorType x = typeOf(getX()), y = typeOf(getResult());
  DimFactors out = newFactors(rule, y), in(x.getRank());
  for (auto [j, d] : llvm::enumerate(getDims()))
    if (x.getDimSize(j) == y.getDimSize(d))
      in[j] = out[d];
  rule.operandFactors = {in};
  rule.resultFactors = {out};
  return rule;
}

OpShardingRule GatherOp::getShardingRule() {
  // table [t..., V, u...] at `axis`, indices [i...] → [t..., i..., u...]:
  // the indexed dimension is whole.
  OpShardingRule rule;
  RankedTensorType table = typeOf(getTable()), indices = typeOf(getIndices());
  const int64_t axis = getAxis();
  DimFactors t = newFactors(rule, table), i = newFactors(rule, indices), out;
  if (!t[axis].empty())
    rule.blockedFactors.push_back(t[axis][0]);
  out.append(t.begin(), t.begin() + axis);
  out.append(i.begin(), i.end());
  out.append(t.begin() + axis + 1, t.end());
  rule.operandFactors = {t, i};
  rule.resultFactors = {out};
  return rule;
}

OpShardingRule ScatterAddOp::getShardingRule() {
  // base [b..., V, c...], indices [i...], updates [b..., i..., c...] →
  // base's shape: the indices' factors are summed over, the indexed
  // dimension is whole.
  OpShardingRule rule;
  RankedTensorType base = typeOf(getBase()), indices = typeOf(getIndices());
  const int64_t axis = getAxis();
  DimFactors b = newFactors(rule, base), i = newFactors(rule, indices), u;
  if (!b[axis].empty())
    rule.blockedFactors.push_back(b[axis][0]);
  u.append(b.begin(), b.begin() + axis);
  u.append(i.begin(), i.end());
  u.append(b.begin() + axis + 1, b.end());
  rule.operandFactors = {b, i, u};
  rule.resultFactors = {b};
  return rule;
}

OpShardingRule IotaOp::getShardingRule() {
  // Counting along `dim` needs the whole of it (a rank's block would start
  // at its offset).
  OpShardingRule rule;
  DimFactors out = newFactors(rule, typeOf(getResult()));
  rule.blockedFactors.append(out[getDim()].begin(), out[getDim()].end());
  rule.resultFactors = {out};
  return rule;
}

OpShardingRule ConstantOp::getShardingRule() {
  // A splat is the same on every block; other values are whole.
  OpShardingRule rule;
  auto dense = dyn_cast<DenseElementsAttr>(getValue());
  rule.resultFactors = {newFactors(rule, typeOf(getResult()),
                                   /*blocked=*/!dense || !dense.isSplat())};
  return rule;
}

OpShardingRule RmsNormOp::getShardingRule() {
  return normRule(*this, getX(), getWeight());
}

OpShardingRule RmsNormGradOp::getShardingRule() {
  return normGradRule(*this, getX(), getWeight());
}

OpShardingRule LayerNormGradOp::getShardingRule() {
  return normGradRule(*this, getX(), getWeight());
}

OpShardingRule LayerNormOp::getShardingRule() {
  return normRule(*this, getX(), {getWeight(), getBias()});
}

OpShardingRule RopeOp::getShardingRule() {
  // x [b, s, h, d], positions [b, s]: the rotary pairs (d) are whole.
  OpShardingRule rule;
  DimFactors x = newFactors(rule, typeOf(getX()));
  if (!x.back().empty())
    rule.blockedFactors.push_back(x.back()[0]);
  rule.operandFactors = {x, sameFactors(rule, x, typeOf(getPositions()))};
  rule.resultFactors = {x};
  return rule;
}

namespace {
/// Attention's factors: q [b, sq, h, d], k [b, skv, kv, d], v [b, skv, kv,
/// dv], out [b, sq, h, dv]. The heads of q are [kv, h/kv] (a query head reads
/// key/value head h / (h/kv)), so sharding heads shards the kv factor; the
/// sequences and the head dimensions are whole. The mask's dimensions are
/// blocked; the ALiBi slopes [h] follow the heads.
struct AttentionFactors {
  OpShardingRule rule;
  DimFactors q, k, v, out, lse; // lse [b, h, sq]
};

AttentionFactors attentionFactors(Value q, Value k, Value v) {
  AttentionFactors a;
  OpShardingRule &rule = a.rule;
  ArrayRef<int64_t> qs = typeOf(q).getShape(), ks = typeOf(k).getShape(),
                    vs = typeOf(v).getShape();
  auto factor = [&](int64_t size, bool blocked) -> SmallVector<int64_t, 1> {
    if (size == 1)
      return {};
    return {rule.addFactor(size, blocked)};
  };
  auto b = factor(qs[0], false), sq = factor(qs[1], true),
       skv = factor(ks[1], true), kv = factor(ks[2], false),
       group = factor(qs[2] / ks[2], false), d = factor(qs[3], true),
       dv = factor(vs[3], true);
  SmallVector<int64_t, 1> heads = kv;
  heads.append(group.begin(), group.end());
  a.q = {b, sq, heads, d};
  a.k = {b, skv, kv, d};
  a.v = {b, skv, kv, dv};
  a.out = {b, sq, heads, dv};
  a.lse = {b, heads, sq};
  return a;
}

void addMaskAndSlopes(AttentionFactors &a, Value mask, Value slopes) {
  if (mask)
    a.rule.operandFactors.push_back(
        newFactors(a.rule, typeOf(mask), /*blocked=*/true));
  if (slopes)
    a.rule.operandFactors.push_back({a.q[2]});
}
} // namespace

OpShardingRule AttentionOp::getShardingRule() {
  AttentionFactors a = attentionFactors(getQ(), getK(), getV());
  a.rule.operandFactors = {a.q, a.k, a.v};
  addMaskAndSlopes(a, getMask(), getAlibiSlopes());
  a.rule.resultFactors = {a.out};
  if (getLse())
    a.rule.resultFactors.push_back(a.lse);
  return a.rule;
}

OpShardingRule AttentionGradOp::getShardingRule() {
  AttentionFactors a = attentionFactors(getQ(), getK(), getV());
  a.rule.operandFactors = {a.q, a.k, a.v, a.out, a.out};
  if (getLse())
    a.rule.operandFactors.push_back(a.lse);
  addMaskAndSlopes(a, getMask(), getAlibiSlopes());
  a.rule.resultFactors = {a.q, a.k, a.v};
  return a.rule;
}

OpShardingRule CrossEntropyOp::getShardingRule() {
  // logits [t..., V], labels [t...]: the tokens are reduced over (a mean
  // weighted by each block's counted tokens, which weft-partition writes
  // out), the vocabulary is whole. `none` keeps the tokens.
  OpShardingRule rule;
  DimFactors logits = newFactors(rule, typeOf(getLogits()));
  if (!logits.back().empty())
    rule.blockedFactors.push_back(logits.back()[0]);
  DimFactors tokens(logits.begin(), logits.end() - 1);
  rule.operandFactors = {logits, tokens};
  rule.resultFactors = {getReduction() == LossReduction::none ? tokens
                                                              : DimFactors{}};
  rule.reduction = getReduction() == LossReduction::mean ? ReduceKind::mean
                                                         : ReduceKind::sum;
  return rule;
}
