// Plan files: atomic writes, and reads that reject anything truncated,
// corrupted, of another version or internally inconsistent.
#include "runtime/PlanFile.h"

#include "kernels/cpu/Kernels.h"
#include "runtime/AtomicFile.h"
#include "runtime/Communicator.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

using namespace weft::runtime;
using weft::plan::Plan;

namespace {
constexpr char kMagic[8] = {'W', 'E', 'F', 'T', 'P', 'L', 'A', 'N'};

uint64_t fnv1a(const std::string &bytes) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string serialize(const Plan &plan) {
  std::string bytes;
  if (!plan.SerializeToString(&bytes))
    throw Error("cannot serialize the plan");
  return bytes;
}

void checkReferences(const Plan &plan, const std::string &path) {
  auto fail = [&](const std::string &what) {
    throw Error(path + ": inconsistent plan: " + what);
  };
  const int buffers = plan.buffers_size();
  auto checkBuffer = [&](int id, const std::string &where) {
    if (id < -1 || id >= buffers)
      fail(where + " refers to buffer " + std::to_string(id) + " of " +
           std::to_string(buffers));
  };
  for (const auto &buffer : plan.buffers()) {
    int64_t limit =
        buffer.region() == weft::plan::ARENA        ? plan.memory().arena()
        : buffer.region() == weft::plan::PARAMETERS ? plan.memory().parameters()
        : buffer.region() == weft::plan::STATE      ? plan.memory().state()
        : buffer.region() == weft::plan::HOST       ? plan.memory().host()
                                                    : plan.memory().constants();
    if (buffer.offset() < 0 || buffer.bytes() < 0 ||
        buffer.offset() + buffer.bytes() > limit)
      fail("buffer '" + buffer.name() + "' lies outside its region");
  }
  for (const auto &stream : plan.streams())
    for (const auto &step : stream.steps()) {
      if (step.has_launch()) {
        if (step.launch().kernel() < 0 ||
            step.launch().kernel() >= plan.kernels_size())
          fail("step '" + step.name() + "' launches a missing kernel");
        for (int id : step.launch().buffers())
          checkBuffer(id, "step '" + step.name() + "'");
      } else if (step.has_call()) {
        for (int id : step.call().buffers())
          checkBuffer(id, "step '" + step.name() + "'");
      } else {
        fail("step '" + step.name() + "' has no operation");
      }
    }
  for (const auto *bindings :
       {&plan.parameters(), &plan.inputs(), &plan.outputs(), &plan.state()})
    for (const auto &binding : *bindings)
      if (binding.buffer() < 0 || binding.buffer() >= buffers)
        fail("'" + binding.name() + "' is bound to a missing buffer");
  if (static_cast<int64_t>(plan.constants().size()) !=
      plan.memory().constants())
    fail("the constants hold " + std::to_string(plan.constants().size()) +
         " bytes, the memory table says " +
         std::to_string(plan.memory().constants()));
}
} // namespace

uint64_t weft::runtime::planChecksum(const Plan &plan) {
  Plan copy = plan;
  copy.set_checksum(0);
  return fnv1a(serialize(copy));
}

void weft::runtime::writePlan(Plan plan, const std::string &path) {
  plan.set_format_version(kPlanFormatVersion);
  plan.set_checksum(planChecksum(plan));
  std::string bytes(kMagic, sizeof(kMagic));
  bytes += serialize(plan);

  writeAtomically(path, bytes);
}

