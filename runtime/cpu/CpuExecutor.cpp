// The CPU executor. Library calls (the hand-written kernels of kernels/cpu)
// take their buffers, ints and floats in the order listed in `bindCall`.
#include "runtime/cpu/CpuExecutor.h"

#include "kernels/cpu/Kernels.h"
#include "runtime/Communicator.h"
#include "runtime/Error.h"
#include "runtime/LibraryCalls.h"
#include "runtime/PlanFile.h"

#include <dlfcn.h>
#include <omp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

using namespace weft::runtime;
namespace cpu = weft::kernels::cpu;
using weft::plan::Buffer;

namespace {
/// A generated kernel's entry: base pointers of its buffers, thread count.
using KernelEntry = void (*)(char *const *, int);

struct AlignedBlock {
  char *data = nullptr;
  explicit AlignedBlock(int64_t bytes) {
    // Sizes are planned in multiples of 64 bytes; keep the exact size so
    // that AddressSanitizer sees any access past the planned end.
    if (bytes > 0)
      data = static_cast<char *>(std::aligned_alloc(64, bytes));
    if (bytes > 0 && !data)
      throw Error("cannot allocate " + std::to_string(bytes) + " bytes");
  }
  ~AlignedBlock() { std::free(data); }
};

/// A shared object loaded from bytes through an anonymous file. The file
/// stays open while the object is loaded: the loader knows objects by path,
/// and a reused descriptor number would alias another kernel.
struct SharedObject {
  void *handle = nullptr;
  int fd = -1;
  SharedObject(const std::string &image, const std::string &name) {
    fd = memfd_create(name.c_str(), MFD_CLOEXEC);
    if (fd < 0)
      throw Error("kernel " + name + ": memfd_create: " + std::strerror(errno));
    if (::write(fd, image.data(), image.size()) !=
        static_cast<ssize_t>(image.size())) {
      ::close(fd);
      throw Error("kernel " + name + ": cannot stage its image");
    }
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      ::close(fd);
      throw Error("kernel " + name + ": cannot load: " + dlerror());
    }
  }
  ~SharedObject() {
    if (handle)
      dlclose(handle);
    if (fd >= 0)
      ::close(fd);
  }
};
} // namespace

struct CpuExecutor::Loaded {
  AlignedBlock arena, parameters, constants, state, host;
  std::vector<std::unique_ptr<SharedObject>> objects;
  std::vector<KernelEntry> entries;
  Loaded(int64_t arenaBytes, int64_t parameterBytes, int64_t constantBytes,
         int64_t stateBytes, int64_t hostBytes)
      : arena(arenaBytes), parameters(parameterBytes), constants(constantBytes),
        state(stateBytes), host(hostBytes) {
    if (stateBytes > 0)
      std::memset(state.data, 0, stateBytes);
  }
};

