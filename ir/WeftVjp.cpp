// Vector-Jacobian products of the weft ops (DifferentiableOpInterface): each
// rule builds, at the builder's insertion point, the gradients of its
// operands from those of its results, out of weft ops, so that the backward
// pass is ordinary IR that the rest of the pipeline schedules, fuses and
// bufferizes like the forward. Integer operands get no gradient.
#include "ir/WeftDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace weft;

namespace {
RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

bool isFloat(Value v) { return isa<FloatType>(tensorType(v).getElementType()); }

/// A tensor of `type` filled with `value`.
Value splat(OpBuilder &b, Location loc, RankedTensorType type, double value) {
  auto element = cast<FloatType>(type.getElementType());
  return b.create<ConstantOp>(
      loc, DenseElementsAttr::get(type, FloatAttr::get(element, value)));
}

Value splatLike(OpBuilder &b, Location loc, Value like, double value) {
  return splat(b, loc, tensorType(like), value);
}

/// `value` (shape S) broadcast back to `like`'s shape, S being `like`'s shape
/// without `removed` dimensions (or with them as 1 when `kept`).
Value broadcastBack(OpBuilder &b, Location loc, Value value, Value like,
                    ArrayRef<int64_t> removed) {
  RankedTensorType target = tensorType(like);
  SmallVector<int64_t> keptShape, mapping;
  for (int64_t d = 0; d < target.getRank(); ++d)
    if (!llvm::is_contained(removed, d)) {
      keptShape.push_back(target.getDimSize(d));
      mapping.push_back(d);
    }
  auto keptType =
      target.clone(keptShape).clone(tensorType(value).getElementType());
  if (tensorType(value).getShape() != ArrayRef<int64_t>(keptShape))
    value = b.create<ReshapeOp>(loc, keptType, value);
  return b.create<BroadcastOp>(loc,
                               target.clone(tensorType(value).getElementType()),
                               value, b.getDenseI64ArrayAttr(mapping));
}

/// Σ of `value` over `dims`, the result reshaped to `type`.
Value sumTo(OpBuilder &b, Location loc, Value value, ArrayRef<int64_t> dims,
            RankedTensorType type) {
  Value sum = value;
  if (!dims.empty())
    sum = b.create<ReduceOp>(loc, ReduceKind::sum, value,
                             b.getDenseI64ArrayAttr(dims), false);
  if (tensorType(sum) != type)
    sum = b.create<ReshapeOp>(loc, type, sum);
  return sum;
}

/// Rows of a [..., n] tensor as [rows, n].
Value flatten2d(OpBuilder &b, Location loc, Value v) {
  RankedTensorType type = tensorType(v);
  int64_t n = type.getShape().back();
  if (type.getRank() == 2)
    return v;
  return b.create<ReshapeOp>(loc, type.clone({type.getNumElements() / n, n}),
                             v);
}

/// The one gradient of a single-result op, or failure (no gradient flows).
Value onlyGrad(ValueRange resultGrads) {
  return resultGrads.empty() ? Value() : resultGrads[0];
}
} // namespace

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

LogicalResult AddOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  grads.assign({g, g});
  return success();
}

LogicalResult SubOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  grads.assign({g, g ? b.create<NegOp>(getLoc(), g).getResult() : Value()});
  return success();
}

LogicalResult MulOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(g))
    return grads.assign(2, Value()), success();
  grads.assign({b.create<MulOp>(getLoc(), g, getRhs()),
                b.create<MulOp>(getLoc(), g, getLhs())});
  return success();
}

LogicalResult DivOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(g))
    return grads.assign(2, Value()), success();
  // d lhs = g / rhs; d rhs = −g · lhs / rhs² = −(g / rhs) · result.
  Value lhsGrad = b.create<DivOp>(getLoc(), g, getRhs());
  Value rhsGrad = b.create<NegOp>(
      getLoc(), b.create<MulOp>(getLoc(), lhsGrad, getResult()));
  grads.assign({lhsGrad, rhsGrad});
  return success();
}

