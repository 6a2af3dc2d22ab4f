// Type inference and verification of the weft ops: each check implements one
// numbered constraint of the op's description in WeftOps.td.
#include "ir/WeftDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"

#include <cmath>

using namespace mlir;
using namespace weft;

namespace {
constexpr int64_t kDynamic = ShapedType::kDynamic;

/// Emits "'weft.<op>' <message>" at `loc` (if any) and returns failure.
template <typename OpT, typename... Args>
LogicalResult fail(std::optional<Location> loc, Args &&...args) {
  return emitOptionalError(loc, "'", OpT::getOperationName(), "' ",
                           std::forward<Args>(args)...);
}

RankedTensorType tensorOf(Value value) {
  return cast<RankedTensorType>(value.getType());
}

/// Two sizes agree unless both are static and differ.
bool sizesAgree(int64_t a, int64_t b) {
  return a == kDynamic || b == kDynamic || a == b;
}

bool shapesAgree(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  if (a.size() != b.size())
    return false;
  for (auto [x, y] : llvm::zip_equal(a, b))
    if (!sizesAgree(x, y))
      return false;
  return true;
}

/// Number of elements, or kDynamic.
int64_t numElements(ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d == kDynamic)
      return kDynamic;
    n *= d;
  }
  return n;
}

bool inRange(int64_t dim, int64_t rank) { return dim >= 0 && dim < rank; }

/// Collectives (C1): the axes exist, are unique and at least one is named.
/// Returns the group size, or failure.
template <typename OpT>
FailureOr<int64_t> verifyGroup(std::optional<Location> loc, MeshAttr mesh,
                               ArrayAttr axes) {
  if (axes.empty()) {
    (void)fail<OpT>(loc, "names no mesh axis; its group needs at least one");
    return failure();
  }
  llvm::StringSet<> seen;
  for (Attribute attr : axes) {
    StringRef axis = cast<StringAttr>(attr).getValue();
    if (!mesh.getAxis(axis)) {
      (void)fail<OpT>(loc, "names axis \"", axis,
                      "\", which is not in the mesh ", mesh);
      return failure();
    }
    if (!seen.insert(axis).second) {
      (void)fail<OpT>(loc, "names axis \"", axis, "\" twice");
      return failure();
    }
  }
  return mesh.getGroupSize(axes);
}

int64_t multiplySize(int64_t size, int64_t factor) {
  return size == kDynamic ? kDynamic : size * factor;
}
int64_t divideSize(int64_t size, int64_t factor) {
  return size == kDynamic ? kDynamic : size / factor;
}
} // namespace

//===----------------------------------------------------------------------===//
// Elementwise: ODS infers the result type of ops whose types all match.
//===----------------------------------------------------------------------===//

LogicalResult CompareOp::inferReturnTypes(MLIRContext *context,
                                          std::optional<Location>,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  types.push_back(RankedTensorType::get(tensorOf(adaptor.getLhs()).getShape(),
                                        IntegerType::get(context, 1)));
  return success();
}

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

LogicalResult MatmulOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  RankedTensorType lhs = tensorOf(adaptor.getLhs());
  RankedTensorType rhs = tensorOf(adaptor.getRhs());
  int64_t rank = lhs.getRank(), rhsRank = rhs.getRank();
  if (rank < 2 || rhsRank < 2) // C1
    return fail<MatmulOp>(loc, "needs operands of rank at least 2, found ", lhs,
                          " and ", rhs);
  if (rhsRank != rank && rhsRank != 2) // C2
    return fail<MatmulOp>(loc, "needs rhs of rank ", rank, " or 2, found ",
                          rhs);
  SmallVector<int64_t> shape(lhs.getShape().drop_back(2));
  if (rhsRank == rank && !shapesAgree(shape, rhs.getShape().drop_back(2))) // C3
    return fail<MatmulOp>(loc, "has different batch dimensions in ", lhs,
                          " and ", rhs);
  bool tl = adaptor.getTransposeLhs(), tr = adaptor.getTransposeRhs();
  int64_t m = lhs.getDimSize(rank - (tl ? 1 : 2));
  int64_t k = lhs.getDimSize(rank - (tl ? 2 : 1));
  int64_t rhsK = rhs.getDimSize(rhsRank - (tr ? 1 : 2));
  int64_t n = rhs.getDimSize(rhsRank - (tr ? 2 : 1));
  if (!sizesAgree(k, rhsK)) // C4
    return fail<MatmulOp>(loc, "contracts a dimension of size ", k,
                          " with one of size ", rhsK);
  if (lhs.getElementType() != rhs.getElementType()) // C5
    return fail<MatmulOp>(loc, "needs equal element types, found ",
                          lhs.getElementType(), " and ", rhs.getElementType());
  shape.append({m, n});
  auto result = RankedTensorType::get(shape, lhs.getElementType());
  if (Value accValue = adaptor.getAcc()) {
    RankedTensorType acc = tensorOf(accValue);
    if (acc.getElementType() != result.getElementType() ||
        !shapesAgree(acc.getShape(), shape)) // C6
      return fail<MatmulOp>(loc, "needs acc of the result's type ", result,
                            ", found ", acc);
  }
  types.push_back(result);
  return success();
}

