// Attributes of the weft dialect: enums, the device mesh, tensor shardings and
// the host memory space.
#ifndef WEFT_ATTRS_TD
#define WEFT_ATTRS_TD

include "ir/WeftDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

class Weft_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Weft_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

//===----------------------------------------------------------------------===//
// Enums (integer attributes, printed as keywords in op assembly: `sum`)
//===----------------------------------------------------------------------===//

def Weft_ReduceKindAttr : I32EnumAttr<"ReduceKind", "how elements are combined", [
    I32EnumAttrCase<"sum", 0>, I32EnumAttrCase<"max", 1>,
    I32EnumAttrCase<"min", 2>, I32EnumAttrCase<"mean", 3>]> {
  let cppNamespace = "::weft";
}

def Weft_CompareDirectionAttr : I32EnumAttr<"CompareDirection", "comparison", [
    I32EnumAttrCase<"eq", 0>, I32EnumAttrCase<"ne", 1>, I32EnumAttrCase<"lt", 2>,
    I32EnumAttrCase<"le", 3>, I32EnumAttrCase<"gt", 4>, I32EnumAttrCase<"ge", 5>]> {
  let cppNamespace = "::weft";
}

def Weft_AttentionKindAttr : I32EnumAttr<"AttentionKind", "which (query, key) pairs attend", [
    I32EnumAttrCase<"full", 0>, I32EnumAttrCase<"causal", 1>,
    I32EnumAttrCase<"alibi", 2>, I32EnumAttrCase<"mask", 3>]> {
  let cppNamespace = "::weft";
}

def Weft_LossReductionAttr : I32EnumAttr<"LossReduction", "how per-token losses are combined", [
    I32EnumAttrCase<"mean", 0>, I32EnumAttrCase<"sum", 1>, I32EnumAttrCase<"none", 2>]> {
  let cppNamespace = "::weft";
}

def Weft_GeluApproximationAttr : I32EnumAttr<"GeluApproximation", "GELU formula", [
    I32EnumAttrCase<"none", 0>, I32EnumAttrCase<"tanh", 1>]> {
  let cppNamespace = "::weft";
}

//===----------------------------------------------------------------------===//
// Mesh and sharding
//===----------------------------------------------------------------------===//

def Weft_MeshAxisAttr : Weft_Attr<"MeshAxis", "mesh_axis"> {
  let summary = "One named axis of a device mesh";
  let parameters = (ins StringRefParameter<"axis name">:$name,
                        "int64_t":$size);
  let assemblyFormat = "`<` $name `=` $size `>`";
}

def Weft_MeshAttr : Weft_Attr<"Mesh", "mesh"> {
  let summary = "A named, ordered set of device axes";
  let description = [{
    A mesh arranges the ranks of a job as an N-dimensional grid whose axes have
    names and sizes; rank r has coordinates given by r in row-major order over
    the axes (the last axis varies fastest). Collectives and shardings name
    axes of a mesh.

    Example: `#weft.mesh<["dp"=2, "sp"=4]>` — 8 ranks, sequence-parallel
    groups of 4 consecutive ranks.

    Constraints:
    - (C1) at least one axis.
    - (C2) axis names are non-empty and unique.
    - (C3) every axis size is at least 1.
  }];
  let parameters = (ins ArrayRefParameter<"MeshAxisAttr", "axes">:$axes);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The axis named `name`, or null.
    MeshAxisAttr getAxis(llvm::StringRef name) const;
    /// Product of the sizes of the named axes; -1 if one is not in the mesh.
    int64_t getGroupSize(llvm::ArrayRef<llvm::StringRef> names) const;
    int64_t getGroupSize(mlir::ArrayAttr names) const;
    /// Number of ranks in the whole mesh.
    int64_t getNumRanks() const;
  }];
}

def Weft_ShardingAttr : Weft_Attr<"Sharding", "sharding"> {
  let summary = "How each dimension of a tensor is split over mesh axes";
  let description = [{
    One entry per tensor dimension: the mesh axes (major to minor) over which
    that dimension is split; `{}` means replicated along that dimension. Axes
    not named anywhere replicate the whole tensor.

    Example: `#weft.sharding<#weft.mesh<["dp"=2, "sp"=4]>, [{"dp"}, {"sp"}, {} ]>`
    — a [batch, seq, hidden] activation with the batch on `dp` and the sequence
    on `sp` (Ulysses).

    Constraints:
    - (C1) every named axis is an axis of the mesh.
    - (C2) no axis is used twice.
    - (C3) where attached to a tensor, one entry per dimension of the tensor.
  }];
  let parameters = (ins "MeshAttr":$mesh, "mlir::ArrayAttr":$dims);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// Number of shards along dimension `dim` (product of its axes' sizes).
    int64_t getNumShards(unsigned dim) const;
  }];
}

def Weft_HostMemoryAttr : Weft_Attr<"HostMemory", "host"> {
  let summary = "Tensor encoding: the tensor lives in host memory";
  let description = [{
    Used as the encoding of a ranked tensor type, `tensor<4x8xbf16, #weft.host>`
    marks a value that `weft.offload` moved to host memory; only `weft.reload`
    consumes it.
  }];
}

def Weft_BufferAttr : Weft_Attr<"Buffer", "buffer"> {
  let summary = "Where a value lives once buffers are assigned";
  let description = [{
    Set by the bufferize phase on every op result (`weft.buffers`, one per
    result) and function argument (`weft.buffer`): the memory region and the
    byte offset in it. Values in the arena are 64-byte aligned; a reshape
    shares its operand's buffer. Training state (`weft.state` arguments and
    the results that update them) lies in "state", laid out by name when the
    plan is built (offset 0 here).

    Example: `#weft.buffer<"arena", 4096>`.

    Constraints:
    - (C1) the region is "arena", "parameters", "constants" or "state".
    - (C2) the offset is non-negative and a multiple of 64.
  }];
  let parameters = (ins StringRefParameter<"memory region">:$region,
                        "int64_t":$offset);
  let assemblyFormat = "`<` $region `,` $offset `>`";
  let genVerifyDecl = 1;
}

#endif // WEFT_ATTRS_TD