CpuExecutor::CpuExecutor(const plan::Plan &plan, std::string planName,
                         int requestedThreads)
    : plan(plan), planName(std::move(planName)) {
  threads = plan.threads() > 0 ? plan.threads() : 1;
  if (requestedThreads > 0 && requestedThreads < threads)
    threads = requestedThreads;
  arenaSize = plan.memory().arena();
  loaded = std::make_unique<Loaded>(
      arenaSize, plan.memory().parameters(), plan.memory().constants(),
      plan.memory().state(), plan.memory().host());
  std::memcpy(loaded->constants.data, plan.constants().data(),
              plan.constants().size());
  if (!plan.device().empty() && plan.device() != "cpu")
    throw Error(this->planName + " is compiled for " + plan.device() +
                ", not the CPU; compile it with --device cpu");
  for (const auto &kernel : plan.kernels()) {
    if (kernel.backend() != plan::Kernel::CPU_SHARED_OBJECT)
      throw Error(this->planName + ": kernel " + kernel.name() +
                  " is not for the CPU; this plan needs another device");
    __builtin_cpu_init();
    if (kernel.target() == "x86-64-v3" &&
        !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
      throw Error(this->planName + ": kernel " + kernel.name() +
                  " needs x86-64-v3 (AVX2, FMA), which this CPU lacks; "
                  "recompile the plan on this machine");
    loaded->objects.push_back(
        std::make_unique<SharedObject>(kernel.image(), kernel.name()));
    void *symbol =
        dlsym(loaded->objects.back()->handle, kernel.entry().c_str());
    if (!symbol)
      throw Error(this->planName + ": kernel " + kernel.name() +
                  " has no symbol " + kernel.entry());
    loaded->entries.push_back(reinterpret_cast<KernelEntry>(symbol));
  }
  communicator = Communicator::forPlan(plan, this->planName);
  inputs.resize(plan.inputs_size());
  prepareSteps();
}

CpuExecutor::~CpuExecutor() = default;

char *CpuExecutor::address(int bufferId) const {
  if (bufferId < 0)
    return nullptr;
  const Buffer &buffer = plan.buffers(bufferId);
  switch (buffer.region()) {
  case plan::ARENA:
    return loaded->arena.data + buffer.offset();
  case plan::PARAMETERS:
    return loaded->parameters.data + buffer.offset();
  case plan::CONSTANTS:
    return loaded->constants.data + buffer.offset();
  case plan::STATE:
    return loaded->state.data + buffer.offset();
  case plan::HOST:
    return loaded->host.data + buffer.offset();
  default:
    throw Error(planName + ": buffer '" + buffer.name() + "' has no region");
  }
}

void CpuExecutor::prepareSteps() {
  for (const auto &stream : plan.streams()) {
    streamBegin.push_back(steps.size());
    for (const auto &step : stream.steps()) {
      if (step.has_launch()) {
        std::vector<char *> args;
        for (int id : step.launch().buffers())
          args.push_back(address(id));
        KernelEntry entry = loaded->entries[step.launch().kernel()];
        int n = threads;
        steps.push_back([entry, args, n] { entry(args.data(), n); });
        continue;
      }
      const auto &call = step.call();
      // A prefetched gather starts here; its readers wait for it.
      const bool start = call.function() == "all_gather_start";
      const std::string fn = start ? "all_gather" : call.function();
      const std::string where =
          planName + ": step '" + step.name() + "' (" + fn + "): ";
      auto fail = [&](const std::string &what) { return Error(where + what); };
      auto arity = [&](int buffers, int ints, int floats) {
        if (call.buffers_size() != buffers || call.ints_size() != ints ||
            call.floats_size() != floats)
          throw fail("expects " + std::to_string(buffers) + " buffers, " +
                     std::to_string(ints) + " ints and " +
                     std::to_string(floats) + " floats");
      };
      // Float buffers must hold `dtype` (the workspace, which holds bytes,
      // aside); -1 marks an absent optional buffer.
      auto floatsAre = [&](plan::DType dtype) {
        for (int i = 0; i < call.buffers_size(); ++i) {
          int id = call.buffers(i);
          if (id < 0)
            continue;
          const Buffer &buffer = plan.buffers(id);
          plan::DType actual = buffer.dtype();
          bool isFloat = actual == plan::F32 || actual == plan::BF16 ||
                         actual == plan::F16;
          if (isFloat && actual != dtype && buffer.name() != "workspace")
            throw fail("buffer " + std::to_string(i) + " ('" + buffer.name() +
                       "') is " + dtypeName(actual) + ", expected " +
                       dtypeName(dtype));
        }
      };
      // Everything the step's closure needs is copied into it.
      std::vector<char *> p;
      for (int id : call.buffers())
        p.push_back(address(id));
      std::vector<int64_t> ints(call.ints().begin(), call.ints().end());
      auto f = [p](int i) { return reinterpret_cast<float *>(p[i]); };
      auto ix = [p](int i) { return reinterpret_cast<int64_t *>(p[i]); };
      auto bf = [p](int i) { return reinterpret_cast<uint16_t *>(p[i]); };
      auto in = [ints](int i) { return ints[i]; };
      const std::string name = step.name();
      // "<what> <value> <where> <position> is outside [0, <bound>)".
      auto outside = [planName = planName,
                      name](const char *what, int64_t value, const char *where,
                            int64_t position, int64_t bound) {
        return Error(planName + ": step '" + name + "': " + what + " " +
                     std::to_string(value) + " " + where + " " +
                     std::to_string(position) + " is outside [0, " +
                     std::to_string(bound) + ")");
      };
      const int n = threads;
      // Collectives check their own dtypes (all_gather and all_slice move
      // any; the reductions take f32 and i64).
      const bool movesAnyType =
          fn == "gather" || fn == "copy" || fn == "copy_strided" ||
          fn == "concat" || fn == "moe_dispatch" || fn == "all_gather" ||
          fn == "all_slice" || fn == "all_reduce" || fn == "reduce_scatter" ||
          fn == "all_to_all" || fn == "offload" || fn == "reload";
      if (fn != "linear_bf16" && fn != "grouped_linear_bf16" &&
          fn != "matmul_bf16" && fn != "cross_entropy_bf16" &&
          fn != "rope_bf16" && fn != "attention_bf16" &&
          fn != "attention_grad_bf16" && fn != "grad_norm" && fn != "adamw" &&
          !movesAnyType)
        floatsAre(plan::F32);
      auto bufferBytes = [&](int i) {
        return plan.buffers(call.buffers(i)).bytes();
      };
      if (fn == "linear") { // x, w, bias?, y; rows, in, out
        arity(4, 3, 0);
        steps.push_back(
            [=] { cpu::linear(f(0), f(1), f(2), f(3), in(0), in(1), in(2)); });
      } else if (fn == "linear_bf16") { // x, w, bias?, y, workspace; rows,
                                        // in, out
        arity(5, 3, 0);
        floatsAre(plan::BF16);
        steps.push_back([=] {
          cpu::linearBf16(bf(0), bf(1), bf(2), bf(3), in(0), in(1), in(2),
                          f(4));
        });
      } else if (fn == "matmul") { // a, b, acc?, c; batch, m, n, k, ta, tb,
                                   // bStride
        arity(4, 7, 0);
        checkAccumulator(plan, call, 2, 3, where);
        steps.push_back([=] {
          cpu::matmul(f(0), f(1), f(2), f(3), in(0), in(1), in(2), in(3), in(4),
                      in(5), in(6));
        });
      } else if (fn == "matmul_bf16") { // a, b, acc?, c, workspace; as matmul
        arity(5, 7, 0);
        checkAccumulator(plan, call, 2, 3, where);
        floatsAre(plan::BF16);
        steps.push_back([=] {
          cpu::matmulBf16(bf(0), bf(1), bf(2), bf(3), in(0), in(1), in(2),
                          in(3), in(4), in(5), in(6), f(4));
        });
      } else if (fn == "attention" || fn == "attention_bf16") {
        // q, k, v, mask?, slopes?, out, workspace, lse?;
        // batch, sq, skv, heads, kvHeads, dqk, dv, kind, maskPerBatch,
        // window; scale. attention_bf16: q, k, v and out in bf16.
        arity(8, 10, 1);
        checkAttentionLse(plan, call, 7, where);
        const bool bf16 = fn == "attention_bf16";
        if (bf16)
          for (int i : {0, 1, 2, 5})
            if (plan.buffers(call.buffers(i)).dtype() != plan::BF16)
              throw fail("buffer " + std::to_string(i) + " is not bf16");
        if (call.buffers(4) >= 0 &&
            plan.buffers(call.buffers(4)).dtype() != plan::F32)
          throw fail("ALiBi slopes are not f32");
        cpu::AttentionShape s{in(0), in(1), in(2), in(3), in(4), in(5), in(6)};
        auto kind = static_cast<cpu::AttentionKind>(in(7));
        bool perBatch = in(8) != 0;
        float scale = static_cast<float>(call.floats(0));
        auto mask = reinterpret_cast<const uint8_t *>(p[3]);
        steps.push_back([=] {
          if (bf16)
            cpu::attentionBf16(bf(0), bf(1), bf(2), mask, perBatch, f(4), bf(5),
                               s, kind, scale, in(9), f(6), n, f(7));
          else
            cpu::attention(f(0), f(1), f(2), mask, perBatch, f(4), f(5), s,
                           kind, scale, in(9), f(6), n, f(7));
        });
      } else if (fn == "attention_grad" || fn == "attention_grad_bf16") {
        // q, k, v, out, dout, mask?, slopes?, dq, dk, dv, workspace, lse?;
        // the ints and floats of attention. attention_grad_bf16: q, k, v,
        // out, dout, dq, dk and dv in bf16.
        arity(12, 10, 1);
        checkAttentionGrad(plan, call, where);
        const bool bf16 = fn == "attention_grad_bf16";
        cpu::AttentionShape s{in(0), in(1), in(2), in(3), in(4), in(5), in(6)};
        auto kind = static_cast<cpu::AttentionKind>(in(7));
        bool perBatch = in(8) != 0;
        float scale = static_cast<float>(call.floats(0));
        auto mask = reinterpret_cast<const uint8_t *>(p[5]);
        steps.push_back([=] {
          if (bf16)
            cpu::attentionBackwardBf16(bf(0), bf(1), bf(2), bf(3), bf(4), mask,
                                       perBatch, f(6), bf(7), bf(8), bf(9), s,
                                       kind, scale, in(9), f(10), n, f(11));
          else
            cpu::attentionBackward(f(0), f(1), f(2), f(3), f(4), mask, perBatch,
                                   f(6), f(7), f(8), f(9), s, kind, scale,
                                   in(9), f(10), n, f(11));
        });
      } else if (fn == "rope" || fn == "rope_bf16") {
        // x, positions, y; batch, seq, heads, dim, interleaved; theta,
        // frequencies...? (_bf16: bf16 x and y)
        if (call.buffers_size() != 3 || call.ints_size() != 5 ||
            (call.floats_size() != 1 && call.floats_size() != 1 + in(3) / 2))
          throw fail("expects 3 buffers, 5 ints and 1 or 1 + dim / 2 floats");
        const bool bf16 = fn == "rope_bf16";
        if (bf16 && (plan.buffers(call.buffers(0)).dtype() != plan::BF16 ||
                     plan.buffers(call.buffers(2)).dtype() != plan::BF16))
          throw fail("expects bf16 x and y");
        double theta = call.floats(0);
        std::vector<double> frequencies(call.floats().begin() + 1,
                                        call.floats().end());
        steps.push_back([=] {
          const double *given =
              frequencies.empty() ? nullptr : frequencies.data();
          if (bf16)
            cpu::ropeBf16(bf(0), ix(1), bf(2), in(0), in(1), in(2), in(3),
                          theta, in(4) != 0, given);
          else
            cpu::rope(f(0), ix(1), f(2), in(0), in(1), in(2), in(3), theta,
                      in(4) != 0, given);
        });
      } else if (fn == "softmax") { // x, y; outer, dim, inner, logarithm
        arity(2, 4, 0);
        steps.push_back(
            [=] { cpu::softmax(f(0), f(1), in(0), in(1), in(2), in(3) != 0); });
      } else if (fn ==
                 "gather") { // table, indices, out; outer, size, inner, count
        arity(3, 4, 0);
        const plan::DType element = plan.buffers(call.buffers(0)).dtype();
        if (plan.buffers(call.buffers(2)).dtype() != element)
          throw fail(std::string("gathers ") + dtypeName(element) + " into " +
                     dtypeName(plan.buffers(call.buffers(2)).dtype()));
        const int64_t innerBytes = in(2) * dtypeBytes(element);
        steps.push_back([=] {
          int64_t bad =
              cpu::gather(p[0], ix(1), p[2], in(0), in(1), innerBytes, in(3));
          if (bad >= 0)
            throw outside("index", ix(1)[bad], "at position", bad, in(1));
        });
      } else if (fn == "cross_entropy" || fn == "cross_entropy_bf16") {
        // logits, labels, out; tokens, vocab, ignore, reduction (_bf16: bf16
        // logits, an f32 loss)
        arity(3, 4, 0);
        auto reduction = static_cast<cpu::LossReduction>(in(3));
        const bool bf16 = fn == "cross_entropy_bf16";
        if (bf16 && (plan.buffers(call.buffers(0)).dtype() != plan::BF16 ||
                     plan.buffers(call.buffers(2)).dtype() != plan::F32))
          throw fail("expects bf16 logits and an f32 loss");
        steps.push_back([=] {
          int64_t bad = bf16 ? cpu::crossEntropyBf16(bf(0), ix(1), f(2), in(0),
                                                     in(1), in(2), reduction)
                             : cpu::crossEntropy(f(0), ix(1), f(2), in(0),
                                                 in(1), in(2), reduction);
          if (bad >= 0)
            throw outside("label", ix(1)[bad], "of token", bad, in(1));
        });
      } else if (fn == "iota") { // y (i64); outer, size, inner
        arity(1, 3, 0);
        steps.push_back([=] {
          int64_t *y = ix(0);
          for (int64_t o = 0; o < in(0); ++o)
            for (int64_t i = 0; i < in(1); ++i)
              for (int64_t j = 0; j < in(2); ++j)
                y[(o * in(1) + i) * in(2) + j] = i;
        });
      } else if (fn == "copy_strided") {
        // src, dst; elementBytes, rank, srcOffset, dstOffset, shape[rank],
        // srcStrides[rank], dstStrides[rank]
        cpu::StridedCopy copy = readStridedCopy(
            plan, call,
            planName + ": step '" + step.name() + "' (" + fn + "): ");
        steps.push_back([=] { cpu::copyStrided(p[0], p[1], copy); });
      } else if (fn == "concat") { // inputs..., out; outer, rowBytes...
        const int count = call.buffers_size() - 1;
        if (count < 1 || call.ints_size() != 1 + count)
          throw fail("expects n + 1 buffers and n + 1 ints");
        std::vector<const void *> parts(p.begin(), p.end() - 1);
        std::vector<int64_t> rowBytes(ints.begin() + 1, ints.end());
        int64_t total = 0;
        for (int k = 0; k < count; ++k) {
          if (rowBytes[k] < 0 || rowBytes[k] * in(0) != bufferBytes(k))
            throw fail("input " + std::to_string(k) + " does not hold " +
                       std::to_string(in(0)) + " rows of " +
                       std::to_string(rowBytes[k]) + " bytes");
          total += rowBytes[k];
        }
        if (total * in(0) != bufferBytes(count))
          throw fail("output does not hold the concatenation");
        steps.push_back([=] {
          cpu::concat(parts.data(), rowBytes.data(), count, p.back(), in(0));
        });
      } else if (fn == "reduce") { // x, y; kind, rank, shape..., reduced...
        if (call.buffers_size() != 2 || call.ints_size() < 2 ||
            call.ints_size() != 2 + 2 * in(1))
          throw fail("expects 2 buffers and 2 + 2 × rank ints");
        const int rank = static_cast<int>(in(1));
        std::vector<int64_t> dims(ints.begin() + 2, ints.begin() + 2 + rank);
        std::vector<uint8_t> reduced(ints.begin() + 2 + rank, ints.end());
        int64_t elements = 1;
        for (int64_t d : dims)
          elements *= d;
        if (elements * 4 != bufferBytes(0))
          throw fail("input does not hold the reduced shape");
        auto kind = static_cast<cpu::ReduceKind>(in(0));
        steps.push_back([=] {
          cpu::reduce(f(0), f(1), dims.data(), reduced.data(), rank, kind);
        });
      } else if (fn == "scatter_add") { // base, indices, updates, out; outer,
                                        // size, inner, count
        arity(4, 4, 0);
        steps.push_back([=] {
          int64_t bad = cpu::scatterAdd(f(0), ix(1), f(2), f(3), in(0), in(1),
                                        in(2), in(3));
          if (bad >= 0)
            throw outside("index", ix(1)[bad], "at position", bad, in(1));
        });
      } else if (fn == "moe_gate") { // logits, weights, experts; tokens,
                                     // experts, k, normalize
        arity(3, 4, 0);
        steps.push_back([=] {
          cpu::moeGate(f(0), f(1), ix(2), in(0), in(1), in(2), in(3) != 0);
        });
      } else if (fn == "moe_dispatch") { // x, experts, rows, offsets; tokens,
                                         // k, experts, rowBytes
        arity(4, 4, 0);
        if (in(0) * in(3) != bufferBytes(0) ||
            in(0) * in(1) * in(3) != bufferBytes(2) ||
            (in(2) + 1) * 8 != bufferBytes(3))
          throw fail("buffers do not hold the dispatch's shapes");
        steps.push_back([=] {
          int64_t bad = cpu::moeDispatch(p[0], ix(1), p[2], ix(3), in(0), in(1),
                                         in(2), in(3));
          if (bad >= 0)
            throw outside("expert", ix(1)[bad], "of pair", bad, in(2));
        });
      } else if (fn == "grouped_linear" || fn == "grouped_linear_bf16") {
        // x, offsets, weights..., y[, workspace]; groups, in, out
        const bool bf16 = fn == "grouped_linear_bf16";
        if (call.ints_size() != 3 ||
            call.buffers_size() != 3 + in(0) + (bf16 ? 1 : 0))
          throw fail("expects 3 ints and a buffer per group");
        if (bf16)
          floatsAre(plan::BF16);
        const int64_t groups = in(0);
        std::vector<const float *> weights;
        std::vector<const uint16_t *> bf16Weights;
        for (int64_t g = 0; g < groups; ++g) {
          weights.push_back(f(2 + g));
          bf16Weights.push_back(bf(2 + g));
        }
        const int out = 2 + static_cast<int>(groups);
        steps.push_back([=] {
          if (bf16)
            cpu::groupedLinearBf16(bf(0), ix(1), bf16Weights.data(), bf(out),
                                   groups, in(1), in(2), f(out + 1));
          else
            cpu::groupedLinear(f(0), ix(1), weights.data(), f(out), groups,
                               in(1), in(2));
        });
      } else if (fn == "moe_combine") { // rows, weights, experts, y; tokens,
                                        // k, experts, hidden
        arity(4, 4, 0);
        steps.push_back([=] {
          int64_t bad = cpu::moeCombine(f(0), f(1), ix(2), f(3), in(0), in(1),
                                        in(2), in(3));
          if (bad >= 0)
            throw outside("expert", ix(2)[bad], "of pair", bad, in(2));
        });
      } else if (fn == "grad_norm") { // grads (f32 or bf16)..., norm (f32);
                                      // grad_scale
        const GradNormCall g = readGradNorm(plan, call, where);
        Communicator *comm = communicator;
        float *norm = f(static_cast<int>(g.counts.size()));
        steps.push_back([=] {
          double squares = 0; // in order, whatever the thread count
          for (size_t i = 0; i < g.counts.size(); ++i)
            squares += g.bf16[i]
                           ? cpu::sumOfSquaresBf16(bf(i), g.counts[i], g.scale)
                           : cpu::sumOfSquares(f(i), g.counts[i], g.scale);
          if (g.group != 0)
            comm->allReduce(&squares, &squares, 1, plan::F64,
                            Communicator::Reduction::Sum, g.group);
          *norm = static_cast<float>(std::sqrt(squares));
        });
      } else if (fn == "adamw") {
        // The results may be the operands' memory (in place).
        const AdamWCall a = readAdamW(plan, call, where);
        steps.push_back([=] {
          const int64_t bytes = a.count * 4;
          // Results in other memory than their operand's: copy it first.
          for (auto [result, operand] : {std::pair{7, 0}, {8, 2}, {9, 3}})
            if (p[result] != p[operand])
              std::memmove(p[result], p[operand], bytes);
          double lr;
          std::memcpy(&lr, p[4], sizeof(lr));
          const int64_t step = ix(5)[0];
          const float norm = f(6)[0];
          float scale = 1.0f; // torch.nn.utils.clip_grad_norm_
          if (a.maxGradNorm > 0)
            scale = std::min(1.0f, static_cast<float>(a.maxGradNorm) /
                                       (norm + 1e-6f));
          if (step < 1)
            throw Error("step " + std::to_string(step) +
                        ": AdamW counts steps from 1");
          cpu::AdamWStep s{lr,   a.beta1, a.beta2,         a.eps, a.weightDecay,
                           step, scale,   a.gradMultiplier};
          uint16_t *rounded = a.rounded ? bf(10) : nullptr;
          if (a.bf16Grad)
            cpu::adamwUpdateBf16Grad(s, f(7), f(8), f(9), bf(1), rounded,
                                     a.count);
          else
            cpu::adamwUpdate(s, f(7), f(8), f(9), f(1), rounded, a.count);
        });
      } else if (fn == "all_reduce" || fn == "reduce_scatter" ||
                 fn == "all_gather" || fn == "all_slice" ||
                 fn == "all_to_all") {
        const CollectiveCall c = readCollective(plan, call, where);
        Communicator *comm = communicator;
        if (fn == "all_reduce") {
          steps.push_back([=] {
            comm->allReduce(p[0], p[1], c.xBytes / c.element, c.dtype,
                            c.reduction, c.mask);
          });
        } else if (fn == "reduce_scatter") {
          steps.push_back([=] {
            comm->reduceScatter(p[0], p[1], c.yBytes / c.element, c.dtype,
                                c.reduction, c.mask);
          });
        } else if (fn == "all_gather") {
          // Member m's block lands at m·size along the dimension: straight
          // into y when nothing is before it, else through the workspace.
          if (start) {
            const int x = call.buffers(0), y = call.buffers(1);
            steps.push_back([=, this] {
              auto request = comm->startAllGather(
                  p[0], p[1], c.xBytes / c.element, c.dtype, c.mask);
              started.push_back({std::move(request), {x, y}});
            });
            continue;
          }
          const auto placed = c.placeGathered();
          steps.push_back([=] {
            if (c.outer == 1)
              return comm->allGather(p[0], p[1], c.xBytes / c.element, c.dtype,
                                     c.mask);
            comm->allGather(p[0], p[2], c.xBytes / c.element, c.dtype, c.mask);
            for (const auto &copy : placed)
              copyRows(copy, p[1], p[2]);
          });
        } else if (fn == "all_slice") { // nothing moves between ranks
          const auto copy = c.sliceOf(comm->groupRank(c.mask));
          steps.push_back([=] { copyRows(copy, p[1], p[0]); });
        } else { // all_to_all
          // Block m of the split dimension goes to member m; what member m
          // sends lands at block m of the concat dimension. The workspace
          // holds what is sent, then what is received, where either is
          // staged.
          const auto staged = c.stageSent(), placed = c.placeReceived();
          steps.push_back([=] {
            const char *send = c.outer == 1 ? p[0] : p[2];
            char *receive = c.recvOuter == 1 ? p[1] : p[2] + c.sendStaging;
            if (c.outer != 1)
              for (const auto &copy : staged)
                copyRows(copy, p[2], p[0]);
            comm->allToAll(send, receive, c.chunk / c.element, c.dtype, c.mask);
            if (c.recvOuter != 1)
              for (const auto &copy : placed)
                copyRows(copy, p[1], receive);
          });
        }
      } else if (fn == "copy") { // src, dst; bytes
        arity(2, 1, 0);
        steps.push_back([=] { std::memmove(p[1], p[0], in(0)); });
      } else if (fn == "offload" || fn == "reload") { // src, dst; bytes
        // Host memory is another region of the same memory here.
        const int64_t bytes = readTransfer(plan, call, where);
        steps.push_back([=] { std::memcpy(p[1], p[0], bytes); });
      } else {
        throw fail("this runtime has no library function '" + fn + "'");
      }
    }
  }
}

void CpuExecutor::loadParameters(const SafetensorsCheckpoint &checkpoint) {
  readParameters(
      plan, checkpoint, loaded->parameters.data,
      [this](const plan::Binding &param) { return memberOf(param); });
}

void CpuExecutor::initializeParameters(uint64_t seed) {
  fillParameters(
      plan, planName, seed, loaded->parameters.data,
      [this](const plan::Binding &param) { return memberOf(param); });
}

int64_t CpuExecutor::memberOf(const plan::Binding &binding) const {
  return shardMember(plan, planName, communicator, binding);
}

void CpuExecutor::setInput(const std::string &name, const HostTensor &tensor) {
  auto [index, staged] = bindInput(plan, planName, name, tensor);
  inputs[index] = std::move(staged);
}

void CpuExecutor::run(TraceWriter *trace) { runProgram(mainProgram(), trace); }

void CpuExecutor::copyInputs(const std::string &program) {
  for (int i = 0; i < plan.inputs_size(); ++i)
    if (plan.inputs(i).program() == program &&
        inputs[i].dtype == plan::DTYPE_UNSPECIFIED)
      throw Error("input '" + plan.inputs(i).name() + "' was not given");
  // The arena reuses an input's memory once it is dead: copy every input
  // in at the start of each run.
  for (int i = 0; i < plan.inputs_size(); ++i)
    if (plan.inputs(i).program() == program)
      std::memcpy(address(plan.inputs(i).buffer()), inputs[i].bytes.data(),
                  inputs[i].bytes.size());
}

void CpuExecutor::waitFor(const plan::Step &step) {
  for (auto it = started.begin(); it != started.end();) {
    if (!stepTouches(plan, step, it->buffers)) {
      ++it;
      continue;
    }
    communicator->wait(*it->request);
    it = started.erase(it);
  }
}

void CpuExecutor::waitAll() {
  for (Started &s : started)
    communicator->wait(*s.request);
  started.clear();
}

void CpuExecutor::copyOut(int bufferId, char *host) const {
  std::memcpy(host, address(bufferId), plan.buffers(bufferId).bytes());
}

void CpuExecutor::copyIn(int bufferId, const char *host) {
  std::memcpy(address(bufferId), host, plan.buffers(bufferId).bytes());
}

void CpuExecutor::runProgram(const std::string &program, TraceWriter *trace) {
  bool found = false;
  for (int s = 0; s < plan.streams_size(); ++s) {
    if (plan.streams(s).program() != program)
      continue;
    if (!found)
      copyInputs(program);
    found = true;
    runRange(s, streamBegin[s], streamBegin[s] + plan.streams(s).steps_size(),
             trace);
  }
  if (!found)
    throw Error(planName + " has no program '" + program + "'");
}

void CpuExecutor::runSteps(size_t begin, size_t end, TraceWriter *trace) {
  for (int s = 0; s < plan.streams_size(); ++s)
    if (begin == streamBegin[s])
      copyInputs(plan.streams(s).program());
  for (int s = 0; s < plan.streams_size(); ++s)
    runRange(s, std::max(begin, streamBegin[s]),
             std::min(end, streamBegin[s] + plan.streams(s).steps_size()),
             trace);
}

void CpuExecutor::runRange(int stream, size_t begin, size_t end,
                           TraceWriter *trace) {
  omp_set_num_threads(threads);
  for (size_t index = begin; index < end; ++index) {
    const plan::Step &step = plan.streams(stream).steps(
        static_cast<int>(index - streamBegin[stream]));
    if (!started.empty())
      waitFor(step);
    double start = trace ? trace->now() : 0;
    // What a collective sends: the communicator's counts before and after.
    TraceWriter::Sent before;
    if (trace && communicator && !step.has_launch())
      before = communicator->bytesSent();
    steps[index]();
    if (trace) {
      TraceWriter::Sent sent;
      if (communicator && !step.has_launch())
        for (const auto &[key, bytes] : communicator->bytesSent())
          if (bytes != before[key])
            sent[key] = bytes - before[key];
      trace->addStep(step.name(),
                     step.has_launch() ? "kernel" : step.call().function(),
                     start, trace->now() - start, step.live_bytes(), sent);
    }
  }
  waitAll();
}

char *CpuExecutor::region(plan::Region region) {
  switch (region) {
  case plan::ARENA:
    return loaded->arena.data;
  case plan::PARAMETERS:
    return loaded->parameters.data;
  case plan::CONSTANTS:
    return loaded->constants.data;
  case plan::STATE:
    return loaded->state.data;
  case plan::HOST:
    return loaded->host.data;
  default:
    throw Error(planName + ": no such region");
  }
}

HostTensor CpuExecutor::output(const std::string &name) const {
  const Buffer &buffer = plan.buffers(outputBuffer(plan, planName, name));
  HostTensor tensor;
  tensor.dtype = buffer.dtype();
  tensor.shape.assign(buffer.shape().begin(), buffer.shape().end());
  const char *data = address(outputBuffer(plan, planName, name));
  tensor.bytes.assign(data, data + buffer.bytes());
  return tensor;
}
