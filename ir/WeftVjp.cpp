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

/// Zeros of `type` as a scalar broadcast: an op that writes them, not a
/// constant of the tensor's size in the plan (a vocabulary-sized gradient
/// base would be hundreds of MiB).
Value zerosOf(OpBuilder &b, Location loc, RankedTensorType type) {
  Value zero = splat(b, loc, type.clone(ArrayRef<int64_t>{}), 0.0);
  return b.create<BroadcastOp>(loc, type, zero, b.getDenseI64ArrayAttr({}));
}

/// `value` (shape S) broadcast to `target`'s shape, S being that shape
/// without the `removed` dimensions (or with them as 1).
Value broadcastTo(OpBuilder &b, Location loc, Value value,
                  RankedTensorType target, ArrayRef<int64_t> removed) {
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

/// `value` broadcast back to `like`'s shape (see broadcastTo).
Value broadcastBack(OpBuilder &b, Location loc, Value value, Value like,
                    ArrayRef<int64_t> removed) {
  return broadcastTo(b, loc, value, tensorType(like), removed);
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

/// `g` where `pred` holds, 0 elsewhere (or the reverse when `negate`).
Value where(OpBuilder &b, Location loc, Value pred, Value g,
            bool negate = false) {
  Value zeros = splatLike(b, loc, g, 0.0);
  return negate ? b.create<SelectOp>(loc, pred, zeros, g)
                : b.create<SelectOp>(loc, pred, g, zeros);
}

/// Σ over `dim` of `value`, broadcast back to its shape.
Value rowSum(OpBuilder &b, Location loc, Value value, int64_t dim) {
  Value sum = b.create<ReduceOp>(loc, ReduceKind::sum, value,
                                 b.getDenseI64ArrayAttr({dim}), false);
  return broadcastBack(b, loc, sum, value, {dim});
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

namespace {
/// max and min pass the gradient to the operand they chose, to lhs on ties.
LogicalResult extremumVjp(Operation *op, CompareDirection lhsWins,
                          ValueRange resultGrads, SmallVectorImpl<Value> &grads,
                          OpBuilder &b) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(g))
    return grads.assign(2, Value()), success();
  Location loc = op->getLoc();
  Value lhs = op->getOperand(0), rhs = op->getOperand(1);
  Value chosen = b.create<CompareOp>(loc, lhsWins, lhs, rhs);
  grads.assign({where(b, loc, chosen, g), where(b, loc, chosen, g, true)});
  return success();
}
} // namespace

LogicalResult MaxOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return extremumVjp(*this, CompareDirection::ge, resultGrads, grads, b);
}

LogicalResult MinOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  return extremumVjp(*this, CompareDirection::le, resultGrads, grads, b);
}

LogicalResult PowOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                              SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(2, Value()), success();
  // y = a^e: d a = g·e·a^(e − 1), d e = g·y·ln a.
  Location loc = getLoc();
  Value a = getLhs(), e = getRhs();
  Value eMinusOne = b.create<SubOp>(loc, e, splatLike(b, loc, e, 1.0));
  Value da = b.create<MulOp>(
      loc, g, b.create<MulOp>(loc, e, b.create<PowOp>(loc, a, eMinusOne)));
  Value de = b.create<MulOp>(
      loc, g, b.create<MulOp>(loc, getResult(), b.create<LogOp>(loc, a)));
  grads.assign({da, de});
  return success();
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
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(g))
    return grads.assign(1, Value()), success();
  // g·sign(x), 0 at 0 (as torch).
  Location loc = getLoc();
  Value zeros = splatLike(b, loc, getX(), 0.0);
  Value positive =
      b.create<CompareOp>(loc, CompareDirection::gt, getX(), zeros);
  Value negative =
      b.create<CompareOp>(loc, CompareDirection::lt, getX(), zeros);
  Value negated = b.create<NegOp>(loc, g);
  grads.assign(
      {b.create<SelectOp>(loc, positive, g, where(b, loc, negative, negated))});
  return success();
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
  return unaryVjp(*this, b, resultGrads, grads,
                  [&](Location loc, Value x, Value) -> Value {
                    // 2/√π · e^(−x²)
                    Value square = b.create<MulOp>(loc, x, x);
                    return b.create<MulOp>(
                        loc, b.create<ExpOp>(loc, b.create<NegOp>(loc, square)),
                        splatLike(b, loc, x, 1.1283791670955126));
                  });
}

