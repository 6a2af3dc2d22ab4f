// Ops of the weft dialect. Each description ends with its Constraints, which
// the op's type inference or verifier checks one by one (tests/lit/ir/*_invalid.mlir).
#ifndef WEFT_OPS_TD
#define WEFT_OPS_TD

include "ir/WeftDialect.td"
include "ir/WeftAttrs.td"
include "ir/WeftInterfaces.td"
include "mlir/Interfaces/ControlFlowInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/BuiltinAttributeInterfaces.td"
include "mlir/IR/CommonAttrConstraints.td"

def Weft_FloatTensor : RankedTensorOf<[AnyFloat]>;
def Weft_IntTensor : RankedTensorOf<[AnySignlessInteger]>;
def Weft_NumericTensor : RankedTensorOf<[AnyFloat, AnySignlessInteger]>;
def Weft_PredTensor : RankedTensorOf<[I1]>;

// A signless i64 attribute read as a signed int64_t (dims, offsets, ignore_index).
def Weft_I64Attr : TypedSignlessIntegerAttrBase<I64, "int64_t", "64-bit integer attribute"> {
  let convertFromStorage = "$_self.getValue().getSExtValue()";
}

// An op with a cost, a sharding rule and a fusion kind; `fusion` names the
// FusionKind.
class Weft_ComputeOp<string mnemonic, string fusion, list<Trait> traits = []>
    : Weft_Op<mnemonic, !listconcat(traits, [
          DeclareOpInterfaceMethods<Weft_CostOpInterface>,
          DeclareOpInterfaceMethods<Weft_ShardingRuleOpInterface>,
          Weft_FusibleOpInterface])> {
  code fusionDecl = "::weft::FusionKind getFusionKind() { return ::weft::FusionKind::" # fusion # "; }";
  let extraClassDeclaration = fusionDecl;
}

// An op whose result types follow from operands and attributes.
class Weft_InferredOp<string mnemonic, string fusion, list<Trait> traits = []>
    : Weft_ComputeOp<mnemonic, fusion, !listconcat(traits, [InferTypeOpAdaptor])>;

//===----------------------------------------------------------------------===//
// Linear algebra
//===----------------------------------------------------------------------===//

def Weft_MatmulOp : Weft_InferredOp<"matmul", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Batched matrix product";
  let description = [{
    `result[b..., m, n] = acc[b..., m, n] + sum_k lhs[b..., m, k] * rhs[b..., k, n]`,
    where `transpose_lhs` reads lhs as [b..., k, m] and `transpose_rhs` reads
    rhs as [b..., n, k]. A rank-2 rhs is shared by every batch. The
    accumulator `acc` is optional (zero without it); the product is added to
    it before rounding to the element type, and the result may be written over
    it where it is read last (a GEMM's beta = 1).

    Example:
    ```mlir
    %s = weft.matmul %q, %k {transpose_rhs}
        : (tensor<8x128x64xf32>, tensor<8x128x64xf32>) -> tensor<8x128x128xf32>
    %dw = weft.matmul %g, %x, acc %dw0 {transpose_lhs}
        : (tensor<16x32xf32>, tensor<16x64xf32>, tensor<32x64xf32>) -> tensor<32x64xf32>
    ```

    Constraints:
    - (C1) both operands have rank at least 2.
    - (C2) rhs has the rank of lhs, or rank 2.
    - (C3) the batch dimensions of lhs and rhs are equal.
    - (C4) the contracting dimensions are equal.
    - (C5) the element types are equal.
    - (C6) acc, when present, has the result's type.
  }];
  let arguments = (ins Weft_NumericTensor:$lhs, Weft_NumericTensor:$rhs,
                       Optional<Weft_NumericTensor>:$acc,
                       UnitAttr:$transpose_lhs, UnitAttr:$transpose_rhs);
  let results = (outs Weft_NumericTensor:$result);
  let builders = [
    OpBuilder<(ins "::mlir::Value":$lhs, "::mlir::Value":$rhs,
                   "bool":$transposeLhs, "bool":$transposeRhs), [{
      build($_builder, $_state, lhs, rhs, ::mlir::Value(), transposeLhs,
            transposeRhs);
    }]>
  ];
  let assemblyFormat = "$lhs `,` $rhs (`,` `acc` $acc^)? attr-dict `:` functional-type(operands, results)";
}

def Weft_LinearOp : Weft_InferredOp<"linear", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Fully connected layer with the PyTorch weight layout";
  let description = [{
    `result[..., o] = sum_i x[..., i] * weight[o, i] + bias[o]`, the weight
    stored [out_features, in_features] as in `torch.nn.Linear` and Hugging Face
    checkpoints; the bias is optional.

    Example:
    ```mlir
    %q = weft.linear %x, %wq : (tensor<1x16x256xf32>, tensor<256x256xf32>) -> tensor<1x16x256xf32>
    ```

    Constraints:
    - (C1) x has rank at least 1 and weight has rank 2.
    - (C2) the last dimension of x equals dimension 1 of weight.
    - (C3) bias, when present, has rank 1 and the size of dimension 0 of weight.
    - (C4) the element types are equal.
  }];
  let arguments = (ins Weft_FloatTensor:$x, Weft_FloatTensor:$weight,
                       Optional<Weft_FloatTensor>:$bias);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $weight (`,` $bias^)? attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

class Weft_ElementwiseOp<string mnemonic, list<Trait> traits = []>
    : Weft_ComputeOp<mnemonic, "Elementwise",
                     !listconcat(traits, [Pure, Elementwise])>;

