// weft-assign-buffers: liveness and best-fit placement in one arena.
#include "passes/Bufferize/Passes.h"

#include "kernels/cpu/Kernels.h"

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

/// One stretch of arena memory and the op positions it is live over.
struct Storage {
  int64_t bytes;
  int first, last; // inclusive; inputs start at -1
  int64_t offset = -1;
};

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
      storageOf[arg] = storages.size();
      storages.push_back({alignedBytes(arg.getType()), -1, -1});
    }

    const int planThreads =
        threads > 0 ? threads
                    : std::max(1u, std::thread::hardware_concurrency());
    int position = 0;
    int64_t groupScratchPerThread = 0, workspaceBytes = 0;
    for (Operation &op : body.without_terminator()) {
      if (auto group = dyn_cast<FusionGroupOp>(op))
        groupScratchPerThread = std::max(
            groupScratchPerThread, alignUp(group.getScratchBytesPerThread()));
      workspaceBytes =
          std::max(workspaceBytes, cpuWorkspaceBytes(&op, planThreads));
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
        } else if (!isa<ConstantOp>(op)) {
          storageOf[result] = storages.size();
          storages.push_back({alignedBytes(type), position, position});
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

    // Largest first, each at the lowest offset free over its live range.
    std::vector<unsigned> order(storages.size());
    for (unsigned i = 0; i < order.size(); ++i)
      order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) {
      return storages[a].bytes > storages[b].bytes;
    });
    std::vector<unsigned> placed;
    int64_t activationBytes = 0;
    for (unsigned index : order) {
      Storage &s = storages[index];
      std::vector<std::pair<int64_t, int64_t>> taken;
      for (unsigned other : placed) {
        const Storage &o = storages[other];
        if (o.first <= s.last && s.first <= o.last)
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
      activationBytes = std::max(activationBytes, offset + s.bytes);
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
        } else {
          buffers.push_back(
              bufferAttr("arena", storages[storageOf[result]].offset));
        }
      }
      op.setAttr("weft.buffers", b.getArrayAttr(buffers));
      int64_t live = 0;
      for (const Storage &s : storages)
        if (s.first <= position && position <= s.last)
          live += s.bytes;
      op.setAttr("weft.live_bytes", b.getI64IntegerAttr(live));
      ++position;
    }
    func->setAttr("weft.threads", b.getI64IntegerAttr(planThreads));
    func->setAttr("weft.activation_bytes",
                  b.getI64IntegerAttr(activationBytes));
    func->setAttr("weft.workspace_per_thread",
                  b.getI64IntegerAttr(groupScratchPerThread));
    func->setAttr("weft.workspace_bytes", b.getI64IntegerAttr(workspaceBytes));
    func->setAttr("weft.arena_bytes",
                  b.getI64IntegerAttr(activationBytes + workspaceBytes));
    func->setAttr("weft.parameter_bytes", b.getI64IntegerAttr(parameterBytes));
    func->setAttr("weft.constant_bytes", b.getI64IntegerAttr(constantBytes));
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
} // namespace

int64_t weft::cpuWorkspaceBytes(Operation *op, int threads) {
  if (auto attention = dyn_cast<AttentionOp>(op))
    return alignUp(4 * kernels::cpu::attentionWorkspace(
                           attentionShape(attention), threads,
                           attention.getType().getElementType().isBF16()));
  if (auto grad = dyn_cast<AttentionGradOp>(op))
    return alignUp(4 * kernels::cpu::attentionBackwardWorkspace(
                           attentionShape(grad), threads));
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
  if (auto group = dyn_cast<FusionGroupOp>(op))
    return alignUp(group.getScratchBytesPerThread()) * threads;
  return 0;
}
