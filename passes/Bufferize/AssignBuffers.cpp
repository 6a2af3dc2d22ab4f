// weft-assign-buffers: liveness and best-fit placement in one arena.
#include "passes/Bufferize/Passes.h"

#include "kernels/cpu/Kernels.h"
#include "kernels/cuda/Training.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

#include <algorithm>
#include <thread>

namespace weft {
#define GEN_PASS_DEF_ASSIGNBUFFERS
#include "passes/Bufferize/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
constexpr int64_t kAlignment = 64;

int64_t alignUp(int64_t bytes) {
  return (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

int64_t workspaceBytes(Operation *op, StringRef device, int threads);

/// One stretch of arena memory (or host memory: a weft.offload result) and
/// the op positions it is live over.
struct Storage {
  int64_t bytes;
  int first, last; // inclusive; inputs start at -1
  bool host = false;
  int64_t offset = -1;
};

/// The argument a `weft.update` result replaces: the parameter or state
/// argument of that name.
BlockArgument updatedArgument(func::FuncOp func, StringRef name) {
  for (BlockArgument arg : func.getArguments())
    for (StringRef attr :
         {WeftDialect::kParamAttrName, WeftDialect::kStateAttrName})
      if (auto n = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), attr);
          n && n.getValue() == name)
        return arg;
  return nullptr;
}

/// Whether `group` may write its result `resultIndex` over its operand
/// `input` (of the result's type) when no later op reads it, on both
/// devices. Each element of a row input is read for the results of its own
/// row alone (rope, which reads pairs, aside): the CUDA kernels read a chunk
/// of every input before they store that chunk of the results, after their
/// passes over the row; the CPU's widen bf16 inputs into scratch rows at the
/// start and narrow bf16 results at the end, but read f32 inputs and write
/// f32 results as each op runs — so there every read of the input must come
/// at or before the op computing the result.
bool overwritesInput(FusionGroupOp group, Value input, unsigned resultIndex) {
  Block &body = group.getBody().front();
  Value result = group.getResult(resultIndex);
  if (input.getType() != result.getType() || !body.getOps<RopeOp>().empty())
    return false;
  if (cast<RankedTensorType>(result.getType()).getElementType().isBF16())
    return true;
  Operation *producer =
      group.getYield().getValues()[resultIndex].getDefiningOp();
  if (!producer)
    return false;
  for (OpOperand &operand : group->getOpOperands())
    if (operand.get() == input)
      for (Operation *user :
           body.getArgument(operand.getOperandNumber()).getUsers())
        if (isa<YieldOp>(user) ||
            (user != producer && producer->isBeforeInBlock(user)))
          return false;
  return true;
}

/// Whether `op` may write its result `result` over its operand `arg` while
/// reading it: AdamW's moments and weights read each element before writing
/// the same element; scatter_add adds into its base and matmul into its
/// accumulator where it is its output (both runtimes copy the base only when
/// they differ; cuBLASLt reads C before writing D); fusion groups as
/// overwritesInput says.
bool updatesInPlace(Operation *op, Value result, Value arg) {
  if (auto adamw = dyn_cast<AdamWUpdateOp>(op)) {
    unsigned index = cast<OpResult>(result).getResultNumber();
    Value read[] = {adamw.getParam(), adamw.getExpAvg(), adamw.getExpAvgSq()};
    return index < 3 && read[index] == arg && adamw.getGrad() != arg;
  }
  if (auto scatter = dyn_cast<ScatterAddOp>(op))
    return scatter.getBase() == arg && scatter.getUpdates() != arg;
  if (auto matmul = dyn_cast<MatmulOp>(op))
    return matmul.getAcc() == arg && matmul.getLhs() != arg &&
           matmul.getRhs() != arg;
  auto group = dyn_cast<FusionGroupOp>(op);
  return group &&
         overwritesInput(group, arg, cast<OpResult>(result).getResultNumber());
}

struct AssignBuffers : public weft::impl::AssignBuffersBase<AssignBuffers> {
  using AssignBuffersBase::AssignBuffersBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    Builder b(&getContext());
    Block &body = func.getBody().front();
    auto bufferAttr = [&](StringRef region, int64_t offset) {
      return BufferAttr::get(&getContext(), region, offset);
    };