LogicalResult GeluOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                               SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(1, Value()), success();
  Location loc = getLoc();
  Value x = getX();
  auto c = [&](double value) { return splatLike(b, loc, x, value); };
  Value derivative;
  if (getApproximation() == GeluApproximation::none) {
    // Φ(x) + x·φ(x), Φ(x) = (1 + erf(x/√2)) / 2, φ(x) = e^(−x²/2) / √(2π).
    Value cdf = b.create<MulOp>(
        loc, c(0.5),
        b.create<AddOp>(
            loc, c(1.0),
            b.create<ErfOp>(loc,
                            b.create<MulOp>(loc, x, c(0.7071067811865476)))));
    Value halfSquare =
        b.create<MulOp>(loc, b.create<MulOp>(loc, x, x), c(-0.5));
    Value pdf = b.create<MulOp>(loc, b.create<ExpOp>(loc, halfSquare),
                                c(0.3989422804014327));
    derivative = b.create<AddOp>(loc, cdf, b.create<MulOp>(loc, x, pdf));
  } else {
    // y = x(1 + t)/2, t = tanh(k(x + 0.044715x³)), k = √(2/π):
    // y' = (1 + t)/2 + x(1 − t²)·k(1 + 3·0.044715x²)/2.
    Value square = b.create<MulOp>(loc, x, x);
    Value inner = b.create<MulOp>(
        loc, c(0.7978845608028654),
        b.create<AddOp>(loc, x,
                        b.create<MulOp>(loc, c(0.044715),
                                        b.create<MulOp>(loc, square, x))));
    Value t = b.create<TanhOp>(loc, inner);
    Value onePlus = b.create<AddOp>(loc, c(1.0), t);
    Value slope = b.create<MulOp>(
        loc, c(0.7978845608028654),
        b.create<AddOp>(loc, c(1.0),
                        b.create<MulOp>(loc, c(3 * 0.044715), square)));
    Value sech2 = b.create<SubOp>(loc, c(1.0), b.create<MulOp>(loc, t, t));
    derivative = b.create<MulOp>(
        loc, c(0.5),
        b.create<AddOp>(
            loc, onePlus,
            b.create<MulOp>(loc, x, b.create<MulOp>(loc, sech2, slope))));
  }
  grads.assign({b.create<MulOp>(loc, g, derivative)});
  return success();
}

LogicalResult SelectOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                 SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(g))
    return grads.assign(3, Value()), success();
  grads.assign({Value(), where(b, getLoc(), getPred(), g),
                where(b, getLoc(), getPred(), g, true)});
  return success();
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

LogicalResult SliceOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(g))
    return grads.assign(1, Value()), success();
  // Along each dimension the slice cuts, the gradient is added back at the
  // taken positions start, start + stride, … into zeros.
  Location loc = getLoc();
  RankedTensorType in = tensorType(getX());
  for (int64_t d = in.getRank() - 1; d >= 0; --d) {
    RankedTensorType current = tensorType(g);
    int64_t taken = current.getDimSize(d);
    if (taken == in.getDimSize(d))
      continue;
    SmallVector<int64_t> positions;
    for (int64_t i = 0; i < taken; ++i)
      positions.push_back(getStart()[d] + i * getStride()[d]);
    auto indexType = RankedTensorType::get({taken}, b.getI64Type());
    Value indices = b.create<ConstantOp>(
        loc, DenseElementsAttr::get(indexType, ArrayRef<int64_t>(positions)));
    SmallVector<int64_t> shape(current.getShape());
    shape[d] = in.getDimSize(d);
    Value zeros = zerosOf(b, loc, current.clone(shape));
    g = b.create<ScatterAddOp>(loc, zeros, indices, g, d);
  }
  grads.assign({g});
  return success();
}

