// Lowers a scheduled and bufferized @forward into a Plan for the CPU or CUDA:
// buffers from the bufferize phase's annotations, one generated kernel per
// distinct fusion group (C++ in a shared object, or CUDA C++ in a cubin),
// library calls for everything else. Both devices get the same buffers and
// steps; only the kernels differ.
#ifndef WEFT_CODEGEN_PLANBUILDER_H
#define WEFT_CODEGEN_PLANBUILDER_H

#include "runtime/plan.pb.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"

#include <string>

namespace weft::codegen {

enum class Device { Cpu, Cuda };

struct PlanOptions {
  /// What the plan was built from, recorded in it.
  std::string model;
  /// When set, every generated kernel's source is written here.
  std::string dumpKernelsDir;
  Device device = Device::Cpu;
};

/// Builds the plan. Emits a diagnostic at the op it cannot lower and fails.
mlir::FailureOr<plan::Plan> buildPlan(mlir::ModuleOp module,
                                      const PlanOptions &options);

} // namespace weft::codegen

#endif // WEFT_CODEGEN_PLANBUILDER_H
