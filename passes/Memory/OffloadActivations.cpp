// weft-offload-activations: saved activations in host memory between the
// forward and the backward (see Passes.td).
#include "passes/Memory/Passes.h"

#include "ir/WeftDialect.h"
#include "passes/Memory/Forward.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"

#include <algorithm>
#include <numeric>

namespace weft {
#define GEN_PASS_DEF_OFFLOADACTIVATIONS
#include "passes/Memory/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
struct OffloadActivations
    : public weft::impl::OffloadActivationsBase<OffloadActivations> {
  using OffloadActivationsBase::OffloadActivationsBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    Block &body = func.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    const llvm::DenseSet<Operation *> forward = forwardOps(func);
    llvm::DenseMap<Operation *, int> position;
    for (auto [i, op] : llvm::enumerate(body))
      position[&op] = static_cast<int>(i);

    // The saved values: forward results the backward reads, each with its
    // last forward use and its first backward use.
    struct Saved {
      Value value;
      Operation *lastForward, *firstBackward;
    };
    std::vector<Saved> saved;
    for (Operation &op : body) {
      if (!forward.contains(&op) || isa<ConstantOp, OffloadOp, ReloadOp>(op) ||
          op.hasAttr(kLossTileAttr))
        continue;
      for (Value result : op.getResults()) {
        if (!isa<RankedTensorType>(result.getType()) ||
            isHostTensor(result.getType()) ||
            tensorBytes(result.getType()) < minBytes)
          continue;
        Saved s{result, &op, nullptr};
        for (Operation *user : result.getUsers()) {
          if (forward.contains(user)) {
            if (position[user] > position[s.lastForward])
              s.lastForward = user;
          } else if (user != ret.getOperation() &&
                     (!s.firstBackward ||
                      position[user] < position[s.firstBackward])) {
            s.firstBackward = user;
          }
        }
        if (s.firstBackward)
          saved.push_back(s);
      }
    }
    // In the order the backward first reads them; each reload one value
    // ahead of its own first use.
    std::stable_sort(
        saved.begin(), saved.end(), [&](const Saved &a, const Saved &b) {
          return position[a.firstBackward] < position[b.firstBackward];
        });
    OpBuilder b(&getContext());
    for (size_t i = 0; i < saved.size(); ++i) {
      Saved &s = saved[i];
      Location loc = s.value.getLoc();
      b.setInsertionPointAfter(s.lastForward);
      Value host = b.create<OffloadOp>(loc, s.value);
      b.setInsertionPoint(i == 0 ? s.firstBackward
                                 : saved[i - 1].firstBackward);
      Value back = b.create<ReloadOp>(loc, host);
      s.value.replaceUsesWithIf(back, [&](OpOperand &use) {
        Operation *user = use.getOwner();
        return !forward.contains(user) && user != ret.getOperation() &&
               !isa<OffloadOp, ReloadOp>(user);
      });
    }
    func->setAttr("weft.offloaded_bytes",
                  b.getI64IntegerAttr(std::accumulate(
                      saved.begin(), saved.end(), int64_t{0},
                      [](int64_t total, const Saved &s) {
                        return total + tensorBytes(s.value.getType());
                      })));
  }
};
} // namespace
