// weft-data-parallel: the collectives of data parallelism (see Passes.td).
#include "passes/Partition/Passes.h"

#include "ir/WeftDialect.h"

#include "mlir/IR/Builders.h"

namespace weft {
#define GEN_PASS_DEF_DATAPARALLEL
#include "passes/Partition/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
struct DataParallel : public weft::impl::DataParallelBase<DataParallel> {
  using DataParallelBase::DataParallelBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (dp < 1) {
      module.emitError() << "dp is " << static_cast<int64_t>(dp)
                         << "; a data-parallel group has at least one rank";
      return signalPassFailure();
    }
    if (dp == 1)
      return;
    MLIRContext *context = &getContext();
    auto mesh = MeshAttr::get(
        context, {MeshAxisAttr::get(context, "dp", static_cast<int64_t>(dp))});
    module->setAttr("weft.mesh", mesh);
    OpBuilder b(context);
    ArrayAttr axes = b.getStrArrayAttr({"dp"});
    const float inverse = 1.0f / static_cast<float>(dp);

    bool updates = false;
    for (auto func : module.getOps<func::FuncOp>()) {
      // The gradients the optimizer reads are this rank's share: sum them
      // over the group (the update then scales by 1/dp with its own mean).
      SmallVector<GradNormOp> norms(func.getOps<GradNormOp>());
      for (GradNormOp norm : norms) {
        updates = true;
        for (unsigned i = 0; i < norm.getNumOperands(); ++i) {
          Value grad = norm.getOperand(i);
          b.setInsertionPoint(norm);
          // bf16 gradients are summed in f32.
          auto type = cast<RankedTensorType>(grad.getType());
          Value wide = grad;
          if (!type.getElementType().isF32())
            wide = b.create<ConvertOp>(norm.getLoc(),
                                       type.clone(b.getF32Type()), grad);
          Value total = b.create<AllReduceOp>(norm.getLoc(), ReduceKind::sum,
                                              wide, mesh, axes);
          for (OpOperand &use : llvm::make_early_inc_range(grad.getUses())) {
            auto adamw = dyn_cast<AdamWUpdateOp>(use.getOwner());
            if (use.getOwner() == norm.getOperation() ||
                (adamw && use.getOperandNumber() == 1))
              use.set(total);
          }
        }
        norm.setGradScale(
            APFloat(norm.getGradScale().convertToFloat() * inverse));
      }
      func.walk([&](AdamWUpdateOp adamw) {
        adamw.setGradScale(
            APFloat(adamw.getGradScale().convertToFloat() * inverse));
      });
      // The loss each rank reports is the mean over the group's.
      auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
      for (unsigned i = 0; i < ret.getNumOperands(); ++i) {
        auto name = func.getResultAttrOfType<StringAttr>(
            i, WeftDialect::kOutputAttrName);
        if (!name || name.getValue() != "loss")
          continue;
        b.setInsertionPoint(ret);
        ret.setOperand(i, b.create<AllReduceOp>(ret.getLoc(), ReduceKind::mean,
                                                ret.getOperand(i), mesh, axes));
      }
    }
    if (!updates) {
      module.emitError("data parallelism needs a training step with its "
                       "optimizer (weft-optimizer), whose gradients it sums "
                       "over the ranks");
      return signalPassFailure();
    }
  }
};
} // namespace
