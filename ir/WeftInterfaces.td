// Op interfaces of the weft dialect: the semantics each compiler phase needs,
// implemented per op. Shape inference uses upstream InferTypeOpInterface.
#ifndef WEFT_INTERFACES_TD
#define WEFT_INTERFACES_TD

include "mlir/IR/OpBase.td"

def Weft_CostOpInterface : OpInterface<"CostOpInterface"> {
  let cppNamespace = "::weft";
  let description = [{
    The work one execution of the op does, for the tuner, the roofline and
    `weft inspect`. Counts are per rank: before partitioning they describe the
    whole (global) computation, after it one rank's share. All counts need
    static shapes; an op with a dynamic dimension reports zero and
    `isKnown = false`.

    Counting rules:
    - `flops`: one multiply-add counts 2. Matmul-like ops (matmul, linear,
      attention) count 2·M·N·K; a linear's bias adds one per output element.
      Elementwise ops count 1 per result element (transcendental or not).
      Reductions count 1 per input element. Composite row ops count per input
      element: softmax and log_softmax 5 (max, subtract, exp, sum, divide),
      rms_norm 4 (square, sum, scale, weight), rms_norm_grad 9 (square and
      sum, grad·weight·x and sum, then four for the result), layer_norm 7
      (plus the mean and centering and the bias), layer_norm_grad 14 (the
      mean, centering, variance, x̂, grad·weight and its sum, its product
      with x̂ and its sum, then four for the result), rope 3 (two multiplies
      and an add),
      cross_entropy 5 per logit (the log-softmax) plus 1 per label.
      Attention counts only its two matrix products, 2·Dqk + 2·Dv per
      attending (query, key) pair and head: `full` and `mask` count every pair
      (an explicit mask is not inspected), `causal` and `alibi` count the pairs
      the causal mask allows, Sq·(Skv−Sq) + Sq·(Sq+1)/2 — about half of them
      when Sq = Skv, the convention of the FlashAttention papers.
      Collectives count the elementwise reductions they perform; quantization
      3 per element (abs-max, scale, round), dequantization 1.
    - `memoryBytes`: bytes read from and written to device memory by a kernel
      that keeps its working set on chip: each operand read once and each
      result written once. Exceptions: `reshape` is a view (0); `slice` and
      `gather` read only the elements they return; `iota` and `constant`
      only write; attention never materialises the Sq×Skv scores.
    - `commBytes`: bytes one rank sends over the network, with ring
      algorithms over a group of P ranks: all_gather (P−1)/P of the result,
      reduce_scatter (P−1)/P of the operand, all_reduce 2(P−1)/P, all_to_all
      (P−1)/P of the operand, send the whole operand, collective_broadcast
      the whole operand (pipelined), recv 0.
    - `transferBytes`: bytes copied between host and device (offload, reload).
  }];
  let methods = [
    InterfaceMethod<"The op's cost at its (static) shapes.", "::weft::OpCost",
                    "getCost", (ins)>,
  ];
}

def Weft_FusibleOpInterface : OpInterface<"FusibleOpInterface"> {
  let cppNamespace = "::weft";
  let description = [{
    How the op may join a fusion group in the schedule phase: `Elementwise`
    ops fuse with anything on the same iteration space; `RowReduction` ops
    (softmax, norms, cross-entropy, reduce) reduce along one dimension and fuse
    with elementwise producers and consumers; `Opaque` ops (matmul, attention,
    collectives, data movement) end a group.
  }];
  let methods = [
    InterfaceMethod<"How the op fuses.", "::weft::FusionKind", "getFusionKind",
                    (ins)>,
  ];
}

def Weft_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::weft";
  let description = [{
    Reverse-mode differentiation: given the gradient of each result (null
    where a result does not contribute to the loss), build the vector-Jacobian
    products with respect to each operand at the builder's insertion point.
    An operand that has no gradient (integer indices, masks) gets a null
    value. The generic autodiff pass of the train phase walks the function
    backwards calling this method.
  }];
  let methods = [
    InterfaceMethod<"Builds the gradients of the operands.",
                    "::mlir::LogicalResult", "buildVjp",
                    (ins "::mlir::OpBuilder &":$builder,
                         "::mlir::ValueRange":$resultGrads,
                         "::llvm::SmallVectorImpl<::mlir::Value> &":$operandGrads)>,
  ];
}

def Weft_ShardingRuleOpInterface : OpInterface<"ShardingRuleOpInterface"> {
  let cppNamespace = "::weft";
  let description = [{
    Factor-based sharding rule (as in Shardy and GSPMD): the op's iteration
    space is a list of factors with sizes; each operand and result dimension
    is a product of factors (usually one, major to minor; none for a
    broadcast dimension of size 1). Kinds of factor:
    - parallel: in results and operands; each rank computes its block of it;
    - reduction: in operands only; a rank computes a partial result that the
      `reduction` of the rule (sum for products, the op's kind for
      `weft.reduce`) combines over the factor's axis;
    - blocked: the op needs the whole factor on every rank (a softmax's row,
      a norm's features, attention's sequences, an index's range); a sharded
      one is gathered first — except attention's sequences, which Ulysses
      trades for heads by all-to-all (passes/Partition).
    An op with no partitionable dimension (the optimizer, MoE routing,
    collectives) blocks every factor. Propagation and the SPMD partitioner
    (`weft-partition`) are generic over this rule.
  }];
  let methods = [
    InterfaceMethod<"The op's factor mapping.", "::weft::OpShardingRule",
                    "getShardingRule", (ins)>,
  ];
}

#endif // WEFT_INTERFACES_TD
