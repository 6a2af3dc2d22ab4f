#include "runtime/Communicator.h"

#include "runtime/Error.h"
#include "runtime/PlanFile.h"

// The C API only: OpenMPI's deprecated C++ bindings need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

using namespace weft::runtime;

struct Communicator::Group {
  MPI_Comm comm;
  int members;
};

struct Communicator::Groups {
  std::map<uint32_t, MPI_Comm> byMask;
  ~Groups() {
    for (auto &[mask, comm] : byMask)
      MPI_Comm_free(&comm);
  }
};

namespace {
MPI_Datatype mpiType(weft::plan::DType dtype) {
  switch (dtype) {
  case weft::plan::F32:
    return MPI_FLOAT;
  case weft::plan::I64:
    return MPI_INT64_T;
  case weft::plan::F64:
    return MPI_DOUBLE;
  case weft::plan::BF16:
  case weft::plan::F16:
    return MPI_UINT16_T; // moved, never reduced
  default:
    throw Error(std::string("collectives do not take ") + dtypeName(dtype));
  }
}

/// MPI counts elements in an int.
int elementCount(int64_t count, const char *what) {
  if (count < 0 || count > std::numeric_limits<int>::max())
    throw Error(std::string(what) + " of " + std::to_string(count) +
                " elements: MPI counts at most " +
                std::to_string(std::numeric_limits<int>::max()) + " per call");
  return static_cast<int>(count);
}

void check(int status, const char *what) {
  if (status == MPI_SUCCESS)
    return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  throw Error(std::string(what) + ": " + std::string(text, length));
}
} // namespace

int Communicator::launchedRanks() {
  for (const char *name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char *value = std::getenv(name))
      if (int ranks = std::atoi(value); ranks > 0)
        return ranks;
  return 1;
}

Communicator *Communicator::forPlan(const plan::Plan &plan,
                                    const std::string &planName) {
  if (plan.mesh_size() == 0)
    return nullptr;
  std::vector<std::pair<std::string, int64_t>> mesh;
  for (const auto &axis : plan.mesh())
    mesh.push_back({axis.name(), axis.size()});
  Communicator &comm = world();
  try {
    comm.setMesh(mesh);
  } catch (const Error &error) {
    throw Error(planName + ": " + error.what());
  }
  return &comm;
}

int Communicator::localRank() {
  for (const char *name :
       {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
    if (const char *value = std::getenv(name))
      return std::atoi(value);
  return 0;
}

Communicator &Communicator::world() {
  static Communicator instance;
  return instance;
}

Communicator::Communicator() : groups(std::make_unique<Groups>()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  }
  // Errors come back as codes (then exceptions), not MPI's own abort.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &worldRank);
  MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
}

Communicator::~Communicator() {
  groups.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized)
    MPI_Finalize();
}

void Communicator::setMesh(
    const std::vector<std::pair<std::string, int64_t>> &mesh) {
  int64_t ranks = 1;
  std::string shape;
  for (const auto &[name, size] : mesh) {
    ranks *= size;
    shape += (shape.empty() ? "" : ", ") + name + "=" + std::to_string(size);
  }
  if (ranks != worldSize)
    throw Error("the plan's mesh (" + shape + ") has " + std::to_string(ranks) +
                " ranks, this launch has " + std::to_string(worldSize) +
                (worldSize == 1 ? " (run it under mpirun -np " +
                                      std::to_string(ranks) + ")"
                                : ""));
  if (mesh.size() > 16)
    throw Error("a mesh has at most 16 axes");
  if (mesh == axes && !groups->byMask.empty())
    return;
  groups = std::make_unique<Groups>();
  axes = mesh;
  // Every non-empty group of axes: ranks that agree on the other axes'
  // coordinates form one group, ordered by their coordinates on the group's.
  for (uint32_t mask = 1; mask < (1u << mesh.size()); ++mask) {
    int64_t colour = 0, key = 0;
    for (size_t a = 0; a < mesh.size(); ++a) {
      const int64_t c = coordinate(static_cast<int>(a));
      if (mask & (1u << a))
        key = key * mesh[a].second + c;
      else
        colour = colour * mesh[a].second + c;
    }
    MPI_Comm comm;
    check(MPI_Comm_split(MPI_COMM_WORLD, static_cast<int>(colour),
                         static_cast<int>(key), &comm),
          "MPI_Comm_split");
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    groups->byMask[mask] = comm;
  }
}

int64_t Communicator::coordinate(int axis) const {
  int64_t stride = 1;
  for (size_t a = axes.size(); a-- > static_cast<size_t>(axis) + 1;)
    stride *= axes[a].second;
  return (worldRank / stride) % axes[axis].second;
}

int64_t Communicator::groupSize(uint32_t axisMask) const {
  int64_t size = 1;
  for (size_t a = 0; a < axes.size(); ++a)
    if (axisMask & (1u << a))
      size *= axes[a].second;
  return size;
}

int64_t Communicator::groupRank(uint32_t axisMask) const {
  int64_t position = 0;
  for (size_t a = 0; a < axes.size(); ++a)
    if (axisMask & (1u << a))
      position = position * axes[a].second + coordinate(static_cast<int>(a));
  return position;
}

