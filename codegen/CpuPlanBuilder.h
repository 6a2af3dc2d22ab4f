// Lowers a scheduled and bufferized @forward into a CPU Plan: buffers from
// the bufferize phase's annotations, one generated kernel per distinct fusion
// group, library calls for everything else.
#ifndef WEFT_CODEGEN_CPUPLANBUILDER_H
#define WEFT_CODEGEN_CPUPLANBUILDER_H

#include "runtime/plan.pb.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"

#include <string>

namespace weft::codegen {

struct CpuPlanOptions {
  /// What the plan was built from, recorded in it.
  std::string model;
  /// When set, every generated kernel's source is written here.
  std::string dumpKernelsDir;
};

/// Builds the plan. Emits a diagnostic at the op it cannot lower and fails.
mlir::FailureOr<plan::Plan> buildCpuPlan(mlir::ModuleOp module,
                                         const CpuPlanOptions &options);

} // namespace weft::codegen

#endif // WEFT_CODEGEN_CPUPLANBUILDER_H