LogicalResult LinearOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  RankedTensorType weight = tensorOf(adaptor.getWeight());
  if (x.getRank() < 1 || weight.getRank() != 2) // C1
    return fail<LinearOp>(loc,
                          "needs x of rank >= 1 and a weight of rank 2, found ",
                          x, " and ", weight);
  if (!sizesAgree(x.getShape().back(), weight.getDimSize(1))) // C2
    return fail<LinearOp>(loc, "has ", x.getShape().back(),
                          " input features in x but weight ", weight,
                          " expects ", weight.getDimSize(1));
  if (Value biasValue = adaptor.getBias()) {
    RankedTensorType bias = tensorOf(biasValue);
    if (bias.getRank() != 1 ||
        !sizesAgree(bias.getDimSize(0), weight.getDimSize(0))) // C3
      return fail<LinearOp>(loc, "needs a bias of shape [",
                            weight.getDimSize(0), "], found ", bias);
    if (bias.getElementType() != x.getElementType()) // C4
      return fail<LinearOp>(loc, "needs equal element types, found ",
                            x.getElementType(), " and ", bias.getElementType());
  }
  if (weight.getElementType() != x.getElementType()) // C4
    return fail<LinearOp>(loc, "needs equal element types, found ",
                          x.getElementType(), " and ", weight.getElementType());
  SmallVector<int64_t> shape(x.getShape().drop_back());
  shape.push_back(weight.getDimSize(0));
  types.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

LogicalResult ReduceOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  ArrayRef<int64_t> dims = adaptor.getDims();
  for (auto [i, dim] : llvm::enumerate(dims)) // C1
    if (!inRange(dim, x.getRank()) || (i > 0 && dim <= dims[i - 1]))
      return fail<ReduceOp>(loc, "needs dims strictly increasing in [0, ",
                            x.getRank(), "), found ", dim, " at position ", i);
  if (adaptor.getKind() == ReduceKind::mean &&
      !isa<FloatType>(x.getElementType())) // C2
    return fail<ReduceOp>(
        loc, "takes the mean of floating-point tensors only, found ",
        x.getElementType());
  SmallVector<int64_t> shape;
  for (auto [d, size] : llvm::enumerate(x.getShape())) {
    if (!llvm::is_contained(dims, static_cast<int64_t>(d)))
      shape.push_back(size);
    else if (adaptor.getKeepDims())
      shape.push_back(1);
  }
  types.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}

template <typename OpT>
static LogicalResult inferSoftmaxLike(std::optional<Location> loc,
                                      typename OpT::Adaptor adaptor,
                                      SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  if (!inRange(adaptor.getDim(), x.getRank())) // C1
    return fail<OpT>(loc, "normalises along dim ", adaptor.getDim(),
                     ", outside [0, ", x.getRank(), ")");
  types.push_back(x);
  return success();
}

LogicalResult SoftmaxOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  return inferSoftmaxLike<SoftmaxOp>(loc, adaptor, types);
}

LogicalResult LogSoftmaxOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  return inferSoftmaxLike<LogSoftmaxOp>(loc, adaptor, types);
}

//===----------------------------------------------------------------------===//
// Shape and data movement
//===----------------------------------------------------------------------===//

LogicalResult ReshapeOp::verify() {
  RankedTensorType x = getX().getType(), result = getType();
  if (x.getElementType() != result.getElementType()) // C1
    return emitOpError("changes the element type from ")
           << x.getElementType() << " to " << result.getElementType();
  int64_t from = numElements(x.getShape()), to = numElements(result.getShape());
  if (!sizesAgree(from, to)) // C2
    return emitOpError("reshapes ") << from << " elements into " << to;
  return success();
}

LogicalResult TransposeOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  ArrayRef<int64_t> perm = adaptor.getPermutation();
  SmallVector<bool> seen(x.getRank(), false);
  bool valid = static_cast<int64_t>(perm.size()) == x.getRank();
  for (int64_t p : perm) {
    valid = valid && inRange(p, x.getRank()) && !seen[p];
    if (valid)
      seen[p] = true;
  }
  if (!valid) // C1
    return fail<TransposeOp>(loc, "needs a permutation of [0, ", x.getRank(),
                             "), found [", perm, "]");
  SmallVector<int64_t> shape;
  for (int64_t p : perm)
    shape.push_back(x.getDimSize(p));
  types.push_back(
      RankedTensorType::get(shape, x.getElementType(), x.getEncoding()));
  return success();
}

LogicalResult SliceOp::inferReturnTypes(MLIRContext *,
                                        std::optional<Location> loc,
                                        Adaptor adaptor,
                                        SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  ArrayRef<int64_t> start = adaptor.getStart(), limit = adaptor.getLimit(),
                    stride = adaptor.getStride();
  int64_t rank = x.getRank();
  if (static_cast<int64_t>(start.size()) != rank ||
      static_cast<int64_t>(limit.size()) != rank ||
      static_cast<int64_t>(stride.size()) != rank) // C1
    return fail<SliceOp>(loc, "needs start, limit and stride with ", rank,
                         " entries each, found ", start.size(), ", ",
                         limit.size(), " and ", stride.size());
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t size = x.getDimSize(d);
    if (start[d] < 0 || start[d] > limit[d] ||
        (size != kDynamic && limit[d] > size)) // C2
      return fail<SliceOp>(loc, "slices [", start[d], ", ", limit[d],
                           ") of dimension ", d, " of size ", size);
    if (stride[d] < 1) // C3
      return fail<SliceOp>(loc, "needs strides >= 1, found ", stride[d],
                           " for dimension ", d);
    shape.push_back((limit[d] - start[d] + stride[d] - 1) / stride[d]);
  }
  types.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}

