// The weft dialect: declaration shared by its attributes, interfaces and ops.
#ifndef WEFT_DIALECT_TD
#define WEFT_DIALECT_TD

include "mlir/IR/OpBase.td"

def Weft_Dialect : Dialect {
  let name = "weft";
  let cppNamespace = "::weft";
  let summary = "Tensor programs for training and serving large language models";
  let description = [{
    The weft dialect describes a model as a function of tensors (builtin
    `tensor` type) with composite transformer ops (`rms_norm`, `rope`,
    `attention`, `cross_entropy`), collectives over the axes of a device mesh,
    blockwise quantization and host offload. Semantics are global (unsharded)
    until the partition phase; after it, shapes are per rank.

    Ops never broadcast implicitly: operands of elementwise ops have the same
    shape, and `weft.broadcast` makes the broadcast explicit, so that every
    op's sharding rule and cost follow from its operand shapes alone.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
    /// Name of the function-argument attribute that holds the parameter's
    /// checkpoint name (e.g. "model.layers.0.self_attn.q_proj.weight").
    static constexpr llvm::StringLiteral kParamAttrName = "weft.param";
    /// Name of the argument attribute of a model input (e.g. "input_ids").
    static constexpr llvm::StringLiteral kInputAttrName = "weft.input";
    /// Name of the result attribute of a model output (e.g. "logits").
    static constexpr llvm::StringLiteral kOutputAttrName = "weft.output";
    /// Name of the argument attribute of training state kept between runs
    /// (e.g. "model.norm.weight.exp_avg"); such arguments live in the plan's
    /// STATE region.
    static constexpr llvm::StringLiteral kStateAttrName = "weft.state";
    /// Name of the result attribute that makes a result the new value of the
    /// parameter or state argument it names, written over it in place.
    static constexpr llvm::StringLiteral kUpdateAttrName = "weft.update";
    /// Name of the argument/op attribute holding a #weft.sharding.
    static constexpr llvm::StringLiteral kShardingAttrName = "weft.sharding";
  }];
}

class Weft_Op<string mnemonic, list<Trait> traits = []>
    : Op<Weft_Dialect, mnemonic, traits>;

#endif // WEFT_DIALECT_TD