LogicalResult ConcatOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                 SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  grads.assign(getNumOperands(), Value());
  if (!g || !isFloat(g))
    return success();
  RankedTensorType out = tensorType(g);
  SmallVector<int64_t> start(out.getRank(), 0), limit(out.getShape()),
      stride(out.getRank(), 1);
  int64_t offset = 0;
  for (auto [i, input] : llvm::enumerate(getInputs())) {
    int64_t size = tensorType(input).getDimSize(getDim());
    start[getDim()] = offset;
    limit[getDim()] = offset + size;
    grads[i] = b.create<SliceOp>(getLoc(), g, b.getDenseI64ArrayAttr(start),
                                 b.getDenseI64ArrayAttr(limit),
                                 b.getDenseI64ArrayAttr(stride));
    offset += size;
  }
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

LogicalResult MatmulOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                 SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g || !isFloat(g))
    return grads.assign(getNumOperands(), Value()), success();
  // y = op(A) op(B) + acc: d op(A) = g op(B)ᵀ, d op(B) = op(A)ᵀ g, each
  // transposed back where the operand is stored transposed; a shared rank-2
  // B sums over the batch; d acc = g.
  Location loc = getLoc();
  Value lhs = getLhs(), rhs = getRhs();
  bool ta = getTransposeLhs(), tb = getTransposeRhs();
  auto swapLast = [&](Value v) -> Value {
    int64_t rank = tensorType(v).getRank();
    SmallVector<int64_t> permutation =
        llvm::to_vector(llvm::seq<int64_t>(0, rank));
    std::swap(permutation[rank - 1], permutation[rank - 2]);
    return b.create<TransposeOp>(loc, v, b.getDenseI64ArrayAttr(permutation));
  };
  Value dA = b.create<MatmulOp>(loc, g, rhs, false, !tb);
  if (ta)
    dA = swapLast(dA);
  Value dB;
  RankedTensorType gType = tensorType(g);
  if (tensorType(rhs).getRank() == 2 && gType.getRank() > 2) {
    Value a = ta ? swapLast(lhs) : lhs; // [b..., M, K]
    RankedTensorType aType = tensorType(a);
    int64_t rows = aType.getNumElements() / aType.getShape().back();
    Value a2 = b.create<ReshapeOp>(
        loc, aType.clone({rows, aType.getShape().back()}), a);
    Value g2 = b.create<ReshapeOp>(
        loc, gType.clone({rows, gType.getShape().back()}), g);
    dB = b.create<MatmulOp>(loc, a2, g2, true, false);
  } else {
    dB = b.create<MatmulOp>(loc, lhs, g, !ta, false);
  }
  if (tb)
    dB = swapLast(dB);
  grads.assign({dA, dB});
  if (getAcc())
    grads.push_back(g);
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
  Value zeros = zerosOf(b, getLoc(), tensorType(getTable()));
  grads.assign(
      {b.create<ScatterAddOp>(getLoc(), zeros, getIndices(), g, getAxis()),
       Value()});
  return success();
}

//===----------------------------------------------------------------------===//
// Transformer ops
//===----------------------------------------------------------------------===//

LogicalResult SoftmaxOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(1, Value()), success();
  // dx = y·(g − Σ g·y)
  Location loc = getLoc();
  Value y = getResult();
  Value dot = rowSum(b, loc, b.create<MulOp>(loc, g, y), getDim());
  grads.assign({b.create<MulOp>(loc, y, b.create<SubOp>(loc, g, dot))});
  return success();
}

LogicalResult LogSoftmaxOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                     SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(1, Value()), success();
  // dx = g − e^y·Σ g
  Location loc = getLoc();
  Value probabilities = b.create<ExpOp>(loc, getResult());
  grads.assign({b.create<SubOp>(
      loc, g,
      b.create<MulOp>(loc, probabilities, rowSum(b, loc, g, getDim())))});
  return success();
}