LogicalResult MaxOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return emitOpError("has no gradient rule yet");
}

LogicalResult MinOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return emitOpError("has no gradient rule yet");
}

LogicalResult PowOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return emitOpError("has no gradient rule yet");
}

namespace {
/// The gradient of a unary op: g · f'(x), f' built from x and the result y.
template <typename Op, typename Derivative>
LogicalResult unaryVjp(Op op, OpBuilder &b, ValueRange resultGrads,
                       SmallVectorImpl<Value> &grads, Derivative derivative) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(g))
    return grads.assign(1, Value()), success();
  grads.assign({b.create<MulOp>(
      op.getLoc(), g, derivative(op.getLoc(), op.getX(), op.getResult()))});
  return success();
}
} // namespace

LogicalResult NegOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  grads.assign({g ? b.create<NegOp>(getLoc(), g).getResult() : Value()});
  return success();
}

LogicalResult AbsOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return emitOpError("has no gradient rule yet");
}

LogicalResult ExpOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return unaryVjp(*this, b, resultGrads, grads,
                  [&](Location, Value, Value y) { return y; });
}

LogicalResult LogOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  grads.assign(
      {g ? b.create<DivOp>(getLoc(), g, getX()).getResult() : Value()});
  return success();
}

LogicalResult TanhOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                               SmallVectorImpl<Value> &grads) {
  return unaryVjp(*this, b, resultGrads, grads,
                  [&](Location loc, Value, Value y) -> Value {
                    // 1 − y²
                    return b.create<SubOp>(loc, splatLike(b, loc, y, 1.0),
                                           b.create<MulOp>(loc, y, y));
                  });
}

LogicalResult SigmoidOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &grads) {
  return unaryVjp(
      *this, b, resultGrads, grads, [&](Location loc, Value, Value y) -> Value {
        // y (1 − y)
        return b.create<MulOp>(
            loc, y, b.create<SubOp>(loc, splatLike(b, loc, y, 1.0), y));
      });
}

LogicalResult SiluOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                               SmallVectorImpl<Value> &grads) {
  return unaryVjp(
      *this, b, resultGrads, grads,
      [&](Location loc, Value x, Value y) -> Value {
        // y = x·s, s = sigmoid(x): y' = s + y (1 − s)
        Value s = b.create<SigmoidOp>(loc, x);
        Value oneMinus = b.create<SubOp>(loc, splatLike(b, loc, s, 1.0), s);
        return b.create<AddOp>(loc, s, b.create<MulOp>(loc, y, oneMinus));
      });
}

LogicalResult RsqrtOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                SmallVectorImpl<Value> &grads) {
  return unaryVjp(
      *this, b, resultGrads, grads, [&](Location loc, Value, Value y) -> Value {
        // −y³ / 2
        Value cube = b.create<MulOp>(loc, y, b.create<MulOp>(loc, y, y));
        return b.create<MulOp>(loc, cube, splatLike(b, loc, y, -0.5));
      });
}

LogicalResult SqrtOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                               SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(1, Value()), success();
  // g / (2 y)
  Value twice = b.create<AddOp>(getLoc(), getResult(), getResult());
  grads.assign({b.create<DivOp>(getLoc(), g, twice)});
  return success();
}

LogicalResult ErfOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return emitOpError("has no gradient rule yet");
}

LogicalResult CosOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return unaryVjp(*this, b, resultGrads, grads,
                  [&](Location loc, Value x, Value) -> Value {
                    return b.create<NegOp>(loc, b.create<SinOp>(loc, x));
                  });
}

LogicalResult SinOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return unaryVjp(*this, b, resultGrads, grads,
                  [&](Location loc, Value x, Value) -> Value {
                    return b.create<CosOp>(loc, x);
                  });
}

LogicalResult FloorOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                SmallVectorImpl<Value> &grads) {
  grads.assign(1, Value()); // piecewise constant
  return success();
}

LogicalResult CeilOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                               SmallVectorImpl<Value> &grads) {
  grads.assign(1, Value());
  return success();
}