    // Storage of every arena value (a reshape reuses its operand's).
    std::vector<Storage> storages;
    DenseMap<Value, unsigned> storageOf;
    int64_t parameterBytes = 0, constantBytes = 0;
    for (BlockArgument arg : func.getArguments()) {
      if (!isa<RankedTensorType>(arg.getType()) ||
          !cast<RankedTensorType>(arg.getType()).hasStaticShape()) {
        func.emitError() << "argument " << arg.getArgNumber()
                         << " needs a static tensor type to be given memory";
        return signalPassFailure();
      }
      if (func.getArgAttr(arg.getArgNumber(), WeftDialect::kParamAttrName)) {
        func.setArgAttr(arg.getArgNumber(), "weft.buffer",
                        bufferAttr("parameters", parameterBytes));
        parameterBytes += alignedBytes(arg.getType());
        continue;
      }
      if (isHostTensor(arg.getType())) {
        func.emitError() << "argument " << arg.getArgNumber()
                         << " is in host memory; a program's arguments are "
                            "in device memory (weft.offload moves values out)";
        return signalPassFailure();
      }
      if (func.getArgAttr(arg.getArgNumber(), WeftDialect::kStateAttrName)) {
        func.setArgAttr(arg.getArgNumber(), "weft.buffer",
                        bufferAttr("state", 0));
        continue;
      }
      storageOf[arg] = storages.size();
      storages.push_back({alignedBytes(arg.getType()), -1, -1});
    }

    // Results that update a parameter or state argument take its memory.
    DenseMap<Value, Attribute> updates;
    if (failed(claimUpdates(func, updates)))
      return signalPassFailure();

    if (device != "cpu" && device != "cuda") {
      func.emitError() << "the workspace is planned for the cpu or cuda, not '"
                       << device << "'";
      return signalPassFailure();
    }
    const int planThreads =
        threads > 0 ? threads
                    : std::max(1u, std::thread::hardware_concurrency());
    int position = 0;
    int64_t groupScratchPerThread = 0, workspace = 0;
    for (Operation &op : body.without_terminator()) {
      if (auto group = dyn_cast<FusionGroupOp>(op); group && device == "cpu")
        groupScratchPerThread = std::max(
            groupScratchPerThread, alignUp(group.getScratchBytesPerThread()));
      workspace = std::max(workspace, workspaceBytes(&op, device, planThreads));
      for (Value result : op.getResults()) {
        auto type = dyn_cast<RankedTensorType>(result.getType());
        if (!type || !type.hasStaticShape()) {
          op.emitError() << "needs static result types to be given memory";
          return signalPassFailure();
        }
        // A reshape is a view of its operand's memory: an arena storage's,
        // or a constant's or parameter's (annotated below).
        if (isa<ReshapeOp>(op)) {
          if (storageOf.count(op.getOperand(0)))
            storageOf[result] = storageOf[op.getOperand(0)];
        } else if (!isa<ConstantOp>(op) && !updates.count(result)) {
          storageOf[result] = storages.size();
          storages.push_back(
              {alignedBytes(type), position, position, isHostTensor(type)});
        }
        // Host memory is read by weft.reload alone.
        if (isHostTensor(type))
          for (Operation *user : result.getUsers())
            if (!isa<ReloadOp>(user)) {
              user->emitError() << "reads a tensor in host memory; only "
                                   "weft.reload does (bring it back first)";
              return signalPassFailure();
            }
      }
      ++position;
    }
    const int end = position; // the return
    // Live ranges: to the last use, and to the end for returned values.
    position = 0;
    for (Operation &op : body) {
      for (Value operand : op.getOperands()) {
        auto it = storageOf.find(operand);
        if (it == storageOf.end())
          continue;
        Storage &s = storages[it->second];
        s.last = std::max(
            s.last, op.hasTrait<OpTrait::IsTerminator>() ? end : position);
      }
      ++position;
    }