LogicalResult LayerNormOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                    SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(getNumOperands(), Value()), success();
  // x̂ = (x − μ)·r, r = (var + ε)^(−1/2), y = x̂·w + b over the last
  // dimension: dx = r·(gw − mean(gw) − x̂·mean(gw·x̂)) (weft.layer_norm_grad,
  // one row op), dw = Σ_rows g·x̂, x̂ being layer_norm with a weight of ones
  // and no bias, db = Σ_rows g.
  Location loc = getLoc();
  Value x = getX();
  SmallVector<int64_t> rows =
      llvm::to_vector(llvm::seq<int64_t>(0, tensorType(x).getRank() - 1));
  Value dx =
      b.create<LayerNormGradOp>(loc, x, getWeight(), g, getEpsilonAttr());
  Value normalized = b.create<LayerNormOp>(
      loc, x, splatLike(b, loc, getWeight(), 1.0), Value(), getEpsilonAttr());
  grads.assign({dx, sumTo(b, loc, b.create<MulOp>(loc, g, normalized), rows,
                          tensorType(getWeight()))});
  if (getBias())
    grads.push_back(sumTo(b, loc, g, rows, tensorType(getBias())));
  return success();
}

LogicalResult RmsNormOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(2, Value()), success();
  // y = x·r·w with r = (mean(x²) + ε)^(−1/2) over the last dimension:
  //   dx = r·(g·w) − x·r³·mean(g·w·x) (weft.rms_norm_grad, one row op),
  //   dw = Σ_rows g·x·r, x·r being rms_norm with a weight of ones.
  Location loc = getLoc();
  Value x = getX();
  const int64_t last = tensorType(x).getRank() - 1;
  Value dx = b.create<RmsNormGradOp>(loc, x, getWeight(), g, getEpsilonAttr());
  Value normalized = b.create<RmsNormOp>(
      loc, x, splatLike(b, loc, getWeight(), 1.0), getEpsilonAttr());
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
  if (getReduction() == LossReduction::none)
    return emitOpError(
        "has a gradient rule for the mean and sum reductions only yet");
  // d logits = (softmax(logits) − onehot(label)) · valid · g, over
  // max(count, 1) for the mean
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
  Value scale = g; // tensor<f32>
  if (getReduction() == LossReduction::mean) {
    Value count = b.create<ReduceOp>(loc, ReduceKind::sum, valid,
                                     b.getDenseI64ArrayAttr(allDims), false);
    count = b.create<MaxOp>(loc, count, splatLike(b, loc, count, 1.0));
    scale = b.create<DivOp>(loc, g, count);
  }
  Value weights =
      b.create<MulOp>(loc, valid, broadcastBack(b, loc, scale, valid, allDims));
  Value weightsFull = broadcastBack(b, loc, weights, logits, {last});
  if (tensorType(weightsFull).getElementType() != type.getElementType())
    weightsFull = b.create<ConvertOp>(loc, type, weightsFull);
  Value diff = b.create<SubOp>(loc, probabilities, onehot);
  grads.assign({b.create<MulOp>(loc, diff, weightsFull), Value()});
  return success();
}

LogicalResult RopeOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                               SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(2, Value()), success();
  // Each pair turns by p·f; its transpose turns back, which is the rotation
  // at position −p (cos is even, sin odd).
  Location loc = getLoc();
  Value negated = b.create<NegOp>(loc, getPositions());
  grads.assign({b.create<RopeOp>(loc, g, negated, getThetaAttr(),
                                 getInterleavedAttr(), getFrequenciesAttr()),
                Value()});
  return success();
}

LogicalResult AttentionOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                    SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);         // lse passes no gradient
  grads.assign(getNumOperands(), Value()); // no gradient for masks or slopes
  if (!g)
    return success();
  // The backward reads each row's log-sum-exp from the forward instead of
  // recomputing it: the forward becomes one that returns it (this one is
  // left unused, for the canonicalizer).
  AttentionOp forward = *this;
  if (!getLse()) {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(*this);
    forward = b.create<AttentionOp>(
        getLoc(), getKindAttr(), getQ(), getK(), getV(), getMask(),
        getAlibiSlopes(), getScaleAttr(), getWindowAttr(), b.getUnitAttr());
    getResult().replaceAllUsesWith(forward.getResult());
  }
  auto grad = b.create<AttentionGradOp>(
      getLoc(), getKindAttr(), getQ(), getK(), getV(), forward.getResult(), g,
      forward.getLse(), getMask(), getAlibiSlopes(), getScaleAttr(),
      getWindowAttr());
  grads[0] = grad.getDq();
  grads[1] = grad.getDk();
  grads[2] = grad.getDv();
  return success();
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

