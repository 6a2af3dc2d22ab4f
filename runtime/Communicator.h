// Collectives between the ranks of a job on the CPU, through MPI (OpenMPI):
// one communicator per group of mesh axes, made by MPI_Comm_split, and byte
// counters per collective kind and group. A process started without mpirun
// is a world of one.
#ifndef WEFT_RUNTIME_COMMUNICATOR_H
#define WEFT_RUNTIME_COMMUNICATOR_H

#include "runtime/plan.pb.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace weft::runtime {

class Communicator {
public:
  /// The job's ranks: initialises MPI on first use (MPI_THREAD_FUNNELED) and
  /// finalises it at exit.
  static Communicator &world();
  /// The job laid out on `plan`'s mesh (setMesh) when it has one — a plan
  /// for several ranks runs under mpirun with as many — else null. Throws
  /// Error naming `planName` when the launch does not fit the mesh.
  static Communicator *forPlan(const plan::Plan &plan,
                               const std::string &planName);
  /// The ranks mpirun launched this process among (OMPI_COMM_WORLD_SIZE,
  /// PMI_SIZE), 1 without it — known without initialising MPI.
  static int launchedRanks();
  /// This process's place among the ranks launched on its node
  /// (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID, MPI_LOCALRANKID), 0 without
  /// a launcher: which GPU a rank takes.
  static int localRank();

  int rank() const { return worldRank; }
  int size() const { return worldSize; }

  /// Lays the ranks out on `mesh` (row-major, the last axis fastest) and
  /// makes a communicator for every group of axes. Throws Error when the
  /// mesh does not have size() ranks, naming both.
  void setMesh(const std::vector<std::pair<std::string, int64_t>> &mesh);
  const std::vector<std::pair<std::string, int64_t>> &mesh() const {
    return axes;
  }
  /// This rank's coordinate on axis `axis`.
  int64_t coordinate(int axis) const;
  /// The group of the axes in `axisMask` (bit i: mesh axis i): its size, and
  /// this rank's position in it (row-major over the group's axes).
  int64_t groupSize(uint32_t axisMask) const;
  int64_t groupRank(uint32_t axisMask) const;

  /// The collectives, on the group of the axes in `axisMask` (bit i: mesh
  /// axis i). `send` and `receive` may be the same memory where MPI allows.
  /// Elements are `dtype` (f32, i64 and f64 reduce; bf16 moves).
  enum class Reduction { Sum, Max, Mean };
  void allReduce(const void *send, void *receive, int64_t count,
                 plan::DType dtype, Reduction reduction, uint32_t axisMask);
  /// Concatenates the members' `count` elements in member order.
  void allGather(const void *send, void *receive, int64_t count,
                 plan::DType dtype, uint32_t axisMask);
  /// allGather started and left running (MPI_Iallgather): `receive` is
  /// ready, and `send` may change, once wait() returned. Collectives are
  /// started in the same order on every rank, as all are.
  struct Request;
  std::shared_ptr<Request> startAllGather(const void *send, void *receive,
                                          int64_t count, plan::DType dtype,
                                          uint32_t axisMask);
  /// Completes a started collective (again: nothing).
  void wait(Request &request);
  /// Reduces `count` × P elements and keeps member m's m-th block of count.
  void reduceScatter(const void *send, void *receive, int64_t count,
                     plan::DType dtype, Reduction reduction, uint32_t axisMask);
  /// Sends block j (of `count` elements) to member j, receives member j's
  /// block into block j.
  void allToAll(const void *send, void *receive, int64_t count,
                plan::DType dtype, uint32_t axisMask);

  /// Sends `bytes` bytes from the group's member `root` to every member
  /// (NCCL's unique ids).
  void broadcast(void *data, int64_t bytes, int64_t root, uint32_t axisMask);
  /// Counts a collective another transport ran on the group (NCCL on GPUs)
  /// as the MPI ones count themselves: `count` elements of `dtype` — the
  /// whole tensor for all_reduce, one member's block for all_gather,
  /// reduce_scatter and all_to_all.
  void countCollective(const char *kind, int64_t count, plan::DType dtype,
                       uint32_t axisMask);

  /// Bytes this rank sent, by collective kind and group ("all_reduce",
  /// "dp") — what the run summary prints.
  const std::map<std::pair<std::string, std::string>, int64_t> &
  bytesSent() const {
    return sent;
  }
  /// Ends every rank of the job with `message` (printed by this rank, the
  /// others are stopped by MPI); a world of one just exits. Never returns.
  [[noreturn]] void abort(const std::string &message);

  Communicator(const Communicator &) = delete;
  Communicator &operator=(const Communicator &) = delete;
  ~Communicator();

private:
  Communicator();
  struct Groups;
  /// The communicator of a group of axes and its size (defined with MPI's
  /// types in the source); throws Error when the mesh was not set.
  struct Group;
  Group group(uint32_t axisMask) const;
  std::string groupName(uint32_t axisMask) const;

  int worldRank = 0, worldSize = 1;
  std::vector<std::pair<std::string, int64_t>> axes;
  std::unique_ptr<Groups> groups;
  std::map<std::pair<std::string, std::string>, int64_t> sent;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_COMMUNICATOR_H
