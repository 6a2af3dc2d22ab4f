// Library-call arguments shared by the executors.
#include "runtime/LibraryCalls.h"

#include "runtime/Error.h"
#include "runtime/PlanFile.h"

#include <cstring>
#include <numeric>

using namespace weft::runtime;

weft::kernels::cpu::StridedCopy
weft::runtime::readStridedCopy(const plan::Plan &plan,
                               const plan::LibraryCall &call,
                               const std::string &where) {
  if (call.buffers_size() != 2 || call.ints_size() < 4)
    throw Error(where + "expects 2 buffers and at least 4 ints");
  kernels::cpu::StridedCopy copy{};
  copy.elementBytes = call.ints(0);
  copy.rank = static_cast<int>(call.ints(1));
  if (copy.rank < 0 || copy.rank > kernels::cpu::StridedCopy::kMaxRank ||
      call.ints_size() != 4 + 3 * copy.rank || copy.elementBytes <= 0)
    throw Error(where + "has a malformed strided copy");
  copy.srcOffset = call.ints(2);
  copy.dstOffset = call.ints(3);
  // The box's last element must lie inside both buffers.
  int64_t srcEnd = copy.srcOffset, dstEnd = copy.dstOffset;
  bool empty = false;
  for (int d = 0; d < copy.rank; ++d) {
    copy.shape[d] = call.ints(4 + d);
    copy.srcStrides[d] = call.ints(4 + copy.rank + d);
    copy.dstStrides[d] = call.ints(4 + 2 * copy.rank + d);
    empty |= copy.shape[d] == 0;
    srcEnd += (copy.shape[d] - 1) * copy.srcStrides[d];
    dstEnd += (copy.shape[d] - 1) * copy.dstStrides[d];
  }
  if (!empty && (copy.srcOffset < 0 || copy.dstOffset < 0 ||
                 (srcEnd + 1) * copy.elementBytes >
                     plan.buffers(call.buffers(0)).bytes() ||
                 (dstEnd + 1) * copy.elementBytes >
                     plan.buffers(call.buffers(1)).bytes()))
    throw Error(where + "copies outside its buffers");
  return copy;
}

AdamWCall weft::runtime::readAdamW(const plan::Plan &plan,
                                   const plan::LibraryCall &call,
                                   const std::string &where) {
  if ((call.buffers_size() != 10 && call.buffers_size() != 11) ||
      call.ints_size() != 0 || call.floats_size() != 6)
    throw Error(where + "expects 10 or 11 buffers, 0 ints and 6 floats");
  const plan::Buffer &param = plan.buffers(call.buffers(0));
  const int64_t count = param.bytes() / 4;
  for (int i : {0, 2, 3, 7, 8, 9})
    if (plan.buffers(call.buffers(i)).dtype() != plan::F32 ||
        plan.buffers(call.buffers(i)).bytes() != param.bytes())
      throw Error(where + "buffer " + std::to_string(i) + " is not " +
                  std::to_string(count) + " f32 values");
  const plan::Buffer &grad = plan.buffers(call.buffers(1));
  if ((grad.dtype() != plan::F32 && grad.dtype() != plan::BF16) ||
      grad.bytes() / dtypeBytes(grad.dtype()) != count)
    throw Error(where + "the gradient is not " + std::to_string(count) +
                " f32 or bf16 values");
  if (plan.buffers(call.buffers(4)).dtype() != plan::F64 ||
      plan.buffers(call.buffers(5)).dtype() != plan::I64 ||
      plan.buffers(call.buffers(6)).dtype() != plan::F32)
    throw Error(where + "expects lr f64, step i64 and the norm f32");
  const bool rounded = call.buffers_size() == 11;
  if (rounded && (plan.buffers(call.buffers(10)).dtype() != plan::BF16 ||
                  plan.buffers(call.buffers(10)).bytes() != count * 2))
    throw Error(where + "buffer 10 is not " + std::to_string(count) +
                " bf16 values");
  return {count,
          grad.dtype() == plan::BF16,
          rounded,
          call.floats(0),
          call.floats(1),
          call.floats(2),
          call.floats(3),
          call.floats(4),
          static_cast<float>(call.floats(5))};
}

