#include "CollectivesPlan.h"

#include "runtime/PlanFile.h"

#include <initializer_list>
#include <vector>

using namespace weft;

namespace {
class Builder {
public:
  explicit Builder(plan::Plan &plan) : plan(plan) {
    stream = plan.add_streams();
    stream->set_name("compute");
  }

  int buffer(const std::string &name, plan::DType dtype,
             std::vector<int64_t> shape) {
    plan::Buffer *b = plan.add_buffers();
    b->set_name(name);
    b->set_region(plan::ARENA);
    b->set_dtype(dtype);
    int64_t bytes = runtime::dtypeBytes(dtype);
    for (int64_t d : shape) {
      b->add_shape(d);
      bytes *= d;
    }
    b->set_offset(offset);
    b->set_bytes(bytes);
    offset += (bytes + 255) / 256 * 256;
    return plan.buffers_size() - 1;
  }
  /// A byte buffer for a collective's staging.
  int workspace(int64_t bytes) {
    return buffer("workspace", plan::I8, {bytes});
  }

  void call(const std::string &function, std::initializer_list<int> buffers,
            std::vector<int64_t> ints, int writes,
            std::initializer_list<double> floats = {}) {
    plan::Step *step = stream->add_steps();
    step->set_name(function);
    plan::LibraryCall *c = step->mutable_call();
    c->set_function(function);
    for (int id : buffers)
      c->add_buffers(id);
    for (int64_t i : ints)
      c->add_ints(i);
    for (double f : floats)
      c->add_floats(f);
    step->add_writes(writes);
  }

  /// ints: the operand's rank and shape after `head`.
  static std::vector<int64_t> withShape(std::vector<int64_t> head,
                                        const std::vector<int64_t> &shape) {
    head.push_back(static_cast<int64_t>(shape.size()));
    head.insert(head.end(), shape.begin(), shape.end());
    return head;
  }

  int64_t bytes() const { return offset; }

private:
  plan::Plan &plan;
  plan::Stream *stream;
  int64_t offset = 0;
};
} // namespace

plan::Plan weft::cudacheck::collectivesPlan(int64_t p,
                                            const std::string &device) {
  plan::Plan plan;
  plan.set_format_version(runtime::kPlanFormatVersion);
  plan.set_model("collectives");
  plan.set_strategy("dp=" + std::to_string(p));
  plan.set_device(device);
  plan.set_threads(1);
  plan::MeshAxis *axis = plan.add_mesh();
  axis->set_name("dp");
  axis->set_size(p);
  constexpr int64_t kGroup = 1; // the mask of axis 0
  constexpr int64_t kSum = 0, kMax = 1, kMean = 3;

  Builder b(plan);
  const std::vector<int64_t> whole{2 * p, 3 * p, 4 * p};
  const int x = b.buffer("x", plan::F32, whole);
  const int ids = b.buffer("ids", plan::I64, {4 * p});
  const int summed = b.buffer("summed", plan::F32, whole);
  b.call("all_reduce", {x, summed}, {kSum, kGroup}, summed);
  const int mean = b.buffer("mean", plan::F32, whole);
  b.call("all_reduce", {summed, mean}, {kMean, kGroup}, mean);
  // Dimension 0 in blocks: [2, 3P, 4P].
  const std::vector<int64_t> block{2, 3 * p, 4 * p};
  const int scattered = b.buffer("scattered", plan::F32, block);
  b.call("reduce_scatter", {summed, scattered}, {kSum, kGroup}, scattered);
  // Gathered along dimension 1 (two rows before it: staged).
  const std::vector<int64_t> wide{2, 3 * p * p, 4 * p};
  const int gathered = b.buffer("gathered", plan::F32, wide);
  const int64_t wideBytes = 2 * 3 * p * p * 4 * p * 4;
  b.call("all_gather", {scattered, gathered, b.workspace(wideBytes)},
         Builder::withShape({kGroup, 1}, block), gathered);
  // This member's block of dimension 2: [2, 3P², 4].
  const int sliced = b.buffer("sliced", plan::F32, {2, 3 * p * p, 4});
  b.call("all_slice", {gathered, sliced}, Builder::withShape({kGroup, 2}, wide),
         sliced);
  // Ulysses' exchange: dimension 1 split over the members, their blocks
  // joined along dimension 2: [2, 3P, 4P], staged on both sides.
  const int exchanged = b.buffer("exchanged", plan::F32, {2, 3 * p, 4 * p});
  const int64_t slicedBytes = 2 * 3 * p * p * 4 * 4;
  b.call("all_to_all", {sliced, exchanged, b.workspace(2 * slicedBytes)},
         Builder::withShape({kGroup, 1, 2}, {2, 3 * p * p, 4}), exchanged);
  // A prefetched gather (dimension 0), left running until the copy reads
  // it.
  const int prefetched = b.buffer("prefetched", plan::F32, whole);
  b.call("all_gather_start", {exchanged, prefetched, b.workspace(256)},
         Builder::withShape({kGroup, 0}, block), prefetched);
  const int y = b.buffer("y", plan::F32, whole);
  b.call("copy", {prefetched, y}, {2 * p * 3 * p * 4 * p * 4}, y);
  const int norm = b.buffer("norm", plan::F32, {});
  b.call("grad_norm", {mean, y, norm}, {kGroup}, norm, {0.5});
  const int idsMax = b.buffer("ids_max", plan::I64, {4 * p});
  b.call("all_reduce", {ids, idsMax}, {kMax, kGroup}, idsMax);

  for (auto [name, id] : {std::pair{"x", x}, {"ids", ids}}) {
    plan::Binding *input = plan.add_inputs();
    input->set_name(name);
    input->set_buffer(id);
  }
  for (auto [name, id] :
       {std::pair{"y", y}, {"norm", norm}, {"ids_max", idsMax}}) {
    plan::Binding *output = plan.add_outputs();
    output->set_name(name);
    output->set_buffer(id);
  }
  plan::Memory *memory = plan.mutable_memory();
  memory->set_activations(b.bytes());
  memory->set_arena(b.bytes());
  memory->set_peak(b.bytes());
  return plan;
}