LogicalResult ConcatOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  ValueRange inputs = adaptor.getInputs();
  if (inputs.empty()) // C1
    return fail<ConcatOp>(loc, "needs at least one input");
  RankedTensorType first = tensorOf(inputs[0]);
  int64_t dim = adaptor.getDim();
  if (!inRange(dim, first.getRank())) // C3
    return fail<ConcatOp>(loc, "concatenates along dim ", dim, ", outside [0, ",
                          first.getRank(), ")");
  SmallVector<int64_t> shape(first.getShape());
  for (Value input : inputs.drop_front()) {
    RankedTensorType t = tensorOf(input);
    if (t.getRank() != first.getRank() ||
        t.getElementType() != first.getElementType()) // C2
      return fail<ConcatOp>(loc,
                            "needs inputs of one rank and element type, found ",
                            first, " and ", t);
    for (int64_t d = 0; d < t.getRank(); ++d) {
      if (d == dim)
        shape[d] = (shape[d] == kDynamic || t.getDimSize(d) == kDynamic)
                       ? kDynamic
                       : shape[d] + t.getDimSize(d);
      else if (!sizesAgree(shape[d], t.getDimSize(d))) // C4
        return fail<ConcatOp>(loc, "inputs ", first, " and ", t,
                              " differ in dimension ", d);
    }
  }
  types.push_back(RankedTensorType::get(shape, first.getElementType()));
  return success();
}

LogicalResult BroadcastOp::verify() {
  RankedTensorType x = getX().getType(), result = getType();
  ArrayRef<int64_t> dims = getDims();
  if (x.getElementType() != result.getElementType()) // C1
    return emitOpError("changes the element type from ")
           << x.getElementType() << " to " << result.getElementType();
  if (static_cast<int64_t>(dims.size()) != x.getRank()) // C2
    return emitOpError("needs one entry in dims per operand dimension (")
           << x.getRank() << "), found " << dims.size();
  for (auto [i, dim] : llvm::enumerate(dims)) {
    if (!inRange(dim, result.getRank()) || (i > 0 && dim <= dims[i - 1])) // C3
      return emitOpError("needs dims strictly increasing in [0, ")
             << result.getRank() << "), found " << dim << " at position " << i;
    int64_t from = x.getDimSize(i), to = result.getDimSize(dim);
    if (from != 1 && !sizesAgree(from, to)) // C4
      return emitOpError("broadcasts operand dimension ")
             << i << " of size " << from << " into result dimension " << dim
             << " of size " << to;
  }
  return success();
}

/// Shape `weft.gather` returns for a table of `table` shape, indices of
/// `indices` shape, along `axis` (assumed valid).
static SmallVector<int64_t>
gatherShape(ArrayRef<int64_t> table, ArrayRef<int64_t> indices, int64_t axis) {
  SmallVector<int64_t> shape(table.take_front(axis));
  shape.append(indices.begin(), indices.end());
  shape.append(table.begin() + axis + 1, table.end());
  return shape;
}

LogicalResult GatherOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  RankedTensorType table = tensorOf(adaptor.getTable());
  int64_t axis = adaptor.getAxis();
  if (!inRange(axis, table.getRank())) // C1
    return fail<GatherOp>(loc, "gathers along axis ", axis, ", outside [0, ",
                          table.getRank(), ")");
  types.push_back(RankedTensorType::get(
      gatherShape(table.getShape(), tensorOf(adaptor.getIndices()).getShape(),
                  axis),
      table.getElementType()));
  return success();
}

LogicalResult ScatterAddOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  RankedTensorType base = tensorOf(adaptor.getBase());
  RankedTensorType updates = tensorOf(adaptor.getUpdates());
  int64_t axis = adaptor.getAxis();
  if (!inRange(axis, base.getRank())) // C1
    return fail<ScatterAddOp>(loc, "scatters along axis ", axis,
                              ", outside [0, ", base.getRank(), ")");
  SmallVector<int64_t> expected = gatherShape(
      base.getShape(), tensorOf(adaptor.getIndices()).getShape(), axis);
  if (!shapesAgree(expected, updates.getShape())) // C2
    return fail<ScatterAddOp>(loc, "needs updates of shape [", expected,
                              "], found ", updates);
  if (updates.getElementType() != base.getElementType()) // C3
    return fail<ScatterAddOp>(loc, "needs updates of element type ",
                              base.getElementType(), ", found ",
                              updates.getElementType());
  types.push_back(base);
  return success();
}

LogicalResult IotaOp::verify() {
  if (!inRange(getDim(), getType().getRank())) // C1
    return emitOpError("counts along dim ")
           << getDim() << ", outside [0, " << getType().getRank() << ")";
  return success();
}

LogicalResult ConstantOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  auto type = dyn_cast<RankedTensorType>(adaptor.getValue().getType());
  if (!type || !type.hasStaticShape()) // C1
    return fail<ConstantOp>(loc,
                            "needs a statically shaped tensor value, found ",
                            adaptor.getValue().getType());
  types.push_back(type);
  return success();
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

//===----------------------------------------------------------------------===//
// Transformer composites
//===----------------------------------------------------------------------===//

template <typename OpT>
static LogicalResult verifyNormParam(std::optional<Location> loc,
                                     RankedTensorType x, Value param,
                                     StringRef name) {
  RankedTensorType t = tensorOf(param);
  if (t.getRank() != 1 ||
      !sizesAgree(t.getDimSize(0), x.getShape().back())) // C2
    return fail<OpT>(loc, "needs ", name, " of shape [", x.getShape().back(),
                     "], found ", t);
  if (t.getElementType() != x.getElementType()) // C3
    return fail<OpT>(loc, "needs ", name, " of element type ",
                     x.getElementType(), ", found ", t.getElementType());
  return success();
}

template <typename OpT>
static LogicalResult inferNorm(std::optional<Location> loc,
                               typename OpT::Adaptor adaptor,
                               SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  if (x.getRank() < 1) // C1
    return fail<OpT>(loc, "needs x of rank at least 1");
  if (failed(verifyNormParam<OpT>(loc, x, adaptor.getWeight(), "weight")))
    return failure();
  if constexpr (std::is_same_v<OpT, LayerNormOp>)
    if (Value bias = adaptor.getBias())
      if (failed(verifyNormParam<OpT>(loc, x, bias, "bias")))
        return failure();
  if (adaptor.getEpsilon().convertToDouble() < 0) // C4
    return fail<OpT>(loc, "needs epsilon >= 0, found ",
                     adaptor.getEpsilon().convertToDouble());
  types.push_back(x);
  return success();
}