LogicalResult ConvertOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(getX()))
    return grads.assign(1, Value()), success();
  grads.assign({b.create<ConvertOp>(getLoc(), getX().getType(), g)});
  return success();
}

//===----------------------------------------------------------------------===//
// Shape
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  grads.assign(
      {g ? b.create<ReshapeOp>(getLoc(), getX().getType(), g).getResult()
         : Value()});
  return success();
}

LogicalResult TransposeOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                    SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(1, Value()), success();
  ArrayRef<int64_t> permutation = getPermutation();
  SmallVector<int64_t> inverse(permutation.size());
  for (auto [i, p] : llvm::enumerate(permutation))
    inverse[p] = i;
  grads.assign(
      {b.create<TransposeOp>(getLoc(), g, b.getDenseI64ArrayAttr(inverse))});
  return success();
}

LogicalResult BroadcastOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                    SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(getX()))
    return grads.assign(1, Value()), success();
  // Sum over the new dimensions and over those broadcast from size 1.
  RankedTensorType in = tensorType(getX()), out = tensorType(getResult());
  SmallVector<int64_t> summed;
  for (int64_t d = 0; d < out.getRank(); ++d) {
    auto at = llvm::find(getDims(), d);
    if (at == getDims().end() ||
        (in.getDimSize(at - getDims().begin()) == 1 && out.getDimSize(d) != 1))
      summed.push_back(d);
  }
  grads.assign({sumTo(b, getLoc(), g, summed, in)});
  return success();
}

//===----------------------------------------------------------------------===//
// Linear algebra, reductions, gathers
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                 SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(getBias() ? 3 : 2, Value()), success();
  // y = x Wᵀ + b over rows: dx = g W, dW = gᵀ x, db = Σ_rows g.
  Location loc = getLoc();
  Value g2 = flatten2d(b, loc, g), x2 = flatten2d(b, loc, getX());
  Value dx = b.create<MatmulOp>(loc, g2, getWeight(), false, false);
  if (tensorType(dx) != tensorType(getX()))
    dx = b.create<ReshapeOp>(loc, getX().getType(), dx);
  Value dw = b.create<MatmulOp>(loc, g2, x2, true, false);
  grads.assign({dx, dw});
  if (getBias())
    grads.push_back(sumTo(b, loc, g2, {0}, tensorType(getBias())));
  return success();
}

LogicalResult ReduceOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                 SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(getX()))
    return grads.assign(1, Value()), success();
  if (getKind() != ReduceKind::sum && getKind() != ReduceKind::mean)
    return emitOpError("has no gradient rule for ")
           << stringifyReduceKind(getKind()) << " yet";
  Value spread = broadcastBack(b, getLoc(), g, getX(), getDims());
  if (getKind() == ReduceKind::mean) {
    int64_t count = 1;
    for (int64_t d : getDims())
      count *= tensorType(getX()).getDimSize(d);
    spread = b.create<MulOp>(getLoc(), spread,
                             splatLike(b, getLoc(), spread, 1.0 / count));
  }
  grads.assign({spread});
  return success();
}

LogicalResult GatherOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                 SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(getTable()))
    return grads.assign(2, Value()), success();
  // Rows taken more than once accumulate.
  Value zeros = splatLike(b, getLoc(), getTable(), 0.0);
  grads.assign(
      {b.create<ScatterAddOp>(getLoc(), zeros, getIndices(), g, getAxis()),
       Value()});
  return success();
}

//===----------------------------------------------------------------------===//
// Transformer ops
//===----------------------------------------------------------------------===//

