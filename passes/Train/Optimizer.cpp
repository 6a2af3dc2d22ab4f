// weft-optimizer: AdamW after the backward (see Passes.td).
#include "passes/Train/Passes.h"

#include "ir/WeftDialect.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringExtras.h"

namespace weft {
#define GEN_PASS_DEF_OPTIMIZER
#include "passes/Train/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
/// A trained parameter: its argument, gradient and what the update needs.
struct Trained {
  std::string name;
  BlockArgument param;
  Value grad;
  bool bf16, decay;
};

/// Named results, in order, and the attributes that name them.
struct Results {
  SmallVector<Value> values;
  SmallVector<DictionaryAttr> attrs;
  void add(OpBuilder &b, Value value, StringRef attr, StringRef name) {
    values.push_back(value);
    attrs.push_back(
        b.getDictionaryAttr(b.getNamedAttr(attr, b.getStringAttr(name))));
  }
};

/// Zeros of `type` (f32), broadcast from a rank-0 constant rather than held
/// as a constant the size of the tensor.
Value zerosOf(OpBuilder &b, Location loc, RankedTensorType type) {
  auto scalar = RankedTensorType::get({}, b.getF32Type());
  Value constant = b.create<ConstantOp>(
      loc, DenseElementsAttr::get(scalar, b.getF32FloatAttr(0.0f)));
  return b.create<BroadcastOp>(loc, type, constant, b.getDenseI64ArrayAttr({}));
}

struct Optimizer : public weft::impl::OptimizerBase<Optimizer> {
  using OptimizerBase::OptimizerBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    func::FuncOp func = findEntryFunction(module);
    if (!func) {
      module.emitError("weft-optimizer needs a @forward function (or a "
                       "single function)");
      return signalPassFailure();
    }
    if (accumulation < 1) {
      func.emitError() << "accumulation is "
                       << static_cast<int64_t>(accumulation)
                       << "; an optimizer step needs at least one micro-batch";
      return signalPassFailure();
    }
    if (module.lookupSymbol("train_step") && func.getName() != "train_step") {
      func.emitError("cannot become @train_step: the module has one already");
      return signalPassFailure();
    }
    Block &body = func.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());

    // The gradients the backward returns, and the other results kept.
    SmallVector<StringRef> noDecayPatterns;
    StringRef(noDecay).split(noDecayPatterns, ',', -1, false);
    llvm::StringMap<BlockArgument> params;
    for (BlockArgument arg : func.getArguments())
      if (auto name = func.getArgAttrOfType<StringAttr>(
              arg.getArgNumber(), WeftDialect::kParamAttrName))
        params[name.getValue()] = arg;
    OpBuilder b(ret);
    Results kept;
    SmallVector<Trained> trained;
    for (auto [i, value] : llvm::enumerate(ret.getOperands())) {
      auto output =
          func.getResultAttrOfType<StringAttr>(i, WeftDialect::kOutputAttrName);
      StringRef name = output ? output.getValue() : "";
      // A training step returns no logits: [batch, seq, vocab] would live
      // to its end (and be gathered whole under sequence parallelism).
      if (name == "logits")
        continue;
      if (!name.consume_front("grad.")) {
        kept.values.push_back(value);
        kept.attrs.push_back(func.getResultAttrDict(i)
                                 ? func.getResultAttrDict(i)
                                 : b.getDictionaryAttr({}));
        continue;
      }
      BlockArgument param = params.lookup(name);
      if (!param) {
        func.emitError() << "returns '" << output.getValue()
                         << "' but has no parameter '" << name << "'";
        return signalPassFailure();
      }
      auto type = cast<RankedTensorType>(param.getType());
      if (!type.getElementType().isF32() && !type.getElementType().isBF16()) {
        func.emitError() << "parameter '" << name << "' is " << type
                         << "; AdamW trains f32 or bf16 parameters";
        return signalPassFailure();
      }
      bool decay = llvm::none_of(noDecayPatterns, [&](StringRef pattern) {
        return name.contains(pattern);
      });
      trained.push_back(
          {name.str(), param, value, type.getElementType().isBF16(), decay});
    }
    if (trained.empty()) {
      func.emitError("returns no gradients (grad.<parameter>) to update; run "
                     "weft-autodiff first, with a parameter left unfrozen");
      return signalPassFailure();
    }