LogicalResult RmsNormOp::inferReturnTypes(MLIRContext *,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  return inferNorm<RmsNormOp>(loc, adaptor, types);
}

/// A norm's gradient op: the norm's constraints, and grad of x's type (C5).
template <typename OpT>
static LogicalResult inferNormGrad(std::optional<Location> loc,
                                   typename OpT::Adaptor adaptor,
                                   SmallVectorImpl<Type> &types) {
  if (failed(inferNorm<OpT>(loc, adaptor, types)))
    return failure();
  if (tensorOf(adaptor.getGrad()) != types.front()) // C5
    return fail<OpT>(loc, "needs grad of x's type ", types.front(), ", found ",
                     tensorOf(adaptor.getGrad()));
  return success();
}

LogicalResult RmsNormGradOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  return inferNormGrad<RmsNormGradOp>(loc, adaptor, types);
}

LogicalResult LayerNormGradOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  return inferNormGrad<LayerNormGradOp>(loc, adaptor, types);
}

LogicalResult LayerNormOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  return inferNorm<LayerNormOp>(loc, adaptor, types);
}

LogicalResult RopeOp::inferReturnTypes(MLIRContext *,
                                       std::optional<Location> loc,
                                       Adaptor adaptor,
                                       SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  RankedTensorType positions = tensorOf(adaptor.getPositions());
  if (x.getRank() != 4) // C1
    return fail<RopeOp>(
        loc, "needs x of rank 4 [batch, seq, heads, head_dim], found ", x);
  if (positions.getRank() != 2 ||
      !shapesAgree(positions.getShape(), x.getShape().take_front(2))) // C2
    return fail<RopeOp>(loc, "needs positions of shape [", x.getDimSize(0),
                        ", ", x.getDimSize(1), "], found ", positions);
  int64_t headDim = x.getDimSize(3);
  if (headDim != kDynamic && headDim % 2 != 0) // C3
    return fail<RopeOp>(loc, "needs an even head_dim, found ", headDim);
  if (!(adaptor.getTheta().convertToDouble() > 0)) // C4
    return fail<RopeOp>(loc, "needs theta > 0, found ",
                        adaptor.getTheta().convertToDouble());
  if (std::optional<ArrayRef<double>> frequencies =
          adaptor.getFrequencies()) { // C5
    if (headDim != kDynamic &&
        static_cast<int64_t>(frequencies->size()) != headDim / 2)
      return fail<RopeOp>(loc, "needs head_dim / 2 = ", headDim / 2,
                          " frequencies, found ", frequencies->size());
    for (double f : *frequencies)
      if (!(f > 0) || !std::isfinite(f))
        return fail<RopeOp>(loc, "needs finite positive frequencies, found ",
                            f);
  }
  types.push_back(x);
  return success();
}

namespace {
/// Attention's C1–C11 on `adaptor` (of weft.attention or weft.attention_grad,
/// errors named after OpT); the attention's result type on success.
template <typename OpT, typename AdaptorT>
FailureOr<RankedTensorType> inferAttention(std::optional<Location> loc,
                                           AdaptorT adaptor) {
  RankedTensorType q = tensorOf(adaptor.getQ()), k = tensorOf(adaptor.getK()),
                   v = tensorOf(adaptor.getV());
  if (q.getRank() != 4 || k.getRank() != 4 || v.getRank() != 4) // C1
    return fail<OpT>(
        loc, "needs q, k and v of rank 4 [batch, seq, heads, head_dim], found ",
        q, ", ", k, " and ", v);
  if (!sizesAgree(q.getDimSize(0), k.getDimSize(0)) ||
      !sizesAgree(q.getDimSize(0), v.getDimSize(0))) // C2
    return fail<OpT>(loc, "needs one batch size in q, k and v, found ", q, ", ",
                     k, " and ", v);
  if (!shapesAgree(k.getShape().take_front(3),
                   v.getShape().take_front(3))) // C3
    return fail<OpT>(
        loc, "needs k and v with the same sequence length and heads, found ", k,
        " and ", v);
  if (!sizesAgree(q.getDimSize(3), k.getDimSize(3))) // C4
    return fail<OpT>(loc, "needs q and k with the same head_dim, found ",
                     q.getDimSize(3), " and ", k.getDimSize(3));
  int64_t heads = q.getDimSize(2), kvHeads = k.getDimSize(2);
  if (heads != kDynamic && kvHeads != kDynamic &&
      (kvHeads == 0 || heads % kvHeads != 0)) // C5
    return fail<OpT>(loc, "needs query heads (", heads,
                     ") to be a multiple of key/value heads (", kvHeads, ")");
  if (q.getElementType() != k.getElementType() ||
      q.getElementType() != v.getElementType()) // C6
    return fail<OpT>(loc, "needs q, k and v of one element type, found ",
                     q.getElementType(), ", ", k.getElementType(), " and ",
                     v.getElementType());
  AttentionKind kind = adaptor.getKind();
  int64_t sq = q.getDimSize(1), skv = k.getDimSize(1);
  if (Value maskValue = adaptor.getMask()) { // C7
    if (kind != AttentionKind::mask)
      return fail<OpT>(loc, "takes a mask only with kind 'mask', not '",
                       stringifyAttentionKind(kind), "'");
    RankedTensorType mask = tensorOf(maskValue);
    bool ok = (mask.getRank() == 3 &&
               shapesAgree(mask.getShape(), {q.getDimSize(0), sq, skv})) ||
              (mask.getRank() == 2 && shapesAgree(mask.getShape(), {sq, skv}));
    if (!ok)
      return fail<OpT>(loc, "needs a mask of shape [", q.getDimSize(0), ", ",
                       sq, ", ", skv, "] or [", sq, ", ", skv, "], found ",
                       mask);
  } else if (kind == AttentionKind::mask) {
    return fail<OpT>(loc, "of kind 'mask' needs a mask operand");
  }
  if (Value slopesValue = adaptor.getAlibiSlopes()) { // C8
    if (kind != AttentionKind::alibi)
      return fail<OpT>(loc, "takes alibi slopes only with kind 'alibi', not '",
                       stringifyAttentionKind(kind), "'");
    RankedTensorType slopes = tensorOf(slopesValue);
    if (slopes.getRank() != 1 || !sizesAgree(slopes.getDimSize(0), heads))
      return fail<OpT>(loc, "needs alibi slopes of shape [", heads, "], found ",
                       slopes);
  } else if (kind == AttentionKind::alibi) {
    return fail<OpT>(loc, "of kind 'alibi' needs an alibi slopes operand");
  }
  if ((kind == AttentionKind::causal || kind == AttentionKind::alibi) &&
      sq != kDynamic && skv != kDynamic && sq > skv) // C9
    return fail<OpT>(loc, "with a causal mask needs at most as many queries (",
                     sq, ") as keys (", skv, ")");
  if (FloatAttr scale = adaptor.getScaleAttr();
      scale && !(scale.getValueAsDouble() > 0)) // C10
    return fail<OpT>(loc, "needs a positive scale, found ",
                     scale.getValueAsDouble());
  if (std::optional<int64_t> window = adaptor.getWindow()) { // C11
    if (*window < 1)
      return fail<OpT>(loc, "needs a positive window, found ", *window);
    if (kind != AttentionKind::causal && kind != AttentionKind::alibi)
      return fail<OpT>(
          loc, "takes a window only with kind 'causal' or 'alibi', not '",
          stringifyAttentionKind(kind), "'");
  }
  return RankedTensorType::get({q.getDimSize(0), sq, heads, v.getDimSize(3)},
                               q.getElementType());
}

/// Attention's log-sum-exp per query row, [batch, Hq, Sq] f32, for its
/// result type [batch, Sq, Hq, Dv].
RankedTensorType lseType(RankedTensorType result) {
  return RankedTensorType::get(
      {result.getDimSize(0), result.getDimSize(2), result.getDimSize(1)},
      Float32Type::get(result.getContext()));
}

double scaleOrDefault(std::optional<APFloat> scale, RankedTensorType q) {
  if (scale)
    return scale->convertToDouble();
  return 1.0 / std::sqrt(static_cast<double>(q.getDimSize(3)));
}
} // namespace