LogicalResult RmsNormOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(2, Value()), success();
  // y = x·r·w with r = (mean(x²) + ε)^(−1/2) over the last dimension n:
  //   dx = r·(g·w) − x·r³·Σ(g·w·x)/n,  dw = Σ_rows g·x·r.
  Location loc = getLoc();
  Value x = getX();
  RankedTensorType type = tensorType(x);
  int64_t last = type.getRank() - 1, n = type.getShape().back();
  Value w = broadcastBack(b, loc, getWeight(), x,
                          llvm::to_vector(llvm::seq<int64_t>(0, last)));
  Value meanSquare =
      b.create<ReduceOp>(loc, ReduceKind::mean, b.create<MulOp>(loc, x, x),
                         b.getDenseI64ArrayAttr({last}), false);
  Value r = b.create<RsqrtOp>(
      loc, b.create<AddOp>(
               loc, meanSquare,
               splatLike(b, loc, meanSquare, getEpsilon().convertToDouble())));
  Value rFull = broadcastBack(b, loc, r, x, {last});
  Value gw = b.create<MulOp>(loc, g, w);
  Value dot =
      b.create<ReduceOp>(loc, ReduceKind::sum, b.create<MulOp>(loc, gw, x),
                         b.getDenseI64ArrayAttr({last}), false);
  Value dotFull = broadcastBack(b, loc, dot, x, {last});
  Value r3 = b.create<MulOp>(loc, rFull, b.create<MulOp>(loc, rFull, rFull));
  Value correction = b.create<MulOp>(
      loc, b.create<MulOp>(loc, x, r3),
      b.create<MulOp>(loc, dotFull, splatLike(b, loc, dotFull, 1.0 / n)));
  Value dx = b.create<SubOp>(loc, b.create<MulOp>(loc, gw, rFull), correction);
  Value normalized = b.create<MulOp>(loc, x, rFull);
  Value dw = sumTo(b, loc, b.create<MulOp>(loc, g, normalized),
                   llvm::to_vector(llvm::seq<int64_t>(0, last)),
                   tensorType(getWeight()));
  grads.assign({dx, dw});
  return success();
}

LogicalResult CrossEntropyOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                       SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(2, Value()), success();
  if (getReduction() != LossReduction::mean)
    return emitOpError("has a gradient rule for the mean reduction only yet");
  // d logits = (softmax(logits) − onehot(label)) · valid / max(count, 1) · g
  Location loc = getLoc();
  Value logits = getLogits(), labels = getLabels();
  RankedTensorType type = tensorType(logits);
  int64_t last = type.getRank() - 1;
  auto i64 = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getI64Type());
  };
  auto f32 = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getF32Type());
  };
  Value probabilities = b.create<SoftmaxOp>(loc, logits, last);
  Value columns = b.create<IotaOp>(loc, i64(type.getShape()), last);
  Value labelsFull = broadcastBack(b, loc, labels, columns, {last});
  Value hit =
      b.create<CompareOp>(loc, CompareDirection::eq, columns, labelsFull);
  Value onehot = b.create<ConvertOp>(loc, type, hit);
  ArrayRef<int64_t> tokensShape = tensorType(labels).getShape();
  Value ignore = b.create<ConstantOp>(
      loc, DenseElementsAttr::get(i64(tokensShape),
                                  b.getI64IntegerAttr(getIgnoreIndex())));
  Value valid = b.create<ConvertOp>(
      loc, f32(tokensShape),
      b.create<CompareOp>(loc, CompareDirection::ne, labels, ignore));
  SmallVector<int64_t> allDims =
      llvm::to_vector(llvm::seq<int64_t>(0, tensorType(labels).getRank()));
  Value count = b.create<ReduceOp>(loc, ReduceKind::sum, valid,
                                   b.getDenseI64ArrayAttr(allDims), false);
  count = b.create<MaxOp>(loc, count, splatLike(b, loc, count, 1.0));
  Value scale = b.create<DivOp>(loc, g, count); // tensor<f32>
  Value weights =
      b.create<MulOp>(loc, valid, broadcastBack(b, loc, scale, valid, allDims));
  Value weightsFull = broadcastBack(b, loc, weights, logits, {last});
  if (tensorType(weightsFull).getElementType() != type.getElementType())
    weightsFull = b.create<ConvertOp>(loc, type, weightsFull);
  Value diff = b.create<SubOp>(loc, probabilities, onehot);
  grads.assign({b.create<MulOp>(loc, diff, weightsFull), Value()});
  return success();
}
