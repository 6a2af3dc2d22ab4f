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
  /// Factors the op needs whole on every rank.
  llvm::SmallVector<int64_t> blockedFactors;
  /// How partial results of a sharded reduction factor combine.
  ReduceKind reduction = ReduceKind::sum;

  /// A new factor of `size` (blocked or not); its index.
  int64_t addFactor(int64_t size, bool blocked = false) {
    factorSizes.push_back(size);
    if (blocked)
      blockedFactors.push_back(factorSizes.size() - 1);
    return factorSizes.size() - 1;
  }
  bool isBlocked(int64_t factor) const {
    return llvm::is_contained(blockedFactors, factor);
  }
  /// True when `factor` appears in no result.
  bool isReduction(int64_t factor) const;
};

} // namespace weft

#include "ir/WeftInterfaces.h.inc"

#endif // WEFT_IR_WEFTINTERFACES_H