LogicalResult AttentionOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  FailureOr<RankedTensorType> result =
      inferAttention<AttentionOp>(loc, adaptor);
  if (failed(result))
    return failure();
  types.push_back(*result);
  if (adaptor.getWithLse())
    types.push_back(lseType(*result));
  return success();
}

LogicalResult AttentionGradOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  FailureOr<RankedTensorType> result =
      inferAttention<AttentionGradOp>(loc, adaptor); // C1
  if (failed(result))
    return failure();
  for (auto [name, value] : {std::pair{"out", adaptor.getOut()},
                             std::pair{"dout", adaptor.getDout()}})
    if (value.getType() != *result) // C2
      return fail<AttentionGradOp>(loc, "needs ", name, " of type ", *result,
                                   ", found ", value.getType());
  if (Value lse = adaptor.getLse(); lse && lse.getType() != lseType(*result))
    return fail<AttentionGradOp>(loc, "needs lse of type ", lseType(*result),
                                 ", found ", lse.getType()); // C3
  types.append({adaptor.getQ().getType(), adaptor.getK().getType(),
                adaptor.getV().getType()});
  return success();
}

double AttentionGradOp::getScaleOrDefault() {
  return scaleOrDefault(getScale(), getQ().getType());
}

double AttentionOp::getScaleOrDefault() {
  return scaleOrDefault(getScale(), getQ().getType());
}

namespace {
/// (query, key) pairs that attend per batch element and head.
int64_t attendingPairs(AttentionKind kind, RankedTensorType q,
                       RankedTensorType k, std::optional<int64_t> window) {
  int64_t sq = q.getDimSize(1), skv = k.getDimSize(1);
  if (sq == kDynamic || skv == kDynamic)
    return kDynamic;
  if (kind != AttentionKind::causal && kind != AttentionKind::alibi)
    return sq * skv;
  const int64_t offset = skv - sq; // position of query 0
  if (!window)
    return sq * offset + sq * (sq + 1) / 2;
  // Query at position p attends min(p + 1, window) keys: sum over
  // p in [offset, skv).
  auto attendedUpTo = [&](int64_t end) { // Σ_{p < end} min(p + 1, W)
    const int64_t ramp = std::min(end, *window);
    return ramp * (ramp + 1) / 2 + (end - ramp) * *window;
  };
  return attendedUpTo(skv) - attendedUpTo(offset);
}
} // namespace

int64_t AttentionOp::getNumAttendingPairs() {
  return attendingPairs(getKind(), getQ().getType(), getK().getType(),
                        getWindow());
}

int64_t AttentionGradOp::getNumAttendingPairs() {
  return attendingPairs(getKind(), getQ().getType(), getK().getType(),
                        getWindow());
}

