// CUDA C++ source for one fusion group. A group whose ops are all
// elementwise is one grid-stride loop over its elements; a group with a
// row-wise op (RMSNorm, LayerNorm, softmax) takes one block per row: each
// row-wise op's statistics come from a pass over the row ending in a block
// reduction, and the last pass computes and stores the results. Values are
// recomputed from the inputs in every pass instead of kept in memory, so a
// group needs no scratch and any row length; where a row takes at most two
// chunks a thread, each thread loads its chunks of the inputs once, into
// registers, for every pass. Each thread handles chunks of
// V adjacent columns, loaded and stored as one vector (16 bytes for f32).
#ifndef WEFT_CODEGEN_CUDA_FUSIONGROUPCUDA_H
#define WEFT_CODEGEN_CUDA_FUSIONGROUPCUDA_H

#include "ir/WeftDialect.h"

#include "mlir/Support/LogicalResult.h"

#include <string>

namespace weft::codegen {

struct CudaKernelSource {
  std::string entry;  // extern "C" __global__ name, a hash of the source
  std::string source; // NVRTC input; includes nothing
  int64_t gridBlocks = 0;
  int blockThreads = 0;
};

/// The kernel for `group`:
///   ENTRY(inputs..., results..., char *workspace)
/// with one pointer per buffer, as the CPU kernel takes them (the workspace
/// is unused). Emits a diagnostic on the op it cannot generate and fails.
mlir::FailureOr<CudaKernelSource> generateCudaFusionGroup(FusionGroupOp group);

} // namespace weft::codegen

#endif // WEFT_CODEGEN_CUDA_FUSIONGROUPCUDA_H