    // The settings, for the plan (plan.proto, Optimizer).
    SmallVector<Attribute> exempt;
    for (StringRef pattern : noDecayPatterns)
      exempt.push_back(b.getStringAttr(pattern));
    module->setAttr(
        "weft.optimizer",
        b.getDictionaryAttr(
            {b.getNamedAttr("kind", b.getStringAttr("adamw")),
             b.getNamedAttr("beta1", b.getF64FloatAttr(beta1)),
             b.getNamedAttr("beta2", b.getF64FloatAttr(beta2)),
             b.getNamedAttr("eps", b.getF64FloatAttr(eps)),
             b.getNamedAttr("weight_decay", b.getF64FloatAttr(weightDecay)),
             b.getNamedAttr("max_grad_norm", b.getF64FloatAttr(maxGradNorm)),
             b.getNamedAttr("accumulation", b.getI64IntegerAttr(accumulation)),
             b.getNamedAttr("no_decay", b.getArrayAttr(exempt))}));

    Location loc = ret.getLoc();
    auto f32Of = [&](BlockArgument param) {
      return cast<RankedTensorType>(param.getType()).clone(b.getF32Type());
    };
    auto addArgument = [&](func::FuncOp to, Type type, StringRef attr,
                           StringRef name) -> BlockArgument {
      unsigned index = to.getNumArguments();
      to.insertArgument(
          index, type,
          b.getDictionaryAttr(b.getNamedAttr(attr, b.getStringAttr(name))),
          loc);
      return to.getArgument(index);
    };
    auto finish = [&](func::FuncOp to, Operation *oldReturn,
                      const Results &results) {
      b.setInsertionPoint(oldReturn);
      b.create<func::ReturnOp>(loc, results.values);
      oldReturn->erase();
      to.setType(FunctionType::get(&getContext(), to.getArgumentTypes(),
                                   ValueRange(results.values).getTypes()));
      to.setAllResultAttrs(results.attrs);
    };

    // The update of every parameter from its (f32 or bf16) gradient `grads`
    // times `gradScale`, in `to`, before `where`: appends the results to
    // `results`.
    auto update = [&](func::FuncOp to, Operation *where,
                      ArrayRef<BlockArgument> paramArgs, ArrayRef<Value> grads,
                      float gradScale, Results &results) {
      SmallVector<BlockArgument> masters, m, v;
      for (auto [p, param] : llvm::zip(trained, paramArgs)) {
        masters.push_back(p.bf16 ? addArgument(to, f32Of(param),
                                               WeftDialect::kStateAttrName,
                                               p.name + ".master")
                                 : BlockArgument());
        m.push_back(addArgument(to, f32Of(param), WeftDialect::kStateAttrName,
                                p.name + ".exp_avg"));
        v.push_back(addArgument(to, f32Of(param), WeftDialect::kStateAttrName,
                                p.name + ".exp_avg_sq"));
      }
      BlockArgument lr =
          addArgument(to, RankedTensorType::get({}, b.getF64Type()),
                      WeftDialect::kInputAttrName, "lr");
      BlockArgument step =
          addArgument(to, RankedTensorType::get({}, b.getI64Type()),
                      WeftDialect::kInputAttrName, "step");
      b.setInsertionPoint(where);
      Value norm = b.create<GradNormOp>(
          loc, grads, b.getF32FloatAttr(gradScale), MeshAttr(), ArrayAttr());
      results.add(b, norm, WeftDialect::kOutputAttrName, "grad_norm");
      for (auto [i, p] : llvm::enumerate(trained)) {
        Value weights = p.bf16 ? Value(masters[i]) : Value(paramArgs[i]);
        auto adamw = b.create<AdamWUpdateOp>(
            NameLoc::get(b.getStringAttr(p.name)), weights, grads[i], m[i],
            v[i], lr, step, norm, b.getF64FloatAttr(beta1),
            b.getF64FloatAttr(beta2), b.getF64FloatAttr(eps),
            b.getF64FloatAttr(p.decay ? weightDecay : 0.0),
            b.getF64FloatAttr(maxGradNorm), b.getF32FloatAttr(gradScale),
            UnitAttr());
        if (p.bf16) {
          results.add(b,
                      b.create<ConvertOp>(adamw.getLoc(),
                                          paramArgs[i].getType(),
                                          adamw.getNewParam()),
                      WeftDialect::kUpdateAttrName, p.name);
          results.add(b, adamw.getNewParam(), WeftDialect::kUpdateAttrName,
                      p.name + ".master");
        } else {
          results.add(b, adamw.getNewParam(), WeftDialect::kUpdateAttrName,
                      p.name);
        }
        results.add(b, adamw.getNewExpAvg(), WeftDialect::kUpdateAttrName,
                    p.name + ".exp_avg");
        results.add(b, adamw.getNewExpAvgSq(), WeftDialect::kUpdateAttrName,
                    p.name + ".exp_avg_sq");
      }
    };