LogicalResult MoeGateOp::inferReturnTypes(MLIRContext *context,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  RankedTensorType logits = tensorOf(adaptor.getLogits());
  if (logits.getRank() < 1) // C1
    return fail<MoeGateOp>(loc, "needs logits of rank at least 1");
  const int64_t experts = logits.getShape().back(), k = adaptor.getTopK();
  if (k < 1 || (experts != kDynamic && k > experts)) // C2
    return fail<MoeGateOp>(loc, "needs 1 <= top_k <= ", experts,
                           " experts, found ", k);
  SmallVector<int64_t> shape(logits.getShape());
  shape.back() = k;
  types.push_back(RankedTensorType::get(shape, logits.getElementType()));
  types.push_back(RankedTensorType::get(shape, IntegerType::get(context, 64)));
  return success();
}

LogicalResult MoeDispatchOp::inferReturnTypes(MLIRContext *context,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX()),
                   experts = tensorOf(adaptor.getExperts());
  if (x.getRank() != 2 || experts.getRank() != 2 ||
      !sizesAgree(x.getDimSize(0), experts.getDimSize(0))) // C1
    return fail<MoeDispatchOp>(
        loc, "needs x [tokens, hidden] and experts [tokens, k], found ", x,
        " and ", experts);
  if (adaptor.getNumExperts() < 1) // C2
    return fail<MoeDispatchOp>(loc, "needs num_experts >= 1, found ",
                               adaptor.getNumExperts());
  int64_t t = experts.getDimSize(0), k = experts.getDimSize(1);
  int64_t rows = t == kDynamic || k == kDynamic ? kDynamic : t * k;
  types.push_back(
      RankedTensorType::get({rows, x.getDimSize(1)}, x.getElementType()));
  types.push_back(RankedTensorType::get({adaptor.getNumExperts() + 1},
                                        IntegerType::get(context, 64)));
  return success();
}

LogicalResult GroupedLinearOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX()),
                   offsets = tensorOf(adaptor.getOffsets());
  const int64_t groups = adaptor.getWeights().size();
  if (x.getRank() != 2 || offsets.getRank() != 1 || groups == 0 ||
      !sizesAgree(offsets.getDimSize(0), groups + 1)) // C1
    return fail<GroupedLinearOp>(loc, "needs x [rows, in] and offsets [",
                                 groups + 1, "], found ", x, " and ", offsets);
  RankedTensorType first = tensorOf(adaptor.getWeights().front());
  for (Value w : adaptor.getWeights()) {
    RankedTensorType weight = tensorOf(w);
    if (weight.getRank() != 2 ||
        !sizesAgree(weight.getDimSize(1), x.getDimSize(1)) ||
        !shapesAgree(weight.getShape(), first.getShape())) // C2
      return fail<GroupedLinearOp>(loc, "needs every weight of shape [out, ",
                                   x.getDimSize(1), "] like the first (", first,
                                   "), found ", weight);
    if (weight.getElementType() != x.getElementType()) // C3
      return fail<GroupedLinearOp>(loc, "needs weights of x's element type ",
                                   x.getElementType(), ", found ", weight);
  }
  types.push_back(RankedTensorType::get({x.getDimSize(0), first.getDimSize(0)},
                                        x.getElementType()));
  return success();
}

LogicalResult GradNormOp::inferReturnTypes(MLIRContext *context,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  if (adaptor.getGrads().empty()) // C1
    return fail<GradNormOp>(loc, "needs at least one gradient");
  MeshAttr mesh = adaptor.getMeshAttr();
  ArrayAttr axes = adaptor.getAxesAttr();
  if (static_cast<bool>(mesh) != static_cast<bool>(axes))
    return fail<GradNormOp>(loc, "needs both a mesh and its axes, or neither");
  if (mesh && failed(verifyGroup<GradNormOp>(loc, mesh, axes))) // C2
    return failure();
  types.push_back(RankedTensorType::get({}, Float32Type::get(context)));
  return success();
}

LogicalResult AdamWUpdateOp::inferReturnTypes(MLIRContext *,
                                              std::optional<Location> loc,
                                              Adaptor adaptor,
                                              SmallVectorImpl<Type> &types) {
  RankedTensorType param = tensorOf(adaptor.getParam());
  for (Value v :
       {adaptor.getGrad(), adaptor.getExpAvg(), adaptor.getExpAvgSq()})
    if (!shapesAgree(tensorOf(v).getShape(), param.getShape())) // C1
      return fail<AdamWUpdateOp>(loc,
                                 "needs grad and moments of the "
                                 "parameter's shape ",
                                 param, ", found ", tensorOf(v));
  types.append(3, param);
  if (adaptor.getRoundToBf16())
    types.push_back(param.clone(BFloat16Type::get(param.getContext())));
  return success();
}

LogicalResult MoeCombineOp::inferReturnTypes(MLIRContext *,
                                             std::optional<Location> loc,
                                             Adaptor adaptor,
                                             SmallVectorImpl<Type> &types) {
  RankedTensorType rows = tensorOf(adaptor.getRows()),
                   weights = tensorOf(adaptor.getWeights()),
                   experts = tensorOf(adaptor.getExperts());
  int64_t t = weights.getRank() == 2 ? weights.getDimSize(0) : kDynamic,
          k = weights.getRank() == 2 ? weights.getDimSize(1) : kDynamic;
  if (rows.getRank() != 2 || weights.getRank() != 2 ||
      !shapesAgree(weights.getShape(), experts.getShape()) ||
      (t != kDynamic && k != kDynamic &&
       !sizesAgree(rows.getDimSize(0), t * k))) // C1
    return fail<MoeCombineOp>(
        loc,
        "needs rows [tokens * k, hidden], weights and experts [tokens, "
        "k], found ",
        rows, ", ", weights, " and ", experts);
  if (rows.getElementType() != weights.getElementType()) // C2
    return fail<MoeCombineOp>(loc,
                              "needs rows and weights of one element type, "
                              "found ",
                              rows.getElementType(), " and ",
                              weights.getElementType());
  if (adaptor.getNumExperts() < 1) // C3
    return fail<MoeCombineOp>(loc, "needs num_experts >= 1, found ",
                              adaptor.getNumExperts());
  types.push_back(
      RankedTensorType::get({t, rows.getDimSize(1)}, rows.getElementType()));
  return success();
}

