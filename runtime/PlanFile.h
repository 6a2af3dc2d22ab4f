// Reading and writing Plan files: "WEFTPLAN", then the serialized Plan whose
// checksum field holds the FNV-1a 64 of the plan serialized with it zero.
#ifndef WEFT_RUNTIME_PLANFILE_H
#define WEFT_RUNTIME_PLANFILE_H

#include "runtime/HostTensor.h"
#include "runtime/plan.pb.h"

#include <functional>
#include <string>
#include <vector>

namespace weft::runtime {

class Communicator;
class SafetensorsCheckpoint;

/// The Plan format this runtime reads and the compiler writes (3: a matmul
/// call names its accumulator, -1 for none).
constexpr uint32_t kPlanFormatVersion = 3;

/// Checksum of `plan` as stored in its checksum field.
uint64_t planChecksum(const plan::Plan &plan);

/// Sets the version and checksum and writes `plan` to `path` atomically
/// (temporary file, fsync, rename). Throws Error.
void writePlan(plan::Plan plan, const std::string &path);

/// Reads and checks a plan: magic, parse, version, checksum, and that every
/// buffer and kernel reference is in range. Throws Error naming the file.
plan::Plan readPlan(const std::string &path);

/// The index of input `name` and `tensor` as the plan's buffer holds it
/// (f32 rounded to bf16 for a bf16 input). Throws Error naming the input and
/// what was expected, or the plan's inputs when it has no such input.
std::pair<int, HostTensor> bindInput(const plan::Plan &plan,
                                     const std::string &planName,
                                     const std::string &name,
                                     const HostTensor &tensor);

/// The buffer of output `name`. Throws Error naming the plan.
int outputBuffer(const plan::Plan &plan, const std::string &planName,
                 const std::string &name);

/// Parameter values from `seed` into `region` (the plan's PARAMETERS):
/// normal(0, 0.02), norm weights one. The same on every device. A sharded
/// parameter (a binding with global_elements: a ZeRO-3 block, a
/// tensor-parallel slice) gets its part of the whole tensor's values: block
/// `member(binding)` of them.
void fillParameters(
    const plan::Plan &plan, const std::string &planName, uint64_t seed,
    char *region,
    const std::function<int64_t(const plan::Binding &)> &member = {});

/// Reads every parameter of `checkpoint` by name into `region` (the plan's
/// PARAMETERS). A sharded parameter is whole in the checkpoint; this rank
/// keeps block `member` of it (`shardMember`).
void readParameters(
    const plan::Plan &plan, const SafetensorsCheckpoint &checkpoint,
    char *region, const std::function<int64_t(const plan::Binding &)> &member);

/// The member of its group whose block a sharded binding holds on this
/// rank (0 when it is whole). Throws Error naming `planName` when the plan
/// has no mesh (`comm` null).
int64_t shardMember(const plan::Plan &plan, const std::string &planName,
                    const Communicator *comm, const plan::Binding &binding);

/// Ranks in the group of the plan's mesh axes in `axisMask` (bit a: axis a);
/// Communicator::groupSize of a launch laid out on this mesh.
int64_t meshGroupSize(const plan::Plan &plan, uint32_t axisMask);

/// What a step runs: the name of the kernel it launches or of the library
/// function it calls.
const std::string &stepFunction(const plan::Plan &plan, const plan::Step &step);

/// Whether `step` reads or writes memory of any of `buffers` (reshapes
/// alias, so ids are not enough): where a started collective is waited for.
bool stepTouches(const plan::Plan &plan, const plan::Step &step,
                 const std::vector<int> &buffers);

/// The mesh-axis mask of the group that holds a sharded binding's blocks
/// (bit a: mesh axis a); 0 when the binding is not a block.
uint32_t shardGroup(const plan::Plan &plan, const plan::Binding &binding);

/// Where a sharded binding's blocks lie in the whole tensor of `elements`:
/// each member's block is `runs` runs of `run` elements, the r-th of member
/// m at element (r · members + m) · run. ZeRO's flat blocks are one run
/// (the last blocks padded with zeros past the tensor's end when the
/// members do not divide it); a tensor-parallel slice along dimension d has
/// as many runs as the elements before d.
struct ShardLayout {
  int64_t members = 1, runs = 1, run = 0, elements = 0;

  /// The layout of `binding` of `plan` (its group's size from the mesh),
  /// whose block on this rank holds `local` elements.
  static ShardLayout of(const plan::Plan &plan, const plan::Binding &binding,
                        int64_t local);
  /// Member `member`'s block of the whole tensor `whole`, into `block`
  /// (zeros past the tensor's end).
  void take(int64_t member, const char *whole, char *block,
            int64_t elementBytes) const;
  /// Every member's block in member order (an all-gather's result, members
  /// × runs × run elements), into the whole tensor `whole`.
  void place(const char *blocks, char *whole, int64_t elementBytes) const;
};

/// Short name of a dtype ("f32") and its element size in bytes.
const char *dtypeName(plan::DType dtype);
int64_t dtypeBytes(plan::DType dtype);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_PLANFILE_H