void weft::runtime::checkAttentionLse(const plan::Plan &plan,
                                      const plan::LibraryCall &call, int index,
                                      const std::string &where) {
  if (call.buffers(index) < 0)
    return;
  const plan::Buffer &lse = plan.buffers(call.buffers(index));
  const int64_t rows = call.ints(0) * call.ints(3) * call.ints(1);
  if (lse.dtype() != plan::F32 || lse.bytes() != rows * 4)
    throw Error(where + "its log-sum-exp '" + lse.name() + "' is " +
                dtypeName(lse.dtype()) + " of " + std::to_string(lse.bytes()) +
                " bytes, not f32 [batch, heads, sq] (" +
                std::to_string(rows * 4) + " bytes)");
}

void weft::runtime::checkAccumulator(const plan::Plan &plan,
                                     const plan::LibraryCall &call, int acc,
                                     int result, const std::string &where) {
  if (call.buffers(acc) < 0)
    return;
  const plan::Buffer &a = plan.buffers(call.buffers(acc));
  const plan::Buffer &c = plan.buffers(call.buffers(result));
  if (a.dtype() != c.dtype() || a.bytes() != c.bytes())
    throw Error(where + "its accumulator '" + a.name() + "' is " +
                dtypeName(a.dtype()) + " of " + std::to_string(a.bytes()) +
                " bytes, its result '" + c.name() + "' " +
                dtypeName(c.dtype()) + " of " + std::to_string(c.bytes()));
}

GradNormCall weft::runtime::readGradNorm(const plan::Plan &plan,
                                         const plan::LibraryCall &call,
                                         const std::string &where) {
  if (call.buffers_size() < 2 || call.ints_size() != 1 ||
      call.floats_size() != 1)
    throw Error(where +
                "expects gradients, the norm's buffer, one int and one float");
  GradNormCall g;
  g.group = static_cast<uint32_t>(call.ints(0));
  g.scale = static_cast<float>(call.floats(0));
  if (g.group != 0 && (plan.mesh_size() == 0 || g.group >> plan.mesh_size()))
    throw Error(where + "adds the norm's squares over mesh axes " +
                std::to_string(g.group) + ", not a group of the plan's " +
                std::to_string(plan.mesh_size()) + "-axis mesh");
  const int count = call.buffers_size() - 1;
  for (int i = 0; i < count; ++i) {
    const plan::Buffer &grad = plan.buffers(call.buffers(i));
    if (grad.dtype() != plan::F32 && grad.dtype() != plan::BF16)
      throw Error(where + "gradient " + std::to_string(i) + " ('" +
                  grad.name() + "') is " + dtypeName(grad.dtype()));
    g.counts.push_back(grad.bytes() / dtypeBytes(grad.dtype()));
    g.bf16.push_back(grad.dtype() == plan::BF16);
  }
  const plan::Buffer &norm = plan.buffers(call.buffers(count));
  if (norm.dtype() != plan::F32 || norm.bytes() != 4)
    throw Error(where + "the norm's buffer is not one f32");
  return g;
}

void weft::runtime::checkAttentionGrad(const plan::Plan &plan,
                                       const plan::LibraryCall &call,
                                       const std::string &where) {
  const bool bf16 = call.function() == "attention_grad_bf16";
  for (int i : {0, 1, 2, 3, 4, 7, 8, 9}) {
    const plan::Buffer &buffer = plan.buffers(call.buffers(i));
    if (buffer.dtype() != (bf16 ? plan::BF16 : plan::F32))
      throw Error(where + "buffer " + std::to_string(i) + " ('" +
                  buffer.name() + "') is " + dtypeName(buffer.dtype()) +
                  ", not " + (bf16 ? "bf16" : "f32"));
  }
  checkAttentionLse(plan, call, 11, where);
}

