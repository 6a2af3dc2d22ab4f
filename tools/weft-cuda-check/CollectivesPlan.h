// A plan made of every collective the runtime runs, on one mesh axis of
// `ranks` members: weft-cuda-check --collectives runs it on the CPU (MPI)
// and on the GPU (NCCL) and compares every step, on one GPU (a group of
// one: loading NCCL, its communicator, the streams and events) or under
// mpirun on several (the blocks' placement too).
#ifndef WEFT_TOOLS_CUDACHECK_COLLECTIVESPLAN_H
#define WEFT_TOOLS_CUDACHECK_COLLECTIVESPLAN_H

#include "runtime/plan.pb.h"

#include <string>

namespace weft::cudacheck {

/// Inputs x (f32 [2P, 3P, 4P]) and ids (i64 [4P]); steps: all_reduce sum
/// and mean, reduce_scatter, all_gather along an inner dimension (staged),
/// all_slice, all_to_all staged on both sides (Ulysses' exchange), a started
/// gather and a copy that waits for it, grad_norm over the group, all_reduce
/// max of i64; outputs y (the copy), norm and ids_max. `device` is "cpu" or
/// "cuda".
plan::Plan collectivesPlan(int64_t ranks, const std::string &device);

} // namespace weft::cudacheck

#endif // WEFT_TOOLS_CUDACHECK_COLLECTIVESPLAN_H