LogicalResult CrossEntropyOp::inferReturnTypes(MLIRContext *context,
                                               std::optional<Location> loc,
                                               Adaptor adaptor,
                                               SmallVectorImpl<Type> &types) {
  RankedTensorType logits = tensorOf(adaptor.getLogits());
  RankedTensorType labels = tensorOf(adaptor.getLabels());
  if (logits.getRank() < 1) // C1
    return fail<CrossEntropyOp>(loc, "needs logits of rank at least 1");
  if (!shapesAgree(labels.getShape(), logits.getShape().drop_back())) // C2
    return fail<CrossEntropyOp>(loc, "needs labels of shape [",
                                logits.getShape().drop_back(), "], found ",
                                labels);
  Type f32 = Float32Type::get(context);
  if (adaptor.getReduction() == LossReduction::none)
    types.push_back(RankedTensorType::get(labels.getShape(), f32));
  else
    types.push_back(RankedTensorType::get({}, f32));
  return success();
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

LogicalResult AllGatherOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  FailureOr<int64_t> group =
      verifyGroup<AllGatherOp>(loc, adaptor.getMesh(), adaptor.getAxes());
  if (failed(group))
    return failure();
  RankedTensorType x = tensorOf(adaptor.getX());
  int64_t dim = adaptor.getDim();
  if (!inRange(dim, x.getRank())) // C2
    return fail<AllGatherOp>(loc, "gathers along dim ", dim, ", outside [0, ",
                             x.getRank(), ")");
  SmallVector<int64_t> shape(x.getShape());
  shape[dim] = multiplySize(shape[dim], *group);
  types.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}

namespace {
/// reduce_scatter and all_slice: the operand split along `dim` over the
/// group (C1-C3), `verb` naming what the op does along it.
template <typename OpT>
LogicalResult inferSplit(std::optional<Location> loc,
                         typename OpT::Adaptor adaptor, const char *verb,
                         SmallVectorImpl<Type> &types) {
  FailureOr<int64_t> group =
      verifyGroup<OpT>(loc, adaptor.getMesh(), adaptor.getAxes());
  if (failed(group))
    return failure();
  RankedTensorType x = tensorOf(adaptor.getX());
  int64_t dim = adaptor.getDim();
  if (!inRange(dim, x.getRank())) // C2
    return fail<OpT>(loc, verb, " along dim ", dim, ", outside [0, ",
                     x.getRank(), ")");
  SmallVector<int64_t> shape(x.getShape());
  if (shape[dim] != kDynamic && shape[dim] % *group != 0) // C3
    return fail<OpT>(loc, "splits dim ", dim, " of size ", shape[dim],
                     " over a group of ", *group, " ranks");
  shape[dim] = divideSize(shape[dim], *group);
  types.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}
} // namespace

LogicalResult ReduceScatterOp::inferReturnTypes(MLIRContext *,
                                                std::optional<Location> loc,
                                                Adaptor adaptor,
                                                SmallVectorImpl<Type> &types) {
  return inferSplit<ReduceScatterOp>(loc, adaptor, "scatters", types);
}

LogicalResult AllSliceOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  return inferSplit<AllSliceOp>(loc, adaptor, "slices", types);
}

LogicalResult AllReduceOp::inferReturnTypes(MLIRContext *,
                                            std::optional<Location> loc,
                                            Adaptor adaptor,
                                            SmallVectorImpl<Type> &types) {
  if (failed(
          verifyGroup<AllReduceOp>(loc, adaptor.getMesh(), adaptor.getAxes())))
    return failure();
  types.push_back(adaptor.getX().getType());
  return success();
}

LogicalResult AllToAllOp::inferReturnTypes(MLIRContext *,
                                           std::optional<Location> loc,
                                           Adaptor adaptor,
                                           SmallVectorImpl<Type> &types) {
  FailureOr<int64_t> group =
      verifyGroup<AllToAllOp>(loc, adaptor.getMesh(), adaptor.getAxes());
  if (failed(group))
    return failure();
  RankedTensorType x = tensorOf(adaptor.getX());
  int64_t split = adaptor.getSplitDim(), concat = adaptor.getConcatDim();
  if (!inRange(split, x.getRank()) || !inRange(concat, x.getRank())) // C2
    return fail<AllToAllOp>(loc, "needs split and concat dims in [0, ",
                            x.getRank(), "), found ", split, " and ", concat);
  SmallVector<int64_t> shape(x.getShape());
  if (shape[split] != kDynamic && shape[split] % *group != 0) // C3
    return fail<AllToAllOp>(loc, "splits dim ", split, " of size ",
                            shape[split], " over a group of ", *group,
                            " ranks");
  shape[split] = divideSize(shape[split], *group);
  shape[concat] = multiplySize(shape[concat], *group);
  types.push_back(RankedTensorType::get(shape, x.getElementType()));
  return success();
}

template <typename OpT> static LogicalResult verifyPointToPoint(OpT op) {
  FailureOr<int64_t> group =
      verifyGroup<OpT>(op.getLoc(), op.getMesh(), op.getAxes());
  if (failed(group))
    return failure();
  if (op.getOffset() % *group == 0) // C2
    return op.emitOpError("has offset ")
           << op.getOffset() << ", a multiple of the group size " << *group
           << ": a rank would exchange with itself";
  return success();
}

LogicalResult SendOp::verify() { return verifyPointToPoint(*this); }
LogicalResult RecvOp::verify() { return verifyPointToPoint(*this); }