int64_t weft::runtime::readTransfer(const plan::Plan &plan,
                                    const plan::LibraryCall &call,
                                    const std::string &where) {
  if (call.buffers_size() != 2 || call.ints_size() != 1 ||
      call.floats_size() != 0)
    throw Error(where + "expects 2 buffers and 1 int");
  const bool offload = call.function() == "offload";
  const plan::Buffer &src = plan.buffers(call.buffers(0));
  const plan::Buffer &dst = plan.buffers(call.buffers(1));
  auto memory = [](const plan::Buffer &b) {
    return b.region() == plan::HOST ? std::string("host memory")
                                    : std::string("device memory");
  };
  if ((src.region() == plan::HOST) == offload ||
      (dst.region() == plan::HOST) != offload)
    throw Error(where + "copies " + (offload ? "device" : "host") +
                " memory to " + (offload ? "host" : "device") + " memory; '" +
                src.name() + "' is in " + memory(src) + ", '" + dst.name() +
                "' in " + memory(dst));
  const int64_t bytes = call.ints(0);
  if (bytes < 0 || bytes != src.bytes() || bytes != dst.bytes())
    throw Error(where + "copies " + std::to_string(bytes) + " bytes between '" +
                src.name() + "' (" + std::to_string(src.bytes()) + ") and '" +
                dst.name() + "' (" + std::to_string(dst.bytes()) + ")");
  return bytes;
}

CollectiveCall weft::runtime::readCollective(const plan::Plan &plan,
                                             const plan::LibraryCall &call,
                                             const std::string &where) {
  CollectiveCall c;
  c.started = call.function() == "all_gather_start";
  c.kind = c.started ? "all_gather" : call.function();
  auto in = [&](int i) { return call.ints(i); };
  auto fail = [&](const std::string &what) { return Error(where + what); };
  const bool reduces = c.kind == "all_reduce" || c.kind == "reduce_scatter";
  const int dims = c.kind == "all_to_all"                            ? 2
                   : c.kind == "all_gather" || c.kind == "all_slice" ? 1
                                                                     : 0;
  const int head = (reduces ? 2 : 1) + dims;
  const int buffers = c.kind == "all_gather" || c.kind == "all_to_all" ? 3 : 2;
  if (call.buffers_size() != buffers ||
      call.ints_size() < head + (dims ? 1 : 0) ||
      (dims && call.ints_size() != head + 1 + in(head)))
    throw fail("expects " + std::to_string(buffers) +
               " buffers, the group and the operand's shape");
  if (plan.mesh_size() == 0)
    throw fail("the plan has no mesh for its collectives");
  const plan::Buffer &x = plan.buffers(call.buffers(0));
  const plan::Buffer &y = plan.buffers(call.buffers(1));
  c.dtype = x.dtype();
  if (y.dtype() != c.dtype)
    throw fail("the result's dtype is not the operand's");
  if (reduces && c.dtype != plan::F32 && c.dtype != plan::I64)
    throw fail(std::string("reduces ") + dtypeName(c.dtype));
  if (reduces) {
    if (in(0) != 0 && in(0) != 1 && in(0) != 3)
      throw fail("reduction " + std::to_string(in(0)) +
                 " is not sum, max or mean");
    c.reduction = in(0) == 0   ? Communicator::Reduction::Sum
                  : in(0) == 1 ? Communicator::Reduction::Max
                               : Communicator::Reduction::Mean;
  }
  c.mask = static_cast<uint32_t>(in(reduces ? 1 : 0));
  if (c.mask == 0 || c.mask >> plan.mesh_size())
    throw fail("names mesh axes " + std::to_string(c.mask) +
               ", not a group of the plan's " +
               std::to_string(plan.mesh_size()) + "-axis mesh");
  c.members = meshGroupSize(plan, c.mask);
  c.xBytes = x.bytes();
  c.yBytes = y.bytes();
  const bool sizesFit =
      c.kind == "all_reduce" || c.kind == "all_to_all" ? c.yBytes == c.xBytes
      : c.kind == "all_gather" ? c.yBytes == c.xBytes * c.members
                               : c.xBytes == c.yBytes * c.members;
  if (!sizesFit)
    throw fail("its buffers do not fit a group of " +
               std::to_string(c.members));
  c.element = dtypeBytes(c.dtype);
  if (!dims)
    return c;
  const int64_t workspaceBytes =
      buffers == 3 ? plan.buffers(call.buffers(2)).bytes() : 0;
  const std::vector<int64_t> shape(call.ints().begin() + head + 1,
                                   call.ints().end());
  if (std::accumulate(shape.begin(), shape.end(), c.element,
                      std::multiplies<>()) != c.xBytes)
    throw fail("the shape it names is not its operand's");
  // The shape around dimension `d`, in bytes: rows before it, its size,
  // and the bytes of one of its elements' slabs.
  struct Around {
    int64_t outer = 1, size = 1, slab = 0;
  };
  auto around = [&](const std::vector<int64_t> &of, int64_t d, bool splits) {
    if (d < 0 || d >= static_cast<int64_t>(of.size()))
      throw fail("dimension " + std::to_string(d) + " is outside [0, " +
                 std::to_string(of.size()) + ")");
    Around a;
    a.size = of[d];
    a.slab = c.element;
    for (int64_t i = 0; i < d; ++i)
      a.outer *= of[i];
    for (size_t i = d + 1; i < of.size(); ++i)
      a.slab *= of[i];
    if (splits && a.size % c.members != 0)
      throw fail("dimension " + std::to_string(d) + " of size " +
                 std::to_string(a.size) + " does not split over " +
                 std::to_string(c.members) + " members");
    return a;
  };
  if (c.kind == "all_gather") {
    const Around a = around(shape, in(1), /*splits=*/false);
    c.outer = a.outer;
    c.block = a.size * a.slab;
    if (c.outer != 1 && workspaceBytes < c.yBytes)
      throw fail("its workspace holds " + std::to_string(workspaceBytes) +
                 " bytes; staging the gather takes " +
                 std::to_string(c.yBytes));
    if (c.started && c.outer != 1)
      throw fail("starts a gather along an inner dimension; only dimension 0 "
                 "is started and left running");
  } else if (c.kind == "all_slice") {
    const Around a = around(shape, in(1), /*splits=*/true);
    c.outer = a.outer;
    c.block = a.size / c.members * a.slab;
  } else { // all_to_all
    const Around split = around(shape, in(1), /*splits=*/true);
    std::vector<int64_t> part = shape;
    part[in(1)] /= c.members;
    const Around concat = around(part, in(2), /*splits=*/false);
    c.outer = split.outer;
    c.block = split.size / c.members * split.slab;
    c.recvOuter = concat.outer;
    c.recvBlock = concat.size * concat.slab;
    c.chunk = c.xBytes / c.members;
    c.sendStaging = c.outer == 1 ? 0 : c.xBytes;
    const int64_t staging = c.sendStaging + (c.recvOuter == 1 ? 0 : c.xBytes);
    if (workspaceBytes < staging)
      throw fail("its workspace holds " + std::to_string(workspaceBytes) +
                 " bytes; staging the exchange takes " +
                 std::to_string(staging));
  }
  return c;
}

