// weft-check-static-shapes: every tensor of a function has a static shape.
#include "passes/ImportCleanup/Passes.h"

#include "mlir/IR/BuiltinTypes.h"

namespace weft {
#define GEN_PASS_DEF_CHECKSTATICSHAPES
#include "passes/ImportCleanup/Passes.h.inc"
} // namespace weft

using namespace mlir;

namespace {
bool isDynamic(Type type) {
  auto shaped = dyn_cast<ShapedType>(type);
  return shaped && !shaped.hasStaticShape();
}

struct CheckStaticShapes
    : public weft::impl::CheckStaticShapesBase<CheckStaticShapes> {
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    bool ok = true;
    for (BlockArgument arg : func.getArguments()) {
      if (!isDynamic(arg.getType()))
        continue;
      func.emitError() << "argument " << arg.getArgNumber() << " of @"
                       << func.getSymName() << " has the dynamic type "
                       << arg.getType()
                       << "; give the input's static shape at import";
      ok = false;
    }
    func.walk([&](Operation *op) {
      for (OpResult result : op->getResults()) {
        if (!isDynamic(result.getType()))
          continue;
        op->emitError() << "result " << result.getResultNumber()
                        << " has the dynamic type " << result.getType()
                        << "; every shape must be static after import-cleanup";
        ok = false;
      }
    });
    if (!ok)
      signalPassFailure();
  }
};
} // namespace