LogicalResult CollectiveBroadcastOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &types) {
  FailureOr<int64_t> group = verifyGroup<CollectiveBroadcastOp>(
      loc, adaptor.getMesh(), adaptor.getAxes());
  if (failed(group))
    return failure();
  if (!inRange(adaptor.getRoot(), *group)) // C2
    return fail<CollectiveBroadcastOp>(loc, "has root ", adaptor.getRoot(),
                                       ", outside the group [0, ", *group, ")");
  types.push_back(adaptor.getX().getType());
  return success();
}

//===----------------------------------------------------------------------===//
// Quantization
//===----------------------------------------------------------------------===//

/// Checks bits and block size (C1, C2) and that `numel` splits into blocks
/// (C3). Returns (bytes of values, number of blocks).
template <typename OpT>
static FailureOr<std::pair<int64_t, int64_t>>
quantizedSizes(std::optional<Location> loc, int64_t numel, int64_t blockSize,
               int64_t bits) {
  if (bits != 8 && bits != 4) {
    (void)fail<OpT>(loc, "supports 8 or 4 bits, found ", bits);
    return failure();
  }
  if (blockSize < 1 || (bits == 4 && blockSize % 2 != 0)) {
    (void)fail<OpT>(loc, "needs a block_size >= 1 (even for 4 bits), found ",
                    blockSize);
    return failure();
  }
  if (numel == kDynamic)
    return std::make_pair(kDynamic, kDynamic);
  if (numel % blockSize != 0) {
    (void)fail<OpT>(loc, "cannot split ", numel, " elements into blocks of ",
                    blockSize);
    return failure();
  }
  return std::make_pair(numel * bits / 8, numel / blockSize);
}

LogicalResult QuantizeBlockwiseOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> loc, Adaptor adaptor,
    SmallVectorImpl<Type> &types) {
  auto sizes = quantizedSizes<QuantizeBlockwiseOp>(
      loc, numElements(tensorOf(adaptor.getX()).getShape()),
      adaptor.getBlockSize(), adaptor.getBits());
  if (failed(sizes))
    return failure();
  types.push_back(
      RankedTensorType::get({sizes->first}, IntegerType::get(context, 8)));
  types.push_back(
      RankedTensorType::get({sizes->second}, Float32Type::get(context)));
  return success();
}

LogicalResult DequantizeBlockwiseOp::verify() {
  auto sizes = quantizedSizes<DequantizeBlockwiseOp>(
      getLoc(), numElements(getType().getShape()), getBlockSize(), getBits());
  if (failed(sizes))
    return failure();
  RankedTensorType values = getValues().getType(),
                   scales = getScales().getType();
  if (values.getRank() != 1 || scales.getRank() != 1 ||
      !sizesAgree(values.getDimSize(0), sizes->first) ||
      !sizesAgree(scales.getDimSize(0), sizes->second)) // C3
    return emitOpError("needs values of shape [")
           << sizes->first << "] and scales of shape [" << sizes->second
           << "] for " << getType() << ", found " << values << " and "
           << scales;
  return success();
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

LogicalResult OffloadOp::inferReturnTypes(MLIRContext *context,
                                          std::optional<Location> loc,
                                          Adaptor adaptor,
                                          SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  if (x.getEncoding()) // C1
    return fail<OffloadOp>(loc, "needs a tensor in device memory, found ", x);
  types.push_back(RankedTensorType::get(x.getShape(), x.getElementType(),
                                        HostMemoryAttr::get(context)));
  return success();
}

LogicalResult ReloadOp::inferReturnTypes(MLIRContext *,
                                         std::optional<Location> loc,
                                         Adaptor adaptor,
                                         SmallVectorImpl<Type> &types) {
  RankedTensorType x = tensorOf(adaptor.getX());
  if (!isHostTensor(x)) // C1
    return fail<ReloadOp>(
        loc, "needs a tensor in host memory (#weft.host), found ", x);
  types.push_back(RankedTensorType::get(x.getShape(), x.getElementType()));
  return success();
}

//===----------------------------------------------------------------------===//
// Scheduling
//===----------------------------------------------------------------------===//

YieldOp FusionGroupOp::getYield() {
  return cast<YieldOp>(getBody().front().getTerminator());
}

int64_t FusionGroupOp::getRowLength() {
  auto type = cast<RankedTensorType>(getResult(0).getType());
  return type.getRank() == 0 ? 1 : type.getShape().back();
}

SmallVector<Value> FusionGroupOp::getRowScratchValues() {
  auto isBf16 = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getElementType().isBF16();
  };
  SmallVector<Value> scratch;
  ValueRange yielded = getYield().getValues();
  for (Operation &op : getBody().front().without_terminator())
    for (Value result : op.getResults())
      if (!llvm::is_contained(yielded, result) || isBf16(result))
        scratch.push_back(result);
  for (BlockArgument input : getBody().front().getArguments())
    if (isBf16(input))
      scratch.push_back(input);
  return scratch;
}

int64_t FusionGroupOp::getScratchRowBytes() {
  return (getRowLength() * 8 + 63) / 64 * 64;
}

int64_t FusionGroupOp::getScratchBytesPerThread() {
  return getScratchRowBytes() *
         static_cast<int64_t>(getRowScratchValues().size());
}

LogicalResult FusionGroupOp::verify() {
  Block &body = getBody().front();
  if (body.getArgumentTypes() != getInputs().getTypes()) // C1
    return emitOpError("needs body arguments of the input types");
  if (getYield().getValues().getTypes() != getResultTypes()) // C2
    return emitOpError("yields values whose types differ from its results");
  if (getNumResults() == 0) // C3
    return emitOpError("needs at least one result");
  return success();
}

#include "ir/WeftInterfaces.cpp.inc"
#define GET_OP_CLASSES
#include "ir/WeftOps.cpp.inc"