class Weft_BinaryOp<string mnemonic, string formula, Type operandType>
    : Weft_ElementwiseOp<mnemonic, [SameOperandsAndResultType, InferTypeOpInterface,
                                    DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Elementwise " # mnemonic;
  let description = "`result[i] = " # formula # "` for every index i. Operands "
    # "are never broadcast implicitly: use `weft.broadcast` first.\n\n"
    # "Example:\n```mlir\n%z = weft." # mnemonic # " %x, %y : tensor<4x16xf32>\n```\n\n"
    # "Constraints:\n- (C1) both operands and the result have the same type "
    # "(trait SameOperandsAndResultType).\n";
  let arguments = (ins operandType:$lhs, operandType:$rhs);
  let results = (outs operandType:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($result)";
}

def Weft_AddOp : Weft_BinaryOp<"add", "lhs[i] + rhs[i]", Weft_NumericTensor>;
def Weft_SubOp : Weft_BinaryOp<"sub", "lhs[i] - rhs[i]", Weft_NumericTensor>;
def Weft_MulOp : Weft_BinaryOp<"mul", "lhs[i] * rhs[i]", Weft_NumericTensor>;
def Weft_DivOp : Weft_BinaryOp<"div", "lhs[i] / rhs[i]", Weft_NumericTensor>;
def Weft_MaxOp : Weft_BinaryOp<"max", "max(lhs[i], rhs[i])", Weft_NumericTensor>;
def Weft_MinOp : Weft_BinaryOp<"min", "min(lhs[i], rhs[i])", Weft_NumericTensor>;
def Weft_PowOp : Weft_BinaryOp<"pow", "lhs[i] ^ rhs[i]", Weft_FloatTensor>;

class Weft_UnaryOp<string mnemonic, string formula, Type operandType>
    : Weft_ElementwiseOp<mnemonic, [SameOperandsAndResultType, InferTypeOpInterface,
                                    DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Elementwise " # mnemonic;
  let description = "`result[i] = " # formula # "` for every index i.\n\n"
    # "Example:\n```mlir\n%y = weft." # mnemonic # " %x : tensor<4x16xf32>\n```\n\n"
    # "Constraints:\n- (C1) the operand and the result have the same type "
    # "(trait SameOperandsAndResultType).\n";
  let arguments = (ins operandType:$x);
  let results = (outs operandType:$result);
  let assemblyFormat = "$x attr-dict `:` type($result)";
}

def Weft_NegOp : Weft_UnaryOp<"neg", "-x[i]", Weft_NumericTensor>;
def Weft_AbsOp : Weft_UnaryOp<"abs", "|x[i]|", Weft_NumericTensor>;
def Weft_ExpOp : Weft_UnaryOp<"exp", "e^x[i]", Weft_FloatTensor>;
def Weft_LogOp : Weft_UnaryOp<"log", "ln(x[i])", Weft_FloatTensor>;
def Weft_TanhOp : Weft_UnaryOp<"tanh", "tanh(x[i])", Weft_FloatTensor>;
def Weft_SigmoidOp : Weft_UnaryOp<"sigmoid", "1 / (1 + e^-x[i])", Weft_FloatTensor>;
def Weft_SiluOp : Weft_UnaryOp<"silu", "x[i] * sigmoid(x[i])", Weft_FloatTensor>;
def Weft_RsqrtOp : Weft_UnaryOp<"rsqrt", "1 / sqrt(x[i])", Weft_FloatTensor>;
def Weft_SqrtOp : Weft_UnaryOp<"sqrt", "sqrt(x[i])", Weft_FloatTensor>;
def Weft_ErfOp : Weft_UnaryOp<"erf", "erf(x[i])", Weft_FloatTensor>;
def Weft_CosOp : Weft_UnaryOp<"cos", "cos(x[i])", Weft_FloatTensor>;
def Weft_SinOp : Weft_UnaryOp<"sin", "sin(x[i])", Weft_FloatTensor>;
def Weft_FloorOp : Weft_UnaryOp<"floor", "⌊x[i]⌋", Weft_FloatTensor>;
def Weft_CeilOp : Weft_UnaryOp<"ceil", "⌈x[i]⌉", Weft_FloatTensor>;

def Weft_GeluOp
    : Weft_ElementwiseOp<"gelu", [SameOperandsAndResultType, InferTypeOpInterface,
                                  DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Elementwise GELU";
  let description = [{
    `result[i] = x[i] * Φ(x[i])` with Φ the standard normal CDF
    (`approximation = none`, PyTorch's default), or its tanh approximation
    `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (`approximation = tanh`, as
    in GPT-2 and BLOOM).

    Example:
    ```mlir
    %y = weft.gelu %x approximation tanh : tensor<4x16xf32>
    ```

    Constraints:
    - (C1) the operand and the result have the same type (trait SameOperandsAndResultType).
  }];
  let arguments = (ins Weft_FloatTensor:$x,
      DefaultValuedAttr<Weft_GeluApproximationAttr, "::weft::GeluApproximation::none">:$approximation);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = "$x (`approximation` $approximation^)? attr-dict `:` type($result)";
}

def Weft_CompareOp
    : Weft_ElementwiseOp<"compare", [SameTypeOperands, InferTypeOpAdaptor]> {
  let summary = "Elementwise comparison";
  let description = [{
    `result[i] = lhs[i] <direction> rhs[i]` as an i1 tensor of the operands'
    shape. Floating-point comparisons are ordered (false on NaN) except `ne`.

    Example:
    ```mlir
    %m = weft.compare lt, %i, %j : tensor<16x16xi64>
    ```

    Constraints:
    - (C1) both operands have the same type (trait SameTypeOperands).
  }];
  let arguments = (ins Weft_CompareDirectionAttr:$direction,
                       Weft_NumericTensor:$lhs, Weft_NumericTensor:$rhs);
  let results = (outs Weft_PredTensor:$result);
  let assemblyFormat = "$direction `,` $lhs `,` $rhs attr-dict `:` type($lhs)";
}

def Weft_SelectOp
    : Weft_ElementwiseOp<"select", [AllTypesMatch<["on_true", "on_false", "result"]>,
                                    DeclareOpInterfaceMethods<InferTypeOpInterface>,
                                    DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Elementwise choice";
  let description = [{
    `result[i] = pred[i] ? on_true[i] : on_false[i]`.

    Example:
    ```mlir
    %y = weft.select %m, %x, %neg_inf : tensor<16x16xi1>, tensor<16x16xf32>
    ```

    Constraints:
    - (C1) on_true and on_false have the same type (trait AllTypesMatch).
    - (C2) pred has the shape of on_true (trait Elementwise).
  }];
  let arguments = (ins Weft_PredTensor:$pred, Weft_NumericTensor:$on_true,
                       Weft_NumericTensor:$on_false);
  let results = (outs Weft_NumericTensor:$result);
  let assemblyFormat = [{
    $pred `,` $on_true `,` $on_false attr-dict `:` type($pred) `,` type($on_true)
  }];
}

def Weft_ConvertOp : Weft_ComputeOp<"convert", "Elementwise", [Pure, Elementwise, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Elementwise element-type conversion";
  let description = [{
    Converts each element to the result's element type: float to float rounds
    to nearest even, float to integer truncates toward zero, integer to float
    rounds to nearest, i1 converts to 0 or 1.

    Example:
    ```mlir
    %y = weft.convert %x : tensor<4x16xf32> -> tensor<4x16xbf16>
    ```

    Constraints:
    - (C1) the operand and the result have the same shape (trait Elementwise).
  }];
  let arguments = (ins Weft_NumericTensor:$x);
  let results = (outs Weft_NumericTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

def Weft_ReduceOp : Weft_InferredOp<"reduce", "RowReduction", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Reduction over dimensions";
  let description = [{
    Combines the elements along `dims` with `kind` (sum, max, min, mean). The
    reduced dimensions are removed, or kept with size 1 under `keep_dims`.

    Example:
    ```mlir
    %s = weft.reduce sum %x dims [1] : (tensor<4x16xf32>) -> tensor<4xf32>
    ```

    Constraints:
    - (C1) dims are in [0, rank) and strictly increasing.
    - (C2) `mean` applies to floating-point tensors only.
  }];
  let arguments = (ins Weft_ReduceKindAttr:$kind, Weft_NumericTensor:$x,
                       DenseI64ArrayAttr:$dims, UnitAttr:$keep_dims);
  let results = (outs Weft_NumericTensor:$result);
  let assemblyFormat = [{
    $kind $x `dims` $dims (`keep_dims` $keep_dims^)? attr-dict `:` functional-type(operands, results)
  }];
}

class Weft_SoftmaxLikeOp<string mnemonic, string formula>
    : Weft_InferredOp<mnemonic, "RowReduction", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Numerically stable " # mnemonic # " along one dimension";
  let description = "`result = " # formula # "` along `dim`, computed with the "
    # "maximum subtracted first.\n\n"
    # "Example:\n```mlir\n%p = weft." # mnemonic # " %x dim 1 : tensor<4x16xf32>\n```\n\n"
    # "Constraints:\n- (C1) dim is in [0, rank).\n";
  let arguments = (ins Weft_FloatTensor:$x, Weft_I64Attr:$dim);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = "$x `dim` $dim attr-dict `:` type($x)";
}

def Weft_SoftmaxOp : Weft_SoftmaxLikeOp<"softmax", "exp(x) / sum(exp(x))">;
def Weft_LogSoftmaxOp : Weft_SoftmaxLikeOp<"log_softmax", "x - log(sum(exp(x)))">;

//===----------------------------------------------------------------------===//
// Shape and data movement
//===----------------------------------------------------------------------===//

def Weft_ReshapeOp : Weft_ComputeOp<"reshape", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Same elements in row-major order, new shape";
  let description = [{
    A view: the elements keep their row-major order.

    Example:
    ```mlir
    %y = weft.reshape %x : tensor<1x16x256xf32> -> tensor<1x16x8x32xf32>
    ```

    Constraints:
    - (C1) the operand and the result have the same element type.
    - (C2) the operand and the result have the same number of elements.
  }];
  let arguments = (ins AnyRankedTensor:$x);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def Weft_TransposeOp : Weft_InferredOp<"transpose", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Permutes dimensions";
  let description = [{
    `result[i_perm[0], …] = x[i_0, …]`: result dimension d is operand
    dimension `permutation[d]`.

    Example:
    ```mlir
    %y = weft.transpose %x [0, 2, 1, 3] : (tensor<1x16x8x32xf32>) -> tensor<1x8x16x32xf32>
    ```

    Constraints:
    - (C1) permutation is a permutation of [0, rank).
  }];
  let arguments = (ins AnyRankedTensor:$x, DenseI64ArrayAttr:$permutation);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x $permutation attr-dict `:` functional-type(operands, results)";
}

def Weft_SliceOp : Weft_InferredOp<"slice", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Strided static slice";
  let description = [{
    Takes `x[start_d : limit_d : stride_d]` along every dimension d; the
    result dimension is ceil((limit − start) / stride).

    Example:
    ```mlir
    %y = weft.slice %x [0, 4] [2, 8] [1, 1] : (tensor<2x16xf32>) -> tensor<2x4xf32>
    ```

    Constraints:
    - (C1) start, limit and stride each have one entry per dimension.
    - (C2) 0 ≤ start ≤ limit ≤ dimension size.
    - (C3) stride ≥ 1.
  }];
  let arguments = (ins AnyRankedTensor:$x, DenseI64ArrayAttr:$start,
                       DenseI64ArrayAttr:$limit, DenseI64ArrayAttr:$stride);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $x $start $limit $stride attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_ConcatOp : Weft_InferredOp<"concat", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Concatenation along one dimension";
  let description = [{
    Example:
    ```mlir
    %y = weft.concat %a, %b dim 1 : (tensor<2x3xf32>, tensor<2x5xf32>) -> tensor<2x8xf32>
    ```

    Constraints:
    - (C1) at least one input.
    - (C2) all inputs have the same rank and element type.
    - (C3) dim is in [0, rank).
    - (C4) the inputs' sizes agree on every dimension but dim.
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs, Weft_I64Attr:$dim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$inputs `dim` $dim attr-dict `:` functional-type(operands, results)";
}

def Weft_BroadcastOp : Weft_ComputeOp<"broadcast", "Elementwise", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Explicit broadcast into a larger shape";
  let description = [{
    Operand dimension i becomes result dimension `dims[i]`, where it either
    keeps its size or has size 1 and is repeated; result dimensions not in
    `dims` repeat the operand.

    Example:
    ```mlir
    %y = weft.broadcast %bias dims [2] : tensor<256xf32> -> tensor<1x16x256xf32>
    ```

    Constraints:
    - (C1) the operand and the result have the same element type.
    - (C2) dims has one entry per operand dimension.
    - (C3) dims are in [0, result rank) and strictly increasing.
    - (C4) each operand dimension has size 1 or the size of its result dimension.
  }];
  let arguments = (ins AnyRankedTensor:$x, DenseI64ArrayAttr:$dims);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x `dims` $dims attr-dict `:` type($x) `->` type($result)";
  let hasVerifier = 1;
}

def Weft_GatherOp : Weft_InferredOp<"gather", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Takes slices of a table at integer indices (embedding lookup)";
  let description = [{
    `result[a..., i..., b...] = table[a..., indices[i...], b...]` where `a`
    spans the table's dimensions before `axis` and `b` those after it, as
    `torch.index_select` / ONNX Gather. An index outside [0, size) is an
    error at run time.

    Example:
    ```mlir
    %h = weft.gather %embed[%ids] axis 0 : (tensor<512x256xf32>, tensor<1x16xi64>) -> tensor<1x16x256xf32>
    ```

    Constraints:
    - (C1) axis is in [0, table rank).
  }];
  let arguments = (ins AnyRankedTensor:$table, Weft_IntTensor:$indices, Weft_I64Attr:$axis);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $table `[` $indices `]` `axis` $axis attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_ScatterAddOp : Weft_InferredOp<"scatter_add", "Opaque", [Pure]> {
  let summary = "Adds slices into a tensor at integer indices (gather's adjoint)";
  let description = [{
    `result = base` then `result[a..., indices[i...], b...] += updates[a..., i..., b...]`
    for every index; repeated indices accumulate. This is the vector-Jacobian
    product of `weft.gather` with respect to its table.

    Example:
    ```mlir
    %g = weft.scatter_add %zero[%ids], %dh axis 0
        : (tensor<512x256xf32>, tensor<1x16xi64>, tensor<1x16x256xf32>) -> tensor<512x256xf32>
    ```

    Constraints:
    - (C1) axis is in [0, base rank).
    - (C2) updates has the shape `weft.gather` of base at indices would return.
    - (C3) updates has the element type of base.
  }];
  let arguments = (ins Weft_NumericTensor:$base, Weft_IntTensor:$indices,
                       Weft_NumericTensor:$updates, Weft_I64Attr:$axis);
  let results = (outs Weft_NumericTensor:$result);
  let assemblyFormat = [{
    $base `[` $indices `]` `,` $updates `axis` $axis attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_IotaOp : Weft_ComputeOp<"iota", "Elementwise", [Pure]> {
  let summary = "Indices along one dimension";
  let description = [{
    `result[i_0, …] = i_dim`: position ids, ranges, masks.

    Example:
    ```mlir
    %pos = weft.iota dim 1 : tensor<1x16xi64>
    ```

    Constraints:
    - (C1) dim is in [0, rank).
  }];
  let arguments = (ins Weft_I64Attr:$dim);
  let results = (outs Weft_NumericTensor:$result);
  let assemblyFormat = "`dim` $dim attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Weft_ConstantOp : Weft_InferredOp<"constant", "Elementwise", [Pure, ConstantLike]> {
  let summary = "A constant tensor";
  let description = [{
    Example:
    ```mlir
    %c = weft.constant dense<-1.0e+09> : tensor<16x16xf32>
    ```

    Constraints:
    - (C1) the value is a statically shaped ranked tensor.
  }];
  let arguments = (ins ElementsAttr:$value);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "attr-dict $value";
  let hasFolder = 1;
}

//===----------------------------------------------------------------------===//
// Transformer composites
//===----------------------------------------------------------------------===//

def Weft_RmsNormOp : Weft_InferredOp<"rms_norm", "RowReduction", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Root-mean-square normalisation over the last dimension";
  let description = [{
    `result = x / sqrt(mean(x², last dim) + epsilon) * weight`, computed in
    fp32 and rounded to x's element type (as Llama's `LlamaRMSNorm`).

    Example:
    ```mlir
    %y = weft.rms_norm %x, %w epsilon 1.0e-05 : (tensor<1x16x256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
    ```

    Constraints:
    - (C1) x has rank at least 1.
    - (C2) weight has rank 1 and the size of x's last dimension.
    - (C3) weight has x's element type.
    - (C4) epsilon ≥ 0.
  }];
  let arguments = (ins Weft_FloatTensor:$x, Weft_FloatTensor:$weight, F32Attr:$epsilon);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $weight `epsilon` $epsilon attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_RmsNormGradOp : Weft_InferredOp<"rms_norm_grad", "RowReduction", [Pure]> {
  let summary = "rms_norm's gradient with respect to x";
  let description = [{
    `result = r·(grad·weight) − x·r³·mean(grad·weight·x, last dim)` with
    `r = 1 / sqrt(mean(x², last dim) + epsilon)`: the gradient of
    `rms_norm(x, weight)` with respect to x, given the gradient `grad` of its
    result, computed in fp32 and rounded to x's element type once (one row
    kernel, where the same formula in elementwise ops and reductions takes
    several and rounds each step). weft-autodiff writes it for rms_norm's
    backward; the weight's gradient is `Σ_rows grad · rms_norm(x, 1)`.

    Example:
    ```mlir
    %dx = weft.rms_norm_grad %x, %w, %g epsilon 1.0e-05
        : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<1x16x256xf32>) -> tensor<1x16x256xf32>
    ```

    Constraints:
    - (C1) x has rank at least 1.
    - (C2) weight has rank 1 and the size of x's last dimension.
    - (C3) weight has x's element type.
    - (C4) epsilon ≥ 0.
    - (C5) grad has x's type.
  }];
  let arguments = (ins Weft_FloatTensor:$x, Weft_FloatTensor:$weight,
                       Weft_FloatTensor:$grad, F32Attr:$epsilon);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $weight `,` $grad `epsilon` $epsilon attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_LayerNormOp : Weft_InferredOp<"layer_norm", "RowReduction", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Layer normalisation over the last dimension";
  let description = [{
    `result = (x − mean) / sqrt(var + epsilon) * weight + bias` with the mean
    and the biased variance over the last dimension; the bias is optional.

    Example:
    ```mlir
    %y = weft.layer_norm %x, %w, %b epsilon 1.0e-05
        : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
    ```

    Constraints:
    - (C1) x has rank at least 1.
    - (C2) weight and bias have rank 1 and the size of x's last dimension.
    - (C3) weight and bias have x's element type.
    - (C4) epsilon ≥ 0.
  }];
  let arguments = (ins Weft_FloatTensor:$x, Weft_FloatTensor:$weight,
                       Optional<Weft_FloatTensor>:$bias, F32Attr:$epsilon);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $weight (`,` $bias^)? `epsilon` $epsilon attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_LayerNormGradOp : Weft_InferredOp<"layer_norm_grad", "RowReduction", [Pure]> {
  let summary = "layer_norm's gradient with respect to x";
  let description = [{
    `result = r·(grad·weight − mean(grad·weight) − x̂·mean(grad·weight·x̂))`
    with `x̂ = (x − mean(x))·r` and `r = 1 / sqrt(var(x) + epsilon)` (the
    biased variance) over the last dimension: the gradient of
    `layer_norm(x, weight, bias)` with respect to x, given the gradient
    `grad` of its result, computed in fp32 and rounded to x's element type
    once. weft-autodiff writes it for layer_norm's backward; the weight's
    gradient is `Σ_rows grad · layer_norm(x, 1)`, the bias's `Σ_rows grad`.

    Example:
    ```mlir
    %dx = weft.layer_norm_grad %x, %w, %g epsilon 1.0e-05
        : (tensor<1x16x256xf32>, tensor<256xf32>, tensor<1x16x256xf32>) -> tensor<1x16x256xf32>
    ```

    Constraints:
    - (C1) x has rank at least 1.
    - (C2) weight has rank 1 and the size of x's last dimension.
    - (C3) weight has x's element type.
    - (C4) epsilon ≥ 0.
    - (C5) grad has x's type.
  }];
  let arguments = (ins Weft_FloatTensor:$x, Weft_FloatTensor:$weight,
                       Weft_FloatTensor:$grad, F32Attr:$epsilon);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $weight `,` $grad `epsilon` $epsilon attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_RopeOp : Weft_InferredOp<"rope", "Elementwise", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Rotary position embedding";
  let description = [{
    x is [batch, seq, heads, head_dim]; positions [batch, seq] holds each
    token's global position p. With D = head_dim and inverse frequencies
    `f_j = theta^(−2j/D)` — or the D/2 `frequencies` given, which is how
    scaled variants (linear, Llama 3) are expressed —, pairs are rotated by
    the angle p·f_j:
    `(x_a, x_b) → (x_a·cos − x_b·sin, x_b·cos + x_a·sin)`, where the pairs are
    (j, j + D/2) (Llama's `rotate_half`, the default) or (2j, 2j+1) under
    `interleaved` (GPT-J).

    Example:
    ```mlir
    %q2 = weft.rope %q, %pos theta 5.0e+05 : (tensor<1x16x8x32xf32>, tensor<1x16xi64>) -> tensor<1x16x8x32xf32>
    ```

    Constraints:
    - (C1) x has rank 4.
    - (C2) positions has rank 2 and x's batch and sequence sizes.
    - (C3) head_dim is even.
    - (C4) theta > 0.
    - (C5) frequencies, when given, are head_dim / 2 finite positive numbers.
  }];
  let arguments = (ins Weft_FloatTensor:$x, Weft_IntTensor:$positions,
                       F64Attr:$theta, UnitAttr:$interleaved,
                       OptionalAttr<DenseF64ArrayAttr>:$frequencies);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $positions `theta` $theta (`interleaved` $interleaved^)?
    (`frequencies` $frequencies^)? attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_AttentionOp : Weft_InferredOp<"attention", "Opaque",
                                       [Pure, AttrSizedOperandSegments,
                                        DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Scaled dot-product attention with grouped heads";
  let description = [{
    q is [batch, Sq, Hq, D], k is [batch, Skv, Hkv, D], v is
    [batch, Skv, Hkv, Dv]; the result is [batch, Sq, Hq, Dv]. Query head h
    uses key/value head h / (Hq / Hkv) (grouped-query attention; Hq = Hkv is
    multi-head, Hkv = 1 multi-query). Scores are `scale · q·k` (default scale
    1/sqrt(D)), softmax over keys, weighted sum of v. The queries are the last
    Sq of the Skv positions. Kinds:
    - `full`: every query attends to every key.
    - `causal`: query i attends to keys j ≤ i + (Skv − Sq).
    - `alibi`: causal, plus the bias `slope_h · (j − i')` (i' the query's
      position), `alibi_slopes` giving one slope per query head (BLOOM).
    - `mask`: query i attends to key j where `mask[b, i, j]` is true; the mask
      is [batch, Sq, Skv] or [Sq, Skv].
    A `window` W (sliding-window attention, Mistral) further limits a causal
    or ALiBi query at position i' to the W keys i' − W < j ≤ i'.

    Example:
    ```mlir
    %o = weft.attention causal %q, %k, %v
        : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>) -> tensor<1x16x8x32xf32>
    ```

    Constraints:
    - (C1) q, k and v have rank 4.
    - (C2) q, k and v have the same batch size.
    - (C3) k and v have the same sequence length and number of heads.
    - (C4) q and k have the same head dimension.
    - (C5) the number of query heads is a multiple of the number of key/value heads.
    - (C6) q, k and v have the same element type.
    - (C7) a mask is given if and only if the kind is `mask`, with shape
      [batch, Sq, Skv] or [Sq, Skv].
    - (C8) alibi_slopes are given if and only if the kind is `alibi`, with
      shape [Hq].
    - (C9) for `causal` and `alibi`, Sq ≤ Skv.
    - (C10) scale, when given, is positive.
    - (C11) window, when given, is positive and the kind is `causal` or
      `alibi`.

    With `with_lse` a second result holds each query row's log-sum-exp of
    its scores, `lse[b, h, i]` (f32, +inf for a row that attends no key):
    a training step's forward keeps it for `weft.attention_grad`, which
    then need not recompute it.
  }];
  let arguments = (ins Weft_AttentionKindAttr:$kind, Weft_FloatTensor:$q,
                       Weft_FloatTensor:$k, Weft_FloatTensor:$v,
                       Optional<Weft_PredTensor>:$mask,
                       Optional<Weft_FloatTensor>:$alibi_slopes,
                       OptionalAttr<F32Attr>:$scale,
                       OptionalAttr<Weft_I64Attr>:$window,
                       UnitAttr:$with_lse);
  let results = (outs Weft_FloatTensor:$result,
                      Optional<RankedTensorOf<[F32]>>:$lse);
  let assemblyFormat = [{
    $kind $q `,` $k `,` $v (`mask` `(` $mask^ `)`)? (`slopes` `(` $alibi_slopes^ `)`)?
    (`scale` $scale^)? (`window` $window^)? (`with_lse` $with_lse^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = fusionDecl # [{
    /// The scale applied to q·k: the attribute, or 1/sqrt(head_dim).
    double getScaleOrDefault();
    /// Number of (query, key) pairs that attend, per batch element and head.
    int64_t getNumAttendingPairs();
  }];
}

def Weft_AttentionGradOp : Weft_InferredOp<"attention_grad", "Opaque",
                                           [Pure, AttrSizedOperandSegments]> {
  let summary = "Gradients of attention's q, k and v";
  let description = [{
    The vector-Jacobian product of `weft.attention` with the same kind,
    operands and attributes: given the attention's output `out` and its
    gradient `dout` ([batch, Sq, Hq, Dv]), the gradients of q, k and v. The
    gradients of k and v sum over the query heads that share each kv head.
    Backends recompute the probabilities from q, k and each row's
    log-sum-exp rather than store them (FlashAttention-2's backward); `lse`,
    when given, is that log-sum-exp as the forward (`with_lse`) returned it.

    Example:
    ```mlir
    %dq, %dk, %dv = weft.attention_grad causal %q, %k, %v, %o, %do
        : (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>,
           tensor<1x16x8x32xf32>, tensor<1x16x8x32xf32>)
        -> (tensor<1x16x8x32xf32>, tensor<1x16x4x32xf32>, tensor<1x16x4x32xf32>)
    ```

    Constraints:
    - (C1) q, k, v, mask, alibi_slopes, scale and window are those a
      `weft.attention` accepts (its C1–C11).
    - (C2) out and dout have the type of that attention's result.
    - (C3) lse, when given, has the type of that attention's `lse` result.
  }];
  let arguments = (ins Weft_AttentionKindAttr:$kind, Weft_FloatTensor:$q,
                       Weft_FloatTensor:$k, Weft_FloatTensor:$v,
                       Weft_FloatTensor:$out, Weft_FloatTensor:$dout,
                       Optional<RankedTensorOf<[F32]>>:$lse,
                       Optional<Weft_PredTensor>:$mask,
                       Optional<Weft_FloatTensor>:$alibi_slopes,
                       OptionalAttr<F32Attr>:$scale,
                       OptionalAttr<Weft_I64Attr>:$window);
  let results = (outs Weft_FloatTensor:$dq, Weft_FloatTensor:$dk,
                      Weft_FloatTensor:$dv);
  let assemblyFormat = [{
    $kind $q `,` $k `,` $v `,` $out `,` $dout (`lse` `(` $lse^ `)`)?
    (`mask` `(` $mask^ `)`)? (`slopes` `(` $alibi_slopes^ `)`)?
    (`scale` $scale^)? (`window` $window^)? attr-dict
    `:` functional-type(operands, results)
  }];
  let extraClassDeclaration = fusionDecl # [{
    /// The scale applied to q·k: the attribute, or 1/sqrt(head_dim).
    double getScaleOrDefault();
    /// Number of (query, key) pairs that attend, per batch element and head.
    int64_t getNumAttendingPairs();
  }];
}

def Weft_CrossEntropyOp : Weft_InferredOp<"cross_entropy", "RowReduction", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Fused log-softmax and negative log-likelihood";
  let description = [{
    For each token t with label y_t ≠ ignore_index the loss is
    `−log_softmax(logits[t])[y_t]`, computed in fp32. `mean` divides the sum by
    the number of non-ignored tokens (a token-weighted mean, 0 when there are
    none), `sum` returns the sum — what sequence-parallel ranks reduce before
    dividing by the global token count — and `none` returns each token's loss
    (0 for ignored tokens). Labels must lie in [0, vocab) or equal ignore_index.

    Example:
    ```mlir
    %l = weft.cross_entropy %logits, %labels ignore_index -100 reduction mean
        : (tensor<1x16x512xf32>, tensor<1x16xi64>) -> tensor<f32>
    ```

    Constraints:
    - (C1) logits have rank at least 1.
    - (C2) labels have the shape of logits without the last dimension.
  }];
  let arguments = (ins Weft_FloatTensor:$logits, Weft_IntTensor:$labels,
                       DefaultValuedAttr<Weft_I64Attr, "-100">:$ignore_index,
                       DefaultValuedAttr<Weft_LossReductionAttr,
                                         "::weft::LossReduction::mean">:$reduction);
  let results = (outs RankedTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $logits `,` $labels `ignore_index` $ignore_index `reduction` $reduction attr-dict
    `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

def Weft_MoeGateOp : Weft_InferredOp<"moe_gate", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Top-k routing: softmax over experts, the k best, renormalised";
  let description = [{
    For each token's router logits (the last dimension, one per expert) the
    softmax is computed in fp32 and the `top_k` largest probabilities are
    chosen, highest first (ties to the lower expert); under `normalize` the
    chosen weights are divided by their sum (Mixtral). Results: the weights,
    in the logits' element type, and the chosen experts' indices.

    Example:
    ```mlir
    %w, %e = weft.moe_gate %logits top_k 2 normalize
        : (tensor<16x8xf32>) -> (tensor<16x2xf32>, tensor<16x2xi64>)
    ```

    Constraints:
    - (C1) logits have rank at least 1.
    - (C2) 1 ≤ top_k ≤ the number of experts.
  }];
  let arguments = (ins Weft_FloatTensor:$logits, Weft_I64Attr:$top_k,
                       UnitAttr:$normalize);
  let results = (outs Weft_FloatTensor:$weights, Weft_IntTensor:$experts);
  let assemblyFormat = [{
    $logits `top_k` $top_k (`normalize` $normalize^)? attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_MoeDispatchOp : Weft_InferredOp<"moe_dispatch", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Token rows sorted by the expert they are routed to";
  let description = [{
    x is [T, H] and experts [T, K] (from `weft.moe_gate`). Each (token, slot)
    pair becomes one row of the result [T·K, H], rows grouped by expert in
    expert order and, within an expert, in token order (a stable counting
    sort). `offsets` [E + 1] gives each expert's first row, the last entry
    T·K. Static shapes whatever the routing: no token is dropped.

    Example:
    ```mlir
    %rows, %offsets = weft.moe_dispatch %x, %e num_experts 8
        : (tensor<16x64xf32>, tensor<16x2xi64>) -> (tensor<32x64xf32>, tensor<9xi64>)
    ```

    Constraints:
    - (C1) x has rank 2 and experts has rank 2 with x's number of tokens.
    - (C2) num_experts ≥ 1 (an index outside [0, num_experts) is an error
      when the op runs).
  }];
  let arguments = (ins AnyRankedTensor:$x, Weft_IntTensor:$experts,
                       Weft_I64Attr:$num_experts);
  let results = (outs AnyRankedTensor:$rows, Weft_IntTensor:$offsets);
  let assemblyFormat = [{
    $x `,` $experts `num_experts` $num_experts attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_GroupedLinearOp : Weft_InferredOp<"grouped_linear", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "A linear per group of rows, each group with its own weight";
  let description = [{
    Rows [offsets[g], offsets[g + 1]) of x [N, in] are multiplied by weight g
    [out, in] (`x · w_gᵀ`, as `weft.linear`): the expert computation after
    `weft.moe_dispatch`. One weight operand per group, so that each expert's
    parameter keeps its checkpoint name.

    Example:
    ```mlir
    %h = weft.grouped_linear %rows, %offsets, %w0, %w1
        : (tensor<32x64xf32>, tensor<3xi64>, tensor<128x64xf32>, tensor<128x64xf32>) -> tensor<32x128xf32>
    ```

    Constraints:
    - (C1) x has rank 2 and offsets has rank 1 with one entry per weight plus one.
    - (C2) every weight has rank 2, x's input size and the first weight's shape.
    - (C3) x and the weights have one element type.
  }];
  let arguments = (ins Weft_FloatTensor:$x, Weft_IntTensor:$offsets,
                       Variadic<Weft_FloatTensor>:$weights);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $x `,` $offsets `,` $weights attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_MoeCombineOp : Weft_InferredOp<"moe_combine", "Opaque", [Pure, DeclareOpInterfaceMethods<Weft_DifferentiableOpInterface>]> {
  let summary = "Weighted sum of each token's expert outputs";
  let description = [{
    The inverse of `weft.moe_dispatch`: rows [T·K, H] in dispatch order, the
    routing weights [T, K] and experts [T, K]; token t's result is
    `Σ_k weights[t, k] · rows[slot(t, k)]`, slot the row dispatch gave the
    pair.

    Example:
    ```mlir
    %y = weft.moe_combine %rows, %w, %e num_experts 8
        : (tensor<32x64xf32>, tensor<16x2xf32>, tensor<16x2xi64>) -> tensor<16x64xf32>
    ```

    Constraints:
    - (C1) rows has rank 2; weights and experts have rank 2 and one shape
      [T, K] with T·K rows.
    - (C2) rows and weights have one element type.
    - (C3) num_experts ≥ 1, as given to the dispatch.
  }];
  let arguments = (ins Weft_FloatTensor:$rows, Weft_FloatTensor:$weights,
                       Weft_IntTensor:$experts, Weft_I64Attr:$num_experts);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $rows `,` $weights `,` $experts `num_experts` $num_experts attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Training
//===----------------------------------------------------------------------===//

def Weft_GradNormOp : Weft_InferredOp<"grad_norm", "Opaque", [Pure]> {
  let summary = "The global L2 norm of a set of gradients";
  let description = [{
    `sqrt(Σ_t Σ_i (t[i]·grad_scale)²)` over every element of every operand:
    the norm global-norm clipping divides by (torch.nn.utils.clip_grad_norm_).
    Each element is scaled in f32 (the mean of accumulated gradients: the sum
    times 1/K), then squared and summed in double over fixed chunks added in
    order, tensor by tensor, so the result does not depend on the thread
    count; it is rounded to f32 at the end. `over` a mesh's axes the
    operands are each member's shards (ZeRO): the sums of squares are added
    over the group before the square root.

    Example:
    ```mlir
    %n = weft.grad_norm %g0, %g1 : (tensor<64x64xf32>, tensor<64xbf16>) -> tensor<f32>
    ```

    Constraints:
    - (C1) at least one operand.
    - (C2) `over` names axes of the mesh, at least one, each once.
  }];
  let arguments = (ins Variadic<Weft_FloatTensor>:$grads,
                       DefaultValuedAttr<F32Attr, "1.0f">:$grad_scale,
                       OptionalAttr<Weft_MeshAttr>:$mesh,
                       OptionalAttr<TypedArrayAttrBase<StrAttr, "mesh axis names">>:$axes);
  let results = (outs 0DTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $grads (`over` $mesh^ $axes)? attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_AdamWUpdateOp : Weft_InferredOp<"adamw_update", "Opaque", [Pure]> {
  let summary = "One AdamW step of one parameter, fused";
  let description = [{
    torch.optim.AdamW's update (not amsgrad), operation for operation, on the
    f32 weights `param` (a bf16 parameter's master weights) with the moments
    `exp_avg` and `exp_avg_sq`: with `s` the step (from 1) and `lr` the
    learning rate, the gradient is first multiplied by `grad_scale` in f32
    (the mean of accumulated gradients), then by
    `min(1, max_grad_norm / (grad_norm + 1e-6))` when `max_grad_norm` > 0,
    then `p ← p·(1 − lr·weight_decay)`, `m ← lerp(m, g, 1 − β1)`,
    `v ← β2·v + (1 − β2)·g²`, `p ← p − lr/(1 − β1^s) · m / (sqrt(v)/sqrt(1 − β2^s) + ε)`.
    Results: the new weights and moments, and with `round_to_bf16` also the
    new weights rounded to bf16 (nearest even: a bf16 parameter's copy of
    its master weights, written by the same pass over them;
    weft-form-fusion-groups folds an update's `weft.convert` to bf16 into
    it). The runtime updates them in place when the bufferizer gives a
    result its operand's memory.

    Example:
    ```mlir
    %p1, %m1, %v1 = weft.adamw_update %p, %g, %m, %v lr %lr step %s norm %n
        {beta1 = 0.9, beta2 = 0.999, eps = 1.0e-8, weight_decay = 0.01}
        : (tensor<64xf32>, tensor<64xbf16>, tensor<64xf32>, tensor<64xf32>,
           tensor<f64>, tensor<i64>, tensor<f32>)
        -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
    ```

    Constraints:
    - (C1) grad, exp_avg and exp_avg_sq have param's shape.
  }];
  let arguments = (ins RankedTensorOf<[F32]>:$param, Weft_FloatTensor:$grad,
                       RankedTensorOf<[F32]>:$exp_avg,
                       RankedTensorOf<[F32]>:$exp_avg_sq,
                       0DTensorOf<[F64]>:$lr, 0DTensorOf<[I64]>:$step,
                       0DTensorOf<[F32]>:$grad_norm,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps,
                       F64Attr:$weight_decay,
                       DefaultValuedAttr<F64Attr, "0.0">:$max_grad_norm,
                       DefaultValuedAttr<F32Attr, "1.0f">:$grad_scale,
                       UnitAttr:$round_to_bf16);
  let results = (outs RankedTensorOf<[F32]>:$new_param,
                      RankedTensorOf<[F32]>:$new_exp_avg,
                      RankedTensorOf<[F32]>:$new_exp_avg_sq,
                      Optional<RankedTensorOf<[BF16]>>:$rounded_param);
  let assemblyFormat = [{
    $param `,` $grad `,` $exp_avg `,` $exp_avg_sq `lr` $lr `step` $step
    `norm` $grad_norm attr-dict `:` functional-type(operands, results)
  }];
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

class Weft_CollectiveOp<string mnemonic, list<Trait> traits = []>
    : Weft_ComputeOp<mnemonic, "Opaque", traits> {
  code collectiveDecl = [{
    /// Number of ranks in the op's group: the product of its axes' sizes.
    int64_t getGroupSize() { return getMesh().getGroupSize(getAxes()); }
  }];
  let extraClassDeclaration = fusionDecl # collectiveDecl;
}

defvar Weft_MeshAxes = TypedArrayAttrBase<StrAttr, "mesh axis names">;

def Weft_AllGatherOp : Weft_CollectiveOp<"all_gather", [Pure, InferTypeOpAdaptor]> {
  let summary = "Concatenates every group member's tensor along a dimension";
  let description = [{
    The group is the set of ranks that differ only in their coordinates on
    `axes`; member m's operand lands at position m (row-major over the axes)
    along `dim`, so the result's `dim` is P times the operand's.

    Example:
    ```mlir
    %w = weft.all_gather %shard on #weft.mesh<["dp"=2, "sp"=2]> ["dp", "sp"] dim 0
        : (tensor<64x256xf32>) -> tensor<256x256xf32>
    ```

    Constraints:
    - (C1) every axis is an axis of the mesh, at most once, and at least one is named.
    - (C2) dim is in [0, rank).
  }];
  let arguments = (ins AnyRankedTensor:$x, Weft_MeshAttr:$mesh, Weft_MeshAxes:$axes,
                       Weft_I64Attr:$dim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $x `on` $mesh $axes `dim` $dim attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_ReduceScatterOp : Weft_CollectiveOp<"reduce_scatter", [Pure, InferTypeOpAdaptor]> {
  let summary = "Reduces over the group and leaves each member one slice";
  let description = [{
    The operands of the group are combined elementwise with `kind`; member m
    keeps slice m (of P equal slices) along `dim`.

    Example:
    ```mlir
    %g = weft.reduce_scatter sum %grad on #weft.mesh<["dp"=4]> ["dp"] dim 0
        : (tensor<256x256xf32>) -> tensor<64x256xf32>
    ```

    Constraints:
    - (C1) every axis is an axis of the mesh, at most once, and at least one is named.
    - (C2) dim is in [0, rank).
    - (C3) the size of dim is a multiple of the group size.
  }];
  let arguments = (ins Weft_ReduceKindAttr:$kind, Weft_NumericTensor:$x,
                       Weft_MeshAttr:$mesh, Weft_MeshAxes:$axes, Weft_I64Attr:$dim);
  let results = (outs Weft_NumericTensor:$result);
  let assemblyFormat = [{
    $kind $x `on` $mesh $axes `dim` $dim attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_AllReduceOp : Weft_CollectiveOp<"all_reduce", [Pure, InferTypeOpAdaptor]> {
  let summary = "Reduces over the group; every member gets the result";
  let description = [{
    Example:
    ```mlir
    %g = weft.all_reduce mean %grad on #weft.mesh<["dp"=4]> ["dp"] : tensor<256x256xf32>
    ```

    Constraints:
    - (C1) every axis is an axis of the mesh, at most once, and at least one is named.
  }];
  let arguments = (ins Weft_ReduceKindAttr:$kind, Weft_NumericTensor:$x,
                       Weft_MeshAttr:$mesh, Weft_MeshAxes:$axes);
  let results = (outs Weft_NumericTensor:$result);
  let assemblyFormat = "$kind $x `on` $mesh $axes attr-dict `:` type($x)";
}

def Weft_AllSliceOp : Weft_CollectiveOp<"all_slice", [Pure, InferTypeOpAdaptor]> {
  let summary = "Keeps this member's slice of a tensor every member holds";
  let description = [{
    The inverse of `weft.all_gather` on a replicated operand: member m (its
    position, row-major over `axes`, in its group) keeps slice m of P equal
    slices along `dim`. Nothing is sent.

    Example:
    ```mlir
    %w = weft.all_slice %full on #weft.mesh<["dp"=4]> ["dp"] dim 0
        : (tensor<256xf32>) -> tensor<64xf32>
    ```

    Constraints:
    - (C1) every axis is an axis of the mesh, at most once, and at least one is named.
    - (C2) dim is in [0, rank).
    - (C3) the size of dim is a multiple of the group size.
  }];
  let arguments = (ins AnyRankedTensor:$x, Weft_MeshAttr:$mesh, Weft_MeshAxes:$axes,
                       Weft_I64Attr:$dim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $x `on` $mesh $axes `dim` $dim attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_AllToAllOp : Weft_CollectiveOp<"all_to_all", [Pure, InferTypeOpAdaptor]> {
  let summary = "Splits along one dimension, exchanges, concatenates along another";
  let description = [{
    Each member splits its operand into P slices along `split_dim`, sends
    slice m to member m, and concatenates what it receives (in member order)
    along `concat_dim`. Ulysses uses it to turn [batch, N/P, heads, d] into
    [batch, N, heads/P, d] (split heads, concatenate sequence) and back.

    Example:
    ```mlir
    %q = weft.all_to_all %q_local on #weft.mesh<["sp"=4]> ["sp"] split 2 concat 1
        : (tensor<1x512x32x128xbf16>) -> tensor<1x2048x8x128xbf16>
    ```

    Constraints:
    - (C1) every axis is an axis of the mesh, at most once, and at least one is named.
    - (C2) split_dim and concat_dim are in [0, rank).
    - (C3) the size of split_dim is a multiple of the group size.
  }];
  let arguments = (ins AnyRankedTensor:$x, Weft_MeshAttr:$mesh, Weft_MeshAxes:$axes,
                       Weft_I64Attr:$split_dim, Weft_I64Attr:$concat_dim);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = [{
    $x `on` $mesh $axes `split` $split_dim `concat` $concat_dim attr-dict
    `:` functional-type(operands, results)
  }];
}

def Weft_SendOp : Weft_CollectiveOp<"send", [MemoryEffects<[MemWrite]>]> {
  let summary = "Sends a tensor to the member `offset` places further in the group";
  let description = [{
    Member m of the group sends to member (m + offset) mod P; each send is
    paired with a `weft.recv` with the same group and the opposite offset on
    the receiving rank (pipeline stages, ring attention).

    Example:
    ```mlir
    weft.send %act on #weft.mesh<["pp"=4]> ["pp"] offset 1 : tensor<1x512x256xbf16>
    ```

    Constraints:
    - (C1) every axis is an axis of the mesh, at most once, and at least one is named.
    - (C2) offset is not a multiple of the group size (a rank never sends to itself).
  }];
  let arguments = (ins AnyRankedTensor:$x, Weft_MeshAttr:$mesh, Weft_MeshAxes:$axes,
                       Weft_I64Attr:$offset);
  let assemblyFormat = "$x `on` $mesh $axes `offset` $offset attr-dict `:` type($x)";
  let hasVerifier = 1;
}

def Weft_RecvOp : Weft_CollectiveOp<"recv", [MemoryEffects<[MemRead]>]> {
  let summary = "Receives a tensor from the member `offset` places further in the group";
  let description = [{
    Member m receives from member (m + offset) mod P what that member's paired
    `weft.send` sent; the result type must match the sent tensor's.

    Example:
    ```mlir
    %act = weft.recv on #weft.mesh<["pp"=4]> ["pp"] offset -1 : tensor<1x512x256xbf16>
    ```

    Constraints:
    - (C1) every axis is an axis of the mesh, at most once, and at least one is named.
    - (C2) offset is not a multiple of the group size.
  }];
  let arguments = (ins Weft_MeshAttr:$mesh, Weft_MeshAxes:$axes, Weft_I64Attr:$offset);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "`on` $mesh $axes `offset` $offset attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def Weft_CollectiveBroadcastOp
    : Weft_CollectiveOp<"collective_broadcast", [Pure, InferTypeOpAdaptor]> {
  let summary = "Every member gets the tensor of the group's member `root`";
  let description = [{
    Example:
    ```mlir
    %w = weft.collective_broadcast %w0 on #weft.mesh<["dp"=4]> ["dp"] root 0 : tensor<256xf32>
    ```

    Constraints:
    - (C1) every axis is an axis of the mesh, at most once, and at least one is named.
    - (C2) root is in [0, group size).
  }];
  let arguments = (ins AnyRankedTensor:$x, Weft_MeshAttr:$mesh, Weft_MeshAxes:$axes,
                       Weft_I64Attr:$root);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x `on` $mesh $axes `root` $root attr-dict `:` type($x)";
}

//===----------------------------------------------------------------------===//
// Quantization
//===----------------------------------------------------------------------===//

def Weft_QuantizeBlockwiseOp : Weft_InferredOp<"quantize_blockwise", "Opaque", [Pure]> {
  let summary = "Symmetric blockwise integer quantization (ZeRO++ qwZ, qgZ)";
  let description = [{
    The operand, flattened in row-major order, is cut into blocks of
    `block_size` elements; each block gets the scale `max|x| / (2^(bits−1) − 1)`
    (1 for an all-zero block) and each element becomes `round(x / scale)`.
    int8 stores one value per byte; int4 stores two per byte, the first
    element in the low nibble. Results: the values (i8, numel·bits/8 bytes)
    and the f32 scales (numel / block_size).

    Example:
    ```mlir
    %q, %s = weft.quantize_blockwise %w block_size 2048 bits 8
        : (tensor<256x256xbf16>) -> (tensor<65536xi8>, tensor<32xf32>)
    ```

    Constraints:
    - (C1) bits is 8 or 4.
    - (C2) block_size ≥ 1, and even for 4 bits.
    - (C3) the number of elements is a multiple of block_size.
  }];
  let arguments = (ins Weft_FloatTensor:$x, Weft_I64Attr:$block_size, Weft_I64Attr:$bits);
  let results = (outs RankedTensorOf<[I8]>:$values, RankedTensorOf<[F32]>:$scales);
  let assemblyFormat = [{
    $x `block_size` $block_size `bits` $bits attr-dict `:` functional-type(operands, results)
  }];
}

def Weft_DequantizeBlockwiseOp : Weft_ComputeOp<"dequantize_blockwise", "Elementwise", [Pure]> {
  let summary = "Inverse of weft.quantize_blockwise into a shape and float type";
  let description = [{
    `result[i] = value[i] * scales[i / block_size]`, reshaped into the result
    type.

    Example:
    ```mlir
    %w = weft.dequantize_blockwise %q, %s block_size 2048 bits 8
        : (tensor<65536xi8>, tensor<32xf32>) -> tensor<256x256xbf16>
    ```

    Constraints:
    - (C1) bits is 8 or 4.
    - (C2) block_size ≥ 1, and even for 4 bits.
    - (C3) values and scales have rank 1, with numel·bits/8 and numel / block_size
      elements for the result's element count numel (a multiple of block_size).
  }];
  let arguments = (ins RankedTensorOf<[I8]>:$values, RankedTensorOf<[F32]>:$scales,
                       Weft_I64Attr:$block_size, Weft_I64Attr:$bits);
  let results = (outs Weft_FloatTensor:$result);
  let assemblyFormat = [{
    $values `,` $scales `block_size` $block_size `bits` $bits attr-dict `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Memory
//===----------------------------------------------------------------------===//

def Weft_OffloadOp : Weft_InferredOp<"offload", "Opaque"> {
  let summary = "Moves a tensor from device memory to host memory";
  let description = [{
    The result is the same tensor in host memory (`#weft.host` encoding); the
    device copy can be freed. Activation-checkpoint offload (ALST) and
    optimizer-state offload (ZeRO-Offload) are built from it and `weft.reload`.

    Example:
    ```mlir
    %h = weft.offload %act : (tensor<1x4096x256xbf16>) -> tensor<1x4096x256xbf16, #weft.host>
    ```

    Constraints:
    - (C1) the operand is in device memory (no `#weft.host` encoding).
  }];
  let arguments = (ins AnyRankedTensor:$x);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
}

def Weft_ReloadOp : Weft_InferredOp<"reload", "Opaque"> {
  let summary = "Brings an offloaded tensor back to device memory";
  let description = [{
    Example:
    ```mlir
    %act = weft.reload %h : (tensor<1x4096x256xbf16, #weft.host>) -> tensor<1x4096x256xbf16>
    ```

    Constraints:
    - (C1) the operand is in host memory (`#weft.host` encoding).
  }];
  let arguments = (ins AnyRankedTensor:$x);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$x attr-dict `:` functional-type(operands, results)";
}

//===----------------------------------------------------------------------===//
// Scheduling
//===----------------------------------------------------------------------===//

def Weft_FusionGroupOp : Weft_Op<"fusion_group", [
    IsolatedFromAbove, SingleBlockImplicitTerminator<"YieldOp">,
    DeclareOpInterfaceMethods<Weft_CostOpInterface>, Weft_FusibleOpInterface]> {
  let summary = "Ops that run as one generated kernel";
  let description = [{
    The schedule phase groups elementwise and row-reduction ops that share one
    iteration space (the same result shape) into a fusion group; code
    generation turns each group into one kernel that keeps the values the
    group does not yield in registers or per-thread scratch. The body's
    arguments are the inputs; `weft.yield` lists the results.

    Example:
    ```mlir
    %h, %n = weft.fusion_group (%x, %o, %w : tensor<1x16x256xf32>, tensor<1x16x256xf32>, tensor<256xf32>) {
    ^bb0(%a: tensor<1x16x256xf32>, %b: tensor<1x16x256xf32>, %c: tensor<256xf32>):
      %0 = weft.add %a, %b : tensor<1x16x256xf32>
      %1 = weft.rms_norm %0, %c epsilon 1.0e-05 : (tensor<1x16x256xf32>, tensor<256xf32>) -> tensor<1x16x256xf32>
      weft.yield %0, %1 : tensor<1x16x256xf32>, tensor<1x16x256xf32>
    } : tensor<1x16x256xf32>, tensor<1x16x256xf32>
    ```

    Constraints:
    - (C1) the body's arguments have the types of the inputs.
    - (C2) the yielded values have the types of the results.
    - (C3) at least one result.
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$inputs);
  let results = (outs Variadic<AnyRankedTensor>:$results);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = [{
    (`(` $inputs^ `:` type($inputs) `)`)? $body attr-dict `:` type($results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    ::weft::FusionKind getFusionKind() { return ::weft::FusionKind::Opaque; }
    YieldOp getYield();
    /// The length of one row of the group's iteration space: the last
    /// dimension of its results (1 for scalars).
    int64_t getRowLength();
    /// Values whose rows the generated kernel keeps in per-thread scratch:
    /// those computed in the body that the group does not yield, and every
    /// bf16 input and result (held widened to f32), in that order.
    ::llvm::SmallVector<::mlir::Value> getRowScratchValues();
    /// Bytes of one scratch row: 8 per element, rounded up to 64.
    int64_t getScratchRowBytes();
    /// Scratch bytes per thread: one row per scratch value.
    int64_t getScratchBytesPerThread();
  }];
}

def Weft_YieldOp : Weft_Op<"yield", [Pure, Terminator, ReturnLike,
                                     HasParent<"FusionGroupOp">]> {
  let summary = "Ends a fusion group, naming its results";
  let description = [{
    Example:
    ```mlir
    weft.yield %0, %1 : tensor<4xf32>, tensor<4xf32>
    ```

    Constraints:
    - (C1) the parent is a `weft.fusion_group` (trait HasParent).
  }];
  let arguments = (ins Variadic<AnyRankedTensor>:$values);
  let builders = [OpBuilder<(ins), [{ /* empty yield */ }]>];
  let assemblyFormat = "($values^ `:` type($values))? attr-dict";
}

#endif // WEFT_OPS_TD