    func.setName("train_step");
    SmallVector<BlockArgument> paramArgs;
    SmallVector<Value> grads;
    for (const Trained &p : trained) {
      paramArgs.push_back(p.param);
      grads.push_back(p.grad);
    }
    if (accumulation == 1) {
      update(func, ret, paramArgs, grads, 1.0f, kept);
      finish(func, ret, kept);
      return;
    }

    // Accumulation: @train_step adds its gradients to the accumulators ...
    for (const Trained &p : trained) {
      BlockArgument acc =
          addArgument(func, f32Of(p.param), WeftDialect::kStateAttrName,
                      "grad_acc." + p.name);
      b.setInsertionPoint(ret);
      Value grad = p.grad;
      if (p.bf16)
        grad = b.create<ConvertOp>(loc, acc.getType(), grad);
      kept.add(b, b.create<AddOp>(loc, acc, grad), WeftDialect::kUpdateAttrName,
               "grad_acc." + p.name);
    }
    finish(func, ret, kept);

    // ... and @optimizer_step, with the same parameter arguments, updates.
    b.setInsertionPointAfter(func);
    auto step =
        b.create<func::FuncOp>(func.getLoc(), "optimizer_step",
                               FunctionType::get(&getContext(), {}, {}));
    Block *stepBody = step.addEntryBlock();
    b.setInsertionPointToEnd(stepBody);
    auto stepReturn = b.create<func::ReturnOp>(loc);
    llvm::StringMap<BlockArgument> stepParams;
    for (BlockArgument arg : func.getArguments())
      if (auto name = func.getArgAttrOfType<StringAttr>(
              arg.getArgNumber(), WeftDialect::kParamAttrName))
        stepParams[name.getValue()] = addArgument(
            step, arg.getType(), WeftDialect::kParamAttrName, name.getValue());
    SmallVector<BlockArgument> accs;
    for (const Trained &p : trained)
      accs.push_back(addArgument(step, f32Of(p.param),
                                 WeftDialect::kStateAttrName,
                                 "grad_acc." + p.name));
    SmallVector<BlockArgument> stepParamArgs;
    for (const Trained &p : trained)
      stepParamArgs.push_back(stepParams.lookup(p.name));
    // The mean over micro-batches: the sums times 1/K in f32, as the norm and
    // AdamW read them.
    Results results;
    SmallVector<Value> sums(accs.begin(), accs.end());
    update(step, stepReturn, stepParamArgs, sums,
           1.0f / static_cast<float>(accumulation), results);
    // The accumulators start the next step at zero.
    b.setInsertionPoint(stepReturn);
    for (auto [p, acc] : llvm::zip(trained, accs))
      results.add(b, zerosOf(b, loc, cast<RankedTensorType>(acc.getType())),
                  WeftDialect::kUpdateAttrName, "grad_acc." + p.name);
    finish(step, stepReturn, results);
  }
};
} // namespace