namespace {
/// [T, K] pairs as T·K single-slot tokens: their experts [T·K, 1].
Value pairExperts(OpBuilder &b, Location loc, Value experts) {
  RankedTensorType type = tensorType(experts);
  return b.create<ReshapeOp>(loc, type.clone({type.getNumElements(), 1}),
                             experts);
}

/// Rows in dispatch order [T·K, H] back in (token, slot) order.
Value rowsInPairOrder(OpBuilder &b, Location loc, Value rows, Value experts,
                      IntegerAttr numExperts) {
  RankedTensorType type = tensorType(rows);
  Value ones = splat(b, loc, type.clone({type.getDimSize(0), 1}), 1.0);
  return b.create<MoeCombineOp>(loc, rows, ones, pairExperts(b, loc, experts),
                                numExperts);
}
} // namespace

LogicalResult MoeGateOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                  SmallVectorImpl<Value> &grads) {
  Value g = resultGrads.empty() ? Value() : resultGrads[0];
  if (!g)
    return grads.assign(1, Value()), success();
  // w_k = p_{e_k} (/ Σ_j p_{e_j} under normalize), p = softmax(logits): the
  // chosen probabilities through a one-hot of the experts, their gradient
  // spread back over the experts, then softmax's.
  Location loc = getLoc();
  Value logits = getLogits();
  RankedTensorType type = tensorType(logits),
                   weights = tensorType(getWeights());
  int64_t last = type.getRank() - 1;
  int64_t experts = type.getShape().back();
  SmallVector<int64_t> pairShape(weights.getShape());
  pairShape.push_back(experts); // [..., K, E]
  auto i64 = RankedTensorType::get(pairShape, b.getI64Type());
  Value probabilities = b.create<SoftmaxOp>(loc, logits, last);
  Value expertIds = b.create<IotaOp>(loc, i64, last + 1);
  Value chosenIds = broadcastBack(b, loc, getExperts(), expertIds, {last + 1});
  Value onehot = b.create<ConvertOp>(
      loc, type.clone(pairShape),
      b.create<CompareOp>(loc, CompareDirection::eq, expertIds, chosenIds));
  Value spreadP = broadcastBack(b, loc, probabilities, onehot, {last});
  Value chosen = b.create<ReduceOp>(loc, ReduceKind::sum,
                                    b.create<MulOp>(loc, onehot, spreadP),
                                    b.getDenseI64ArrayAttr({last + 1}), false);
  Value dChosen = g;
  if (getNormalize()) {
    // w = c / S: dc = (g − Σ_j g_j w_j) / S.
    Value sum = rowSum(b, loc, chosen, last);
    Value w = b.create<DivOp>(loc, chosen, sum);
    Value dot = rowSum(b, loc, b.create<MulOp>(loc, g, w), last);
    dChosen = b.create<DivOp>(loc, b.create<SubOp>(loc, g, dot), sum);
  }
  Value dProbabilities = b.create<ReduceOp>(
      loc, ReduceKind::sum,
      b.create<MulOp>(loc, onehot,
                      broadcastBack(b, loc, dChosen, onehot, {last + 1})),
      b.getDenseI64ArrayAttr({last}), false);
  Value dot =
      rowSum(b, loc, b.create<MulOp>(loc, dProbabilities, probabilities), last);
  grads.assign({b.create<MulOp>(loc, probabilities,
                                b.create<SubOp>(loc, dProbabilities, dot))});
  return success();
}

LogicalResult MoeDispatchOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                      SmallVectorImpl<Value> &grads) {
  Value g = resultGrads.empty() ? Value() : resultGrads[0];
  if (!g || !isFloat(g))
    return grads.assign(2, Value()), success();
  // Token t's row went to each of its K slots: its gradient is their sum.
  Location loc = getLoc();
  RankedTensorType experts = tensorType(getExperts());
  Value ones = splat(b, loc, tensorType(g).clone(experts.getShape()), 1.0);
  grads.assign(
      {b.create<MoeCombineOp>(loc, g, ones, getExperts(), getNumExpertsAttr()),
       Value()});
  return success();
}