Plan weft::runtime::readPlan(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    throw Error(path + ": cannot open: " + std::strerror(errno));
  std::stringstream contents;
  contents << file.rdbuf();
  std::string bytes = contents.str();
  if (bytes.size() < sizeof(kMagic) ||
      std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    throw Error(path + ": not a weft plan (no WEFTPLAN header)");
  Plan plan;
  if (!plan.ParseFromArray(bytes.data() + sizeof(kMagic),
                           static_cast<int>(bytes.size() - sizeof(kMagic))))
    throw Error(path + ": truncated or corrupted plan (it does not parse)");
  if (plan.format_version() != kPlanFormatVersion)
    throw Error(path + ": plan format version " +
                std::to_string(plan.format_version()) +
                ", this runtime reads version " +
                std::to_string(kPlanFormatVersion) + "; recompile the plan");
  if (plan.checksum() != planChecksum(plan))
    throw Error(path + ": corrupted plan (checksum mismatch)");
  checkReferences(plan, path);
  return plan;
}

const char *weft::runtime::dtypeName(plan::DType dtype) {
  switch (dtype) {
  case plan::F32:
    return "f32";
  case plan::BF16:
    return "bf16";
  case plan::F16:
    return "f16";
  case plan::I64:
    return "i64";
  case plan::I32:
    return "i32";
  case plan::I8:
    return "i8";
  case plan::I1:
    return "i1";
  case plan::F64:
    return "f64";
  default:
    return "unknown";
  }
}

int64_t weft::runtime::dtypeBytes(plan::DType dtype) {
  switch (dtype) {
  case plan::F32:
  case plan::I32:
    return 4;
  case plan::BF16:
  case plan::F16:
    return 2;
  case plan::I64:
  case plan::F64:
    return 8;
  case plan::I8:
  case plan::I1:
    return 1;
  default:
    return 0;
  }
}

std::pair<int, HostTensor> weft::runtime::bindInput(const plan::Plan &plan,
                                                    const std::string &planName,
                                                    const std::string &name,
                                                    const HostTensor &tensor) {
  for (int i = 0; i < plan.inputs_size(); ++i) {
    if (plan.inputs(i).name() != name)
      continue;
    const plan::Buffer &buffer = plan.buffers(plan.inputs(i).buffer());
    std::vector<int64_t> shape(buffer.shape().begin(), buffer.shape().end());
    if (buffer.dtype() == plan::BF16 && tensor.dtype == plan::F32 &&
        tensor.shape == shape) // NumPy has no bf16: round f32 inputs
      return {i, narrowToBf16(tensor)};
    if (tensor.dtype != buffer.dtype() || tensor.shape != shape)
      throw Error("input '" + name + "' is " +
                  describe(tensor.dtype, tensor.shape) + ", the plan expects " +
                  describe(buffer.dtype(), shape));
    return {i, tensor};
  }
  std::string names;
  for (const auto &input : plan.inputs())
    names += (names.empty() ? "" : ", ") + input.name();
  throw Error(planName + " has no input '" + name + "'; its inputs are " +
              names);
}

int weft::runtime::outputBuffer(const plan::Plan &plan,
                                const std::string &planName,
                                const std::string &name) {
  for (const auto &output : plan.outputs())
    if (output.name() == name)
      return output.buffer();
  throw Error(planName + " has no output '" + name + "'");
}

void weft::runtime::fillParameters(
    const plan::Plan &plan, const std::string &planName, uint64_t seed,
    char *region, const std::function<int64_t(const plan::Binding &)> &member) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (const auto &param : plan.parameters()) {
    const plan::Buffer &buffer = plan.buffers(param.buffer());
    if (buffer.dtype() != plan::F32 && buffer.dtype() != plan::BF16)
      throw Error(planName + ": parameter '" + param.name() + "' is " +
                  dtypeName(buffer.dtype()) +
                  "; random parameters are f32 or bf16");
    const bool bf16 = buffer.dtype() == plan::BF16;
    char *data = region + buffer.offset();
    const int64_t count = buffer.bytes() / dtypeBytes(buffer.dtype());
    // A block draws the whole tensor's values and keeps its own.
    const bool sharded = param.global_elements() > 0;
    const int64_t total = sharded ? param.global_elements() : count;
    const ShardLayout layout = ShardLayout::of(plan, param, count);
    const int64_t mine = sharded && member ? member(param) : 0;
    std::memset(data, 0, buffer.bytes()); // a padded block's tail
    const bool norm = param.name().find("norm") != std::string::npos;
    for (int64_t i = 0; i < total; ++i) {
      const float value = norm ? 1.0f : normal(rng);
      const int64_t run = i / layout.run;
      if (run % layout.members != mine)
        continue;
      const int64_t at = run / layout.members * layout.run + i % layout.run;
      if (bf16)
        reinterpret_cast<uint16_t *>(data)[at] =
            kernels::cpu::floatToBf16(value);
      else
        reinterpret_cast<float *>(data)[at] = value;
    }
  }
}

void weft::runtime::readParameters(
    const plan::Plan &plan, const SafetensorsCheckpoint &checkpoint,
    char *region, const std::function<int64_t(const plan::Binding &)> &member) {
  for (const auto &param : plan.parameters()) {
    const plan::Buffer &buffer = plan.buffers(param.buffer());
    char *data = region + buffer.offset();
    if (param.global_elements() == 0) {
      std::vector<int64_t> shape(buffer.shape().begin(), buffer.shape().end());
      checkpoint.read(param.name(), shape, buffer.dtype(), data);
      continue;
    }
    // A ZeRO-3 block or a tensor-parallel slice: whole in the checkpoint,
    // this rank keeps its part.
    std::vector<int64_t> shape(param.global_shape().begin(),
                               param.global_shape().end());
    const int64_t element = dtypeBytes(buffer.dtype());
    std::vector<char> whole(param.global_elements() * element);
    checkpoint.read(param.name(), shape, buffer.dtype(), whole.data());
    ShardLayout::of(plan, param, buffer.bytes() / element)
        .take(member(param), whole.data(), data, element);
  }
}