    // A result written over an input of the same size that dies there (a
    // fusion group's row input, scatter_add's base, matmul's accumulator):
    // the two values share one storage.
    std::vector<bool> merged(storages.size(), false);
    auto overwrite = [&](Operation *op, OpResult result, int at) {
      auto r = storageOf.find(result);
      if (r == storageOf.end())
        return;
      const unsigned gone = r->second;
      for (OpOperand &operand : op->getOpOperands()) {
        auto x = storageOf.find(operand.get());
        if (x == storageOf.end() || x->second == gone)
          continue;
        Storage &into = storages[x->second];
        const Storage &from = storages[gone];
        if (into.last != at || into.first < 0 || into.host || from.host ||
            into.bytes != from.bytes ||
            !updatesInPlace(op, result, operand.get()))
          continue;
        into.last = std::max(into.last, from.last);
        merged[gone] = true;
        for (auto &entry : storageOf)
          if (entry.second == gone)
            entry.second = x->second;
        return;
      }
    };
    position = 0;
    for (Operation &op : body) {
      if (isa<FusionGroupOp, ScatterAddOp, MatmulOp>(op))
        for (OpResult result : op.getResults())
          overwrite(&op, result, position);
      ++position;
    }

    // Largest first, each at the lowest offset free over its live range.
    std::vector<unsigned> order;
    for (unsigned i = 0; i < storages.size(); ++i)
      if (!merged[i])
        order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) {
      return storages[a].bytes > storages[b].bytes;
    });
    // The arena and the host memory are placed apart.
    std::vector<unsigned> placed;
    int64_t activationBytes = 0, hostBytes = 0;
    for (unsigned index : order) {
      Storage &s = storages[index];
      std::vector<std::pair<int64_t, int64_t>> taken;
      for (unsigned other : placed) {
        const Storage &o = storages[other];
        if (o.host == s.host && o.first <= s.last && s.first <= o.last)
          taken.push_back({o.offset, o.offset + o.bytes});
      }
      std::sort(taken.begin(), taken.end());
      int64_t offset = 0;
      for (auto [begin, finish] : taken) {
        if (offset + s.bytes <= begin)
          break;
        offset = std::max(offset, finish);
      }
      s.offset = offset;
      int64_t &used = s.host ? hostBytes : activationBytes;
      used = std::max(used, offset + s.bytes);
      placed.push_back(index);
    }

    // Annotate arguments, ops and the function.
    for (BlockArgument arg : func.getArguments())
      if (storageOf.count(arg))
        func.setArgAttr(arg.getArgNumber(), "weft.buffer",
                        bufferAttr("arena", storages[storageOf[arg]].offset));
    // Values outside the arena (parameters, constants) by their buffer, for
    // the reshapes that view them.
    DenseMap<Value, Attribute> outside;
    for (BlockArgument arg : func.getArguments())
      if (auto attr = func.getArgAttr(arg.getArgNumber(), "weft.buffer");
          attr && !storageOf.count(arg))
        outside[arg] = attr;
    position = 0;
    for (Operation &op : body.without_terminator()) {
      SmallVector<Attribute> buffers;
      for (Value result : op.getResults()) {
        if (isa<ConstantOp>(op)) {
          buffers.push_back(bufferAttr("constants", constantBytes));
          outside[result] = buffers.back();
          constantBytes += alignedBytes(result.getType());
        } else if (isa<ReshapeOp>(op) && outside.count(op.getOperand(0))) {
          buffers.push_back(outside[op.getOperand(0)]);
          outside[result] = buffers.back();
        } else if (updates.count(result)) {
          buffers.push_back(updates[result]);
          outside[result] = buffers.back();
        } else {
          const Storage &storage = storages[storageOf[result]];
          buffers.push_back(
              bufferAttr(storage.host ? "host" : "arena", storage.offset));
        }
      }
      op.setAttr("weft.buffers", b.getArrayAttr(buffers));
      int64_t live = 0;
      for (unsigned i = 0; i < storages.size(); ++i)
        if (const Storage &s = storages[i];
            !merged[i] && !s.host && s.first <= position && position <= s.last)
          live += s.bytes;
      op.setAttr("weft.live_bytes", b.getI64IntegerAttr(live));
      ++position;
    }
    func->setAttr("weft.threads", b.getI64IntegerAttr(planThreads));
    func->setAttr("weft.activation_bytes",
                  b.getI64IntegerAttr(activationBytes));
    func->setAttr("weft.workspace_per_thread",
                  b.getI64IntegerAttr(groupScratchPerThread));
    func->setAttr("weft.workspace_bytes", b.getI64IntegerAttr(workspace));
    func->setAttr("weft.arena_bytes",
                  b.getI64IntegerAttr(activationBytes + workspace));
    func->setAttr("weft.device", b.getStringAttr(device));
    func->setAttr("weft.parameter_bytes", b.getI64IntegerAttr(parameterBytes));
    func->setAttr("weft.constant_bytes", b.getI64IntegerAttr(constantBytes));
    if (hostBytes > 0)
      func->setAttr("weft.host_bytes", b.getI64IntegerAttr(hostBytes));
  }

  /// Gives each `weft.update` result its argument's buffer (the parameter's,
  /// or state), after checking that the op computing it runs after every
  /// other read of the argument. A result that cannot take the memory as it
  /// is (an argument, a constant, a view, a value returned twice) is copied
  /// into it.
  LogicalResult claimUpdates(func::FuncOp func,
                             DenseMap<Value, Attribute> &updates) {
    Block &body = func.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    DenseMap<Operation *, int> position;
    for (auto [i, op] : llvm::enumerate(body))
      position[&op] = static_cast<int>(i);
    for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
      auto name =
          func.getResultAttrOfType<StringAttr>(i, WeftDialect::kUpdateAttrName);
      if (!name)
        continue;
      BlockArgument arg = updatedArgument(func, name.getValue());
      if (!arg)
        return func.emitError()
               << "result " << i << " updates '" << name.getValue()
               << "', which is no parameter or state argument";
      if (arg.getType() != ret.getOperand(i).getType())
        return func.emitError()
               << "result " << i << " updates '" << name.getValue() << "' ("
               << arg.getType() << ") with " << ret.getOperand(i).getType();
      Value value = ret.getOperand(i);
      Operation *def = value.getDefiningOp();
      // A reshape of a value used only by it: that value takes the memory
      // (the reshape views it).
      Value source = value;
      if (auto reshape = dyn_cast_or_null<ReshapeOp>(def)) {
        Value operand = reshape.getOperand();
        Operation *producer = operand.getDefiningOp();
        if (producer && operand.hasOneUse() &&
            !isa<ConstantOp, ReshapeOp>(producer) && !updates.count(operand) &&
            !updates.count(value)) {
          source = operand;
          def = producer;
        }
      }
      if (!def || isa<ConstantOp, ReshapeOp>(def) || updates.count(value)) {
        OpBuilder b(ret);
        auto type = cast<RankedTensorType>(value.getType());
        SmallVector<int64_t> identity;
        for (int64_t d = 0; d < type.getRank(); ++d)
          identity.push_back(d);
        def = b.create<BroadcastOp>(ret.getLoc(), type, value,
                                    b.getDenseI64ArrayAttr(identity));
        value = source = def->getResult(0);
        ret.setOperand(i, value);
        position[def] = position[ret];
        position[ret] = position[def] + 1;
      }
      // Every reader of the argument's memory, through reshapes (views).
      SmallVector<Value> views = {arg};
      while (!views.empty()) {
        Value view = views.pop_back_val();
        for (OpOperand &use : view.getUses()) {
          Operation *reader = use.getOwner();
          if (isa<ReshapeOp>(reader))
            views.push_back(reader->getResult(0));
          if (reader == ret ||
              (position[reader] < position[def] && reader != def) ||
              (reader == def && updatesInPlace(def, source, view)))
            continue;
          return def->emitError()
                 << "updates '" << name.getValue() << "' in place, but "
                 << reader->getName() << " at " << reader->getLoc()
                 << " reads it "
                 << (reader == def ? "in the same step" : "later");
        }
      }
      updates[value] = updates[source] =
          func.getArgAttr(arg.getArgNumber(), "weft.buffer");
    }
    return success();
  }
};
} // namespace