std::string Communicator::groupName(uint32_t axisMask) const {
  std::string name;
  for (size_t a = 0; a < axes.size(); ++a)
    if (axisMask & (1u << a))
      name += (name.empty() ? "" : ",") + axes[a].first;
  return name;
}

void Communicator::countCollective(const char *kind, int64_t count,
                                   plan::DType dtype, uint32_t axisMask) {
  const int64_t members = groupSize(axisMask);
  const int64_t bytes = count * dtypeBytes(dtype);
  // The ring algorithms REFERENCE.md's formulas assume: an all-reduce is a
  // reduce-scatter and an all-gather; the others send every block but
  // their own once.
  sent[{kind, groupName(axisMask)}] += std::string(kind) == "all_reduce"
                                           ? 2 * (members - 1) * bytes / members
                                           : (members - 1) * bytes;
}

Communicator::Group Communicator::group(uint32_t axisMask) const {
  auto found = groups->byMask.find(axisMask);
  if (found == groups->byMask.end())
    throw Error("no communicator for mesh axes " + std::to_string(axisMask) +
                "; the plan's mesh was not set");
  Group g{found->second, 0};
  MPI_Comm_size(g.comm, &g.members);
  return g;
}

namespace {
/// A reduction's MPI operation (a mean is a sum, divided after).
MPI_Op mpiOp(Communicator::Reduction reduction) {
  return reduction == Communicator::Reduction::Max ? MPI_MAX : MPI_SUM;
}

/// A mean reduction's sum divided by the group's members (f32 only).
void divideByMembers(Communicator::Reduction reduction, void *data,
                     int64_t count, weft::plan::DType dtype, int members) {
  if (reduction != Communicator::Reduction::Mean)
    return;
  if (dtype != weft::plan::F32)
    throw Error("a mean reduction takes f32");
  float *y = static_cast<float *>(data);
  const float inverse = 1.0f / static_cast<float>(members);
  for (int64_t i = 0; i < count; ++i)
    y[i] *= inverse;
}
} // namespace

void Communicator::allReduce(const void *send, void *receive, int64_t count,
                             plan::DType dtype, Reduction reduction,
                             uint32_t axisMask) {
  const auto [comm, members] = group(axisMask);
  check(MPI_Allreduce(send == receive ? MPI_IN_PLACE : send, receive,
                      elementCount(count, "an all-reduce"), mpiType(dtype),
                      mpiOp(reduction), comm),
        "MPI_Allreduce");
  divideByMembers(reduction, receive, count, dtype, members);
  countCollective("all_reduce", count, dtype, axisMask);
}

void Communicator::allGather(const void *send, void *receive, int64_t count,
                             plan::DType dtype, uint32_t axisMask) {
  const MPI_Comm comm = group(axisMask).comm;
  const int n = elementCount(count, "an all-gather");
  check(
      MPI_Allgather(send, n, mpiType(dtype), receive, n, mpiType(dtype), comm),
      "MPI_Allgather");
  countCollective("all_gather", count, dtype, axisMask);
}

struct Communicator::Request {
  MPI_Request request = MPI_REQUEST_NULL;
};

std::shared_ptr<Communicator::Request>
Communicator::startAllGather(const void *send, void *receive, int64_t count,
                             plan::DType dtype, uint32_t axisMask) {
  const MPI_Comm comm = group(axisMask).comm;
  const int n = elementCount(count, "an all-gather");
  auto started = std::make_shared<Request>();
  check(MPI_Iallgather(send, n, mpiType(dtype), receive, n, mpiType(dtype),
                       comm, &started->request),
        "MPI_Iallgather");
  countCollective("all_gather", count, dtype, axisMask);
  return started;
}

void Communicator::wait(Request &request) {
  if (request.request != MPI_REQUEST_NULL)
    check(MPI_Wait(&request.request, MPI_STATUS_IGNORE), "MPI_Wait");
}

void Communicator::reduceScatter(const void *send, void *receive, int64_t count,
                                 plan::DType dtype, Reduction reduction,
                                 uint32_t axisMask) {
  const auto [comm, members] = group(axisMask);
  check(MPI_Reduce_scatter_block(send, receive,
                                 elementCount(count, "a reduce-scatter"),
                                 mpiType(dtype), mpiOp(reduction), comm),
        "MPI_Reduce_scatter_block");
  divideByMembers(reduction, receive, count, dtype, members);
  countCollective("reduce_scatter", count, dtype, axisMask);
}

void Communicator::allToAll(const void *send, void *receive, int64_t count,
                            plan::DType dtype, uint32_t axisMask) {
  const MPI_Comm comm = group(axisMask).comm;
  const int n = elementCount(count, "an all-to-all");
  check(MPI_Alltoall(send, n, mpiType(dtype), receive, n, mpiType(dtype), comm),
        "MPI_Alltoall");
  countCollective("all_to_all", count, dtype, axisMask);
}

void Communicator::broadcast(void *data, int64_t bytes, int64_t root,
                             uint32_t axisMask) {
  check(MPI_Bcast(data, elementCount(bytes, "a broadcast"), MPI_BYTE,
                  static_cast<int>(root), group(axisMask).comm),
        "MPI_Bcast");
}

void Communicator::abort(const std::string &message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  if (worldSize > 1)
    MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}