int64_t weft::runtime::shardMember(const plan::Plan &plan,
                                   const std::string &planName,
                                   const Communicator *comm,
                                   const plan::Binding &binding) {
  const uint32_t group = shardGroup(plan, binding);
  if (!group)
    return 0;
  if (!comm)
    throw Error(planName + ": '" + binding.name() +
                "' is a block of a sharded tensor, but the plan has no mesh");
  return comm->groupRank(group);
}

int64_t weft::runtime::meshGroupSize(const plan::Plan &plan,
                                     uint32_t axisMask) {
  int64_t size = 1;
  for (int a = 0; a < plan.mesh_size(); ++a)
    if (axisMask & (1u << a))
      size *= plan.mesh(a).size();
  return size;
}

const std::string &weft::runtime::stepFunction(const plan::Plan &plan,
                                               const plan::Step &step) {
  return step.has_launch() ? plan.kernels(step.launch().kernel()).name()
                           : step.call().function();
}

bool weft::runtime::stepTouches(const plan::Plan &plan, const plan::Step &step,
                                const std::vector<int> &buffers) {
  auto overlap = [&](int a, int b) {
    if (a < 0 || b < 0) // an absent optional operand
      return false;
    const plan::Buffer &x = plan.buffers(a), &y = plan.buffers(b);
    return x.region() == y.region() && x.offset() < y.offset() + y.bytes() &&
           y.offset() < x.offset() + x.bytes();
  };
  const auto &ids =
      step.has_launch() ? step.launch().buffers() : step.call().buffers();
  return std::any_of(ids.begin(), ids.end(), [&](int id) {
    return std::any_of(buffers.begin(), buffers.end(),
                       [&](int b) { return overlap(id, b); });
  });
}

uint32_t weft::runtime::shardGroup(const plan::Plan &plan,
                                   const plan::Binding &binding) {
  uint32_t mask = 0;
  for (const std::string &axis : binding.shard_axes())
    for (int a = 0; a < plan.mesh_size(); ++a)
      if (plan.mesh(a).name() == axis)
        mask |= 1u << a;
  return mask;
}

weft::runtime::ShardLayout
weft::runtime::ShardLayout::of(const plan::Plan &plan,
                               const plan::Binding &binding, int64_t local) {
  ShardLayout layout;
  layout.run = std::max<int64_t>(local, 1);
  layout.elements = local;
  if (binding.global_elements() == 0 || local == 0)
    return layout;
  layout.elements = binding.global_elements();
  for (const std::string &axis : binding.shard_axes())
    for (const auto &meshAxis : plan.mesh())
      if (meshAxis.name() == axis)
        layout.members *= meshAxis.size();
  if (binding.has_shard_dim())
    for (int d = 0; d < binding.shard_dim(); ++d)
      layout.runs *= binding.global_shape(d);
  layout.run = local / layout.runs;
  return layout;
}

namespace {
/// Elements of run `index` (in the whole tensor's order) that lie before
/// the tensor's end.
int64_t inside(const weft::runtime::ShardLayout &layout, int64_t index) {
  return std::clamp<int64_t>(layout.elements - index * layout.run, 0,
                             layout.run);
}
} // namespace

void weft::runtime::ShardLayout::take(int64_t member, const char *whole,
                                      char *block, int64_t elementBytes) const {
  const int64_t bytes = run * elementBytes;
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t index = r * members + member,
                  kept = inside(*this, index) * elementBytes;
    std::memcpy(block + r * bytes, whole + index * bytes, kept);
    std::memset(block + r * bytes + kept, 0, bytes - kept);
  }
}

void weft::runtime::ShardLayout::place(const char *blocks, char *whole,
                                       int64_t elementBytes) const {
  const int64_t bytes = run * elementBytes;
  for (int64_t m = 0; m < members; ++m)
    for (int64_t r = 0; r < runs; ++r) {
      const int64_t index = r * members + m;
      std::memcpy(whole + index * bytes, blocks + (m * runs + r) * bytes,
                  inside(*this, index) * elementBytes);
    }
}
