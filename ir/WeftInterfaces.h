// C++ side of the weft op interfaces (ir/WeftInterfaces.td): the value types
// their methods return.
#ifndef WEFT_IR_WEFTINTERFACES_H
#define WEFT_IR_WEFTINTERFACES_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpDefinition.h"
#include "llvm/ADT/SmallVector.h"

namespace weft {

/// The work of one op execution; see CostOpInterface for the counting rules.
struct OpCost {
  int64_t flops = 0;
  int64_t memoryBytes = 0;
  int64_t commBytes = 0;
  int64_t transferBytes = 0;
  /// False when a dynamic dimension made the counts unknowable.
  bool isKnown = true;

  OpCost &operator+=(const OpCost &other) {
    flops += other.flops;
    memoryBytes += other.memoryBytes;
    commBytes += other.commBytes;
    transferBytes += other.transferBytes;
    isKnown = isKnown && other.isKnown;
    return *this;
  }
  static OpCost unknown() {
    OpCost cost;
    cost.isKnown = false;
    return cost;
  }
};

/// How an op joins fusion groups; see FusibleOpInterface.
enum class FusionKind { Elementwise, RowReduction, Opaque };

/// A factor-based sharding rule; see ShardingRuleOpInterface.
struct OpShardingRule {
  /// Size of each factor of the op's iteration space.
  llvm::SmallVector<int64_t> factorSizes;
  /// For each operand (result), for each dimension, the factors it is made of.
  llvm::SmallVector<llvm::SmallVector<llvm::SmallVector<int64_t, 1>>>
      operandFactors;
  llvm::SmallVector<llvm::SmallVector<llvm::SmallVector<int64_t, 1>>>
      resultFactors;
};

} // namespace weft

#include "ir/WeftInterfaces.h.inc"

#endif // WEFT_IR_WEFTINTERFACES_H
