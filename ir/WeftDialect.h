// The weft dialect: attributes, interfaces and ops. Include this header to use
// any of them.
#ifndef WEFT_IR_WEFTDIALECT_H
#define WEFT_IR_WEFTDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "ir/WeftDialect.h.inc"
#include "ir/WeftEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "ir/WeftAttrs.h.inc"

#include "ir/WeftInterfaces.h"

#define GET_OP_CLASSES
#include "ir/WeftOps.h.inc"

namespace mlir::func {
class FuncOp;
} // namespace mlir::func

namespace weft {
/// True when `type` is a tensor in host memory (encoding #weft.host).
bool isHostTensor(mlir::Type type);

/// Bytes of a ranked tensor in memory (an i1 takes a byte), or
/// ShapedType::kDynamic when its shape is not static.
int64_t tensorBytes(mlir::Type type);

/// How many of `labels` are not `ignoreIndex`, as an f32 scalar: the
/// tokens a cross-entropy's mean divides by (before it is taken as 1 at
/// least).
mlir::Value countLabeledTokens(mlir::OpBuilder &b, mlir::Location loc,
                               mlir::Value labels, int64_t ignoreIndex);

/// The function that computes a model: @forward, else @train_step, else the
/// module's only function; null when there is none of them.
mlir::func::FuncOp findEntryFunction(mlir::ModuleOp module);
} // namespace weft

#endif // WEFT_IR_WEFTDIALECT_H
