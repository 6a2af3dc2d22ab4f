// What the CPU and CUDA kernel generators share: the C++ expression of an
// elementwise op and float literals. Expressions call std::exp, std::max, ...;
// CUDA sources define those names for the device (see Cuda/FusionGroupCuda).
#ifndef WEFT_CODEGEN_ELEMENTWISE_H
#define WEFT_CODEGEN_ELEMENTWISE_H

#include "mlir/IR/Operation.h"

#include <string>

namespace weft::codegen {

/// `value` as a C++ float literal that reads back to the same float.
std::string floatLiteral(double value);

/// The expression of an elementwise op's result from its operands'
/// expressions; empty when the op is not elementwise (convert aside, which
/// depends on the backend's types).
std::string elementwiseExpression(mlir::Operation *op,
                                  llvm::ArrayRef<std::string> operands);

} // namespace weft::codegen

#endif // WEFT_CODEGEN_ELEMENTWISE_H