std::vector<CollectiveCall::RowCopy> CollectiveCall::placeGathered() const {
  std::vector<RowCopy> copies;
  for (int64_t m = 0; m < members; ++m)
    copies.push_back(
        {m * block, members * block, m * outer * block, block, block, outer});
  return copies;
}

CollectiveCall::RowCopy CollectiveCall::sliceOf(int64_t member) const {
  return {0, block, member * block, members * block, block, outer};
}

std::vector<CollectiveCall::RowCopy> CollectiveCall::stageSent() const {
  std::vector<RowCopy> copies;
  for (int64_t m = 0; m < members; ++m)
    copies.push_back(
        {m * chunk, block, m * block, members * block, block, outer});
  return copies;
}

std::vector<CollectiveCall::RowCopy> CollectiveCall::placeReceived() const {
  std::vector<RowCopy> copies;
  for (int64_t m = 0; m < members; ++m)
    copies.push_back({m * recvBlock, members * recvBlock, m * chunk, recvBlock,
                      recvBlock, recvOuter});
  return copies;
}

void weft::runtime::copyRows(const CollectiveCall::RowCopy &copy, char *dst,
                             const char *src) {
  for (int64_t r = 0; r < copy.rows; ++r)
    std::memcpy(dst + copy.dst + r * copy.dstPitch,
                src + copy.src + r * copy.srcPitch, copy.width);
}