LogicalResult GroupedLinearOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                        SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  grads.assign(getNumOperands(), Value());
  if (!g)
    return success();
  // dx = g_g · W_g over each group's rows (a grouped linear by Wᵀ); dW_g =
  // g_gᵀ · x_g, the rows outside group g masked to zero (one product per
  // group over every row: E times the work of a grouped product, until a
  // kernel for it lands).
  Location loc = getLoc();
  SmallVector<Value> transposed;
  for (Value w : getWeights())
    transposed.push_back(
        b.create<TransposeOp>(loc, w, b.getDenseI64ArrayAttr({1, 0})));
  grads[0] = b.create<GroupedLinearOp>(loc, g, getOffsets(), transposed);
  RankedTensorType x = tensorType(getX());
  int64_t rows = x.getDimSize(0);
  auto i64 = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getI64Type());
  };
  Value rowIds = b.create<IotaOp>(loc, i64({rows}), 0);
  for (int64_t e = 0; e < static_cast<int64_t>(getWeights().size()); ++e) {
    auto bound = [&](int64_t at) -> Value {
      Value one = b.create<SliceOp>(
          loc, getOffsets(), b.getDenseI64ArrayAttr({at}),
          b.getDenseI64ArrayAttr({at + 1}), b.getDenseI64ArrayAttr({1}));
      return b.create<BroadcastOp>(loc, i64({rows}),
                                   b.create<ReshapeOp>(loc, i64({}), one),
                                   b.getDenseI64ArrayAttr({}));
    };
    auto predicates = RankedTensorType::get({rows}, b.getI1Type());
    Value none =
        b.create<ConstantOp>(loc, DenseElementsAttr::get(predicates, false));
    Value inGroup = b.create<SelectOp>( // offsets[e] ≤ row < offsets[e + 1]
        loc, b.create<CompareOp>(loc, CompareDirection::ge, rowIds, bound(e)),
        b.create<CompareOp>(loc, CompareDirection::lt, rowIds, bound(e + 1)),
        none);
    Value masked =
        where(b, loc, broadcastBack(b, loc, inGroup, getX(), {1}), getX());
    grads[2 + e] = b.create<MatmulOp>(loc, g, masked, true, false);
  }
  return success();
}

LogicalResult MoeCombineOp::buildVjp(OpBuilder &b, ValueRange resultGrads,
                                     SmallVectorImpl<Value> &grads) {
  Value g = onlyGrad(resultGrads);
  if (!g)
    return grads.assign(3, Value()), success();
  // y_t = Σ_k w_tk · rows[slot(t, k)]: d rows[slot(t, k)] = w_tk · g_t (the
  // pairs' rows put in dispatch order by dispatching them as single-slot
  // tokens), d w_tk = rows[slot(t, k)] · g_t.
  Location loc = getLoc();
  RankedTensorType weights = tensorType(getWeights()),
                   rows = tensorType(getRows());
  int64_t tokens = weights.getDimSize(0), k = weights.getDimSize(1),
          hidden = rows.getDimSize(1);
  auto pairs3 = rows.clone({tokens, k, hidden});
  Value gPairs = broadcastTo(b, loc, g, pairs3, {1});
  Value scaled = b.create<MulOp>(
      loc, gPairs, broadcastBack(b, loc, getWeights(), gPairs, {2}));
  auto dispatch = b.create<MoeDispatchOp>(
      loc, b.create<ReshapeOp>(loc, rows, scaled),
      pairExperts(b, loc, getExperts()), getNumExpertsAttr());
  Value paired = b.create<ReshapeOp>(
      loc, pairs3,
      rowsInPairOrder(b, loc, getRows(), getExperts(), getNumExpertsAttr()));
  Value dWeights = b.create<ReduceOp>(loc, ReduceKind::sum,
                                      b.create<MulOp>(loc, paired, gPairs),
                                      b.getDenseI64ArrayAttr({2}), false);
  grads.assign({dispatch.getRows(), dWeights, Value()});
  return success();
}
