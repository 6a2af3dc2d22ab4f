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

/// How `input` of `group` lines up with the group's rows: a whole row (the
/// group's shape), a per-column vector (rank 1, the row length: norm
/// weights) or one value per row (the group's shape without its last
/// dimension, read only by broadcasts along the rows).
enum class InputLayout { Row, Column, PerRow };

/// `input`'s layout; an error on the group when it has none of them.
mlir::FailureOr<InputLayout> inputLayout(FusionGroupOp group,
                                         mlir::BlockArgument input);

/// That `op` of `group` is a row producer the generators take: an iota along
/// the last dimension, a broadcast of a per-row input along the rows or of a
/// column input to every row; an error on the op otherwise.
mlir::LogicalResult checkRowProducer(FusionGroupOp group, mlir::Operation *op);

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
