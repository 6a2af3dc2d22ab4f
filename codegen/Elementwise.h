// What the CPU and CUDA kernel generators share: the C++ types of elements,
// the row layout of group inputs, the C++ expression of an elementwise op and
// float literals. Expressions call std::exp, std::max, ...;
// CUDA sources define those names for the device (see Cuda/FusionGroupCuda).
#ifndef WEFT_CODEGEN_ELEMENTWISE_H
#define WEFT_CODEGEN_ELEMENTWISE_H

#include "ir/WeftDialect.h"

#include "mlir/IR/Operation.h"

#include <string>

namespace weft::codegen {

/// How a tensor's elements live in generated code: the C++ type they are
/// stored in (bf16 as its bits), the one they are computed in (bf16 widens to
/// float) and the bytes of one.
struct ElementCTypes {
  llvm::StringRef storage, compute;
  int bytes;
};

/// The types of `tensorType`'s elements; an error on `where` naming
/// `backend` ("CPU", "CUDA") for an element type the generators do not take.
mlir::FailureOr<ElementCTypes> elementCTypes(mlir::Operation *where,
                                             mlir::Type tensorType,
                                             llvm::StringRef backend);

/// Whether `input` of `group` is a whole row (the group's shape) rather than
/// a per-column vector (rank 1, the row length); an error on the group when
/// it is neither.
mlir::FailureOr<bool> isWholeRowInput(FusionGroupOp group,
                                      mlir::BlockArgument input);

/// `value` as a C++ float literal that reads back to the same float.
std::string floatLiteral(double value);

/// The CPU definition of the `weftSelect(p, a, b)` that select expressions
/// call (the CUDA prelude has its own).
extern const char *const kSelectHelper;

/// The expression of an elementwise op's result from its operands'
/// expressions; empty when the op is not elementwise (convert aside, which
/// depends on the backend's types).
std::string elementwiseExpression(mlir::Operation *op,
                                  llvm::ArrayRef<std::string> operands);

} // namespace weft::codegen

#endif // WEFT_CODEGEN_ELEMENTWISE_H
