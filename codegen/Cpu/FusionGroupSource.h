// C++ source for one fusion group: a row loop (threads over rows) whose body
// runs each op of the group as one vectorisable loop over the row.
#ifndef WEFT_CODEGEN_CPU_FUSIONGROUPSOURCE_H
#define WEFT_CODEGEN_CPU_FUSIONGROUPSOURCE_H

#include "ir/WeftDialect.h"

#include "mlir/Support/LogicalResult.h"

#include <string>

namespace weft::codegen {

/// The source of `group` as
///   extern "C" void ENTRY(char *const *args, int threads)
/// where args are the base pointers of the group's inputs, then of its
/// results, then of the workspace (`scratchStride` bytes per thread). The
/// entry is named after a hash of the rest of the source, so identical groups
/// (the same layer's ops at every depth) share one kernel. Emits a diagnostic
/// on the op it cannot generate and fails.
mlir::FailureOr<std::pair<std::string, std::string>>
generateFusionGroupSource(FusionGroupOp group, int64_t scratchStride);

} // namespace weft::codegen

#endif // WEFT_CODEGEN_CPU_FUSIONGROUPSOURCE_H
