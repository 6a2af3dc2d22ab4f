// weft-autodiff: reverse mode over the weft dialect (see Passes.td).
#include "passes/Train/Passes.h"

#include "ir/WeftDialect.h"
#include "ir/WeftInterfaces.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"

namespace weft {
#define GEN_PASS_DEF_AUTODIFF
#include "passes/Train/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
bool isFloatTensor(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && isa<FloatType>(tensor.getElementType());
}

Value zerosLike(OpBuilder &b, Location loc, Type type) {
  auto tensor = cast<RankedTensorType>(type);
  return b.create<ConstantOp>(
      loc, DenseElementsAttr::get(
               tensor, FloatAttr::get(tensor.getElementType(), 0.0)));
}

struct Autodiff : public weft::impl::AutodiffBase<Autodiff> {
  using AutodiffBase::AutodiffBase;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    Block &body = func.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    if (ret.getNumOperands() == 0 ||
        !isFloatTensor(ret.getOperand(0).getType()) ||
        cast<RankedTensorType>(ret.getOperand(0).getType()).getRank() != 0) {
      func.emitError("needs a rank-0 float loss as its first result to be "
                     "differentiated");
      return signalPassFailure();
    }
    // The arguments to differentiate with respect to.
    SmallVector<StringRef> frozenPatterns;
    StringRef(frozen).split(frozenPatterns, ',', -1, false);
    SmallVector<std::pair<BlockArgument, std::string>> wrt;
    for (BlockArgument arg : func.getArguments()) {
      if (!isFloatTensor(arg.getType()))
        continue;
      auto param = func.getArgAttrOfType<StringAttr>(
          arg.getArgNumber(), WeftDialect::kParamAttrName);
      if (!param && !allArguments)
        continue;
      std::string name =
          param ? param.str() : "arg" + std::to_string(arg.getArgNumber());
      if (llvm::any_of(frozenPatterns, [&](StringRef pattern) {
            return StringRef(name).contains(pattern);
          }))
        continue;
      wrt.push_back({arg, name});
    }

    OpBuilder b(ret);
    Location loc = ret.getLoc();
    llvm::DenseMap<Value, Value> grads;
    Value loss = ret.getOperand(0);
    auto lossType = cast<RankedTensorType>(loss.getType());
    grads[loss] = b.create<ConstantOp>(
        loc, DenseElementsAttr::get(
                 lossType, FloatAttr::get(lossType.getElementType(), 1.0)));

    SmallVector<Operation *> forward;
    for (Operation &op : body.without_terminator())
      forward.push_back(&op);
    for (Operation *op : llvm::reverse(forward)) {
      SmallVector<Value> resultGrads;
      bool any = false;
      for (Value result : op->getResults()) {
        resultGrads.push_back(grads.lookup(result));
        any |= static_cast<bool>(resultGrads.back());
      }
      if (!any)
        continue;
      auto differentiable = dyn_cast<DifferentiableOpInterface>(op);
      if (!differentiable) {
        // Ops without float operands (constants, iota, integer arithmetic)
        // pass no gradient on.
        if (llvm::none_of(op->getOperandTypes(), isFloatTensor))
          continue;
        op->emitError("has no gradient rule; the loss cannot be "
                      "differentiated through it");
        return signalPassFailure();
      }
      b.setInsertionPoint(ret);
      SmallVector<Value> operandGrads;
      if (failed(differentiable.buildVjp(b, resultGrads, operandGrads)))
        return signalPassFailure();
      if (operandGrads.size() != op->getNumOperands()) {
        op->emitError("gradient rule gave ")
            << operandGrads.size() << " gradients for " << op->getNumOperands()
            << " operands";
        return signalPassFailure();
      }
      for (auto [operand, grad] : llvm::zip(op->getOperands(), operandGrads)) {
        if (!grad)
          continue;
        Value &total = grads[operand];
        total = total ? b.create<AddOp>(op->getLoc(), total, grad).getResult()
                      : grad;
      }
    }

    // Return the function's results, then the gradients.
    b.setInsertionPoint(ret);
    SmallVector<Value> results(ret.getOperands());
    for (auto &[arg, name] : wrt) {
      Value grad = grads.lookup(arg);
      results.push_back(grad ? grad : zerosLike(b, loc, arg.getType()));
    }
    unsigned originalResults = ret.getNumOperands();
    b.create<func::ReturnOp>(loc, results);
    ret.erase();
    SmallVector<Type> resultTypes;
    for (Value v : results)
      resultTypes.push_back(v.getType());
    func.setType(FunctionType::get(func.getContext(), func.getArgumentTypes(),
                                   resultTypes));
    for (auto [i, entry] : llvm::enumerate(wrt))
      func.setResultAttr(originalResults + i, WeftDialect::kOutputAttrName,
                         b.getStringAttr("grad." + entry.second));
  }
};
} // namespace