int64_t weft::alignedBytes(Type type) { return alignUp(tensorBytes(type)); }

namespace {
/// The kernel's view of weft.attention's or weft.attention_grad's shapes.
template <typename OpT> kernels::cpu::AttentionShape attentionShape(OpT op) {
  ArrayRef<int64_t> q = op.getQ().getType().getShape(),
                    k = op.getK().getType().getShape();
  return {
      q[0], q[1], k[1], q[2], k[2], q[3], op.getV().getType().getDimSize(3)};
}

/// Bytes of staging a collective takes from the workspace on either device:
/// a gather along an inner dimension receives every member's block into a
/// staging copy first; an all-to-all stages what it sends when it splits an
/// inner dimension and what it receives when it joins one.
int64_t stagingBytes(Operation *op) {
  auto inner = [](RankedTensorType type, int64_t dim) {
    int64_t outer = 1;
    for (int64_t d = 0; d < dim; ++d)
      outer *= type.getDimSize(d);
    return outer != 1;
  };
  if (auto gather = dyn_cast<AllGatherOp>(op))
    return inner(gather.getX().getType(), gather.getDim())
               ? alignUp(tensorBytes(gather.getType()))
               : 0;
  if (auto exchange = dyn_cast<AllToAllOp>(op)) {
    auto x = cast<RankedTensorType>(exchange.getX().getType());
    return alignUp(tensorBytes(x)) *
           (inner(x, exchange.getSplitDim()) +
            inner(exchange.getType(), exchange.getConcatDim()));
  }
  return 0;
}

/// Workspace bytes the CPU kernel of `op` needs when run with `threads`
/// threads (0 for most ops).
int64_t cpuWorkspaceBytes(Operation *op, int threads) {
  if (auto attention = dyn_cast<AttentionOp>(op))
    return alignUp(
        4 * kernels::cpu::attentionWorkspace(
                attentionShape(attention), threads,
                attention.getResult().getType().getElementType().isBF16()));
  if (auto grad = dyn_cast<AttentionGradOp>(op))
    return alignUp(4 * kernels::cpu::attentionBackwardWorkspace(
                           attentionShape(grad), threads,
                           grad.getDq().getType().getElementType().isBF16()));
  // bf16 linears widen tiles of their rows and of each weight (a grouped
  // linear's weights one after another) in the workspace.
  if (isa<LinearOp, GroupedLinearOp>(op)) {
    auto result = cast<RankedTensorType>(op->getResultTypes()[0]);
    if (!result.getElementType().isBF16())
      return 0;
    Value weight = isa<LinearOp>(op)
                       ? cast<LinearOp>(op).getWeight()
                       : cast<GroupedLinearOp>(op).getWeights().front();
    ArrayRef<int64_t> w = cast<RankedTensorType>(weight.getType()).getShape();
    return alignUp(4 * kernels::cpu::linearBf16Workspace(
                           result.getNumElements() / w[0], w[1], w[0]));
  }
  if (auto matmul = dyn_cast<MatmulOp>(op)) {
    RankedTensorType result = matmul.getResult().getType();
    if (!result.getElementType().isBF16())
      return 0;
    ArrayRef<int64_t> c = result.getShape(),
                      a = matmul.getLhs().getType().getShape();
    const int64_t k = a[a.size() - (matmul.getTransposeLhs() ? 2 : 1)];
    return alignUp(
        4 * kernels::cpu::matmulBf16Workspace(c[c.size() - 2], c.back(), k));
  }
  if (auto group = dyn_cast<FusionGroupOp>(op))
    return alignUp(group.getScratchBytesPerThread()) * threads;
  return stagingBytes(op);
}

/// Workspace bytes the CUDA runtime's step for `op` takes from the plan:
/// GEMMs use cuBLASLt's workspace, attention's forward and the generated
/// kernels none (a row stays in registers and shared memory), the runtime
/// allocates cuDNN's and its own scratch beside the plan's memory.
int64_t cudaWorkspaceBytes(Operation *op) {
  if (auto grad = dyn_cast<AttentionGradOp>(op)) {
    const kernels::cpu::AttentionShape s = attentionShape(grad);
    return alignUp(kernels::cuda::training::attentionGradWorkspaceBytes(
        s.batch, s.heads, s.sq));
  }
  return stagingBytes(op);
}

int64_t workspaceBytes(Operation *op, StringRef device, int threads) {
  return device == "cuda" ? cudaWorkspaceBytes(op)
                          : cpuWorkspaceBytes(op, threads);
}
} // namespace
