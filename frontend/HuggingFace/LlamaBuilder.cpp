// The LlamaForCausalLM forward graph, op for op as transformers'
// modeling_llama.py computes it (eager attention, no cache).
#include "frontend/HuggingFace/LlamaBuilder.h"

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

using namespace mlir;
using namespace weft;
using namespace weft::frontend;

namespace {
class LlamaGraphBuilder {
public:
  LlamaGraphBuilder(MLIRContext &context, const LlamaConfig &config,
                    const LlamaBuildOptions &options, Type dtype)
      : context(context), config(config), options(options), dtype(dtype),
        builder(&context) {}

  OwningOpRef<ModuleOp> build();

private:
  Location locFor(StringRef name) {
    return NameLoc::get(StringAttr::get(&context, name),
                        FileLineColLoc::get(&context, config.path, 1, 1));
  }
  RankedTensorType tensor(ArrayRef<int64_t> shape, Type elementType = {}) {
    return RankedTensorType::get(shape, elementType ? elementType : dtype);
  }
  /// Declares a parameter of `shape` named `name` (the checkpoint's name).
  void declareParam(StringRef name, ArrayRef<int64_t> shape) {
    paramNames.push_back(name.str());
    paramTypes.push_back(tensor(shape));
  }
  Value param(StringRef name) {
    auto it = llvm::find(paramNames, name);
    assert(it != paramNames.end() && "undeclared parameter");
    return body->getArgument(1 + (it - paramNames.begin()));
  }
  void declareParams();
  Value buildAttention(int64_t layer, Value x, Value positions);
  Value buildMlp(int64_t layer, Value x);

  MLIRContext &context;
  const LlamaConfig &config;
  const LlamaBuildOptions &options;
  Type dtype;
  OpBuilder builder;
  SmallVector<std::string> paramNames;
  SmallVector<Type> paramTypes;
  Block *body = nullptr;
};
} // namespace

void LlamaGraphBuilder::declareParams() {
  int64_t h = config.hiddenSize, d = config.headDim;
  declareParam("model.embed_tokens.weight", {config.vocabSize, h});
  for (int64_t l = 0; l < config.numHiddenLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    declareParam(p + "self_attn.q_proj.weight",
                 {config.numAttentionHeads * d, h});
    declareParam(p + "self_attn.k_proj.weight",
                 {config.numKeyValueHeads * d, h});
    declareParam(p + "self_attn.v_proj.weight",
                 {config.numKeyValueHeads * d, h});
    declareParam(p + "self_attn.o_proj.weight",
                 {h, config.numAttentionHeads * d});
    declareParam(p + "mlp.gate_proj.weight", {config.intermediateSize, h});
    declareParam(p + "mlp.up_proj.weight", {config.intermediateSize, h});
    declareParam(p + "mlp.down_proj.weight", {h, config.intermediateSize});
    declareParam(p + "input_layernorm.weight", {h});
    declareParam(p + "post_attention_layernorm.weight", {h});
  }
  declareParam("model.norm.weight", {h});
  if (!config.tieWordEmbeddings)
    declareParam("lm_head.weight", {config.vocabSize, h});
}

Value LlamaGraphBuilder::buildAttention(int64_t layer, Value x,
                                        Value positions) {
  std::string p = "model.layers." + std::to_string(layer) + ".self_attn";
  Location loc = locFor(p);
  int64_t b = options.batch, s = options.seq, d = config.headDim;
  int64_t heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads;
  auto project = [&](StringRef name, int64_t numHeads) -> Value {
    Value y = builder.create<LinearOp>(locFor(p + "." + name.str()), x,
                                       param(p + "." + name.str() + ".weight"),
                                       Value());
    return builder.create<ReshapeOp>(loc, tensor({b, s, numHeads, d}), y);
  };
  auto rope = [&](Value t) -> Value {
    return builder.create<RopeOp>(loc, t, positions,
                                  builder.getF64FloatAttr(config.ropeTheta),
                                  /*interleaved=*/UnitAttr());
  };
  Value q = rope(project("q_proj", heads));
  Value k = rope(project("k_proj", kvHeads));
  Value v = project("v_proj", kvHeads);
  Value attn =
      builder.create<AttentionOp>(loc, AttentionKind::causal, q, k, v,
                                  /*mask=*/Value(), /*alibi_slopes=*/Value(),
                                  /*scale=*/FloatAttr());
  Value flat = builder.create<ReshapeOp>(loc, tensor({b, s, heads * d}), attn);
  return builder.create<LinearOp>(locFor(p + ".o_proj"), flat,
                                  param(p + ".o_proj.weight"), Value());
}

Value LlamaGraphBuilder::buildMlp(int64_t layer, Value x) {
  std::string p = "model.layers." + std::to_string(layer) + ".mlp";
  auto linear = [&](StringRef name, Value in) -> Value {
    std::string module = p + "." + name.str();
    return builder.create<LinearOp>(locFor(module), in,
                                    param(module + ".weight"), Value());
  };
  Location loc = locFor(p);
  Value gate = builder.create<SiluOp>(loc, linear("gate_proj", x));
  Value up = linear("up_proj", x);
  return linear("down_proj", builder.create<MulOp>(loc, gate, up));
}

OwningOpRef<ModuleOp> LlamaGraphBuilder::build() {
  int64_t b = options.batch, s = options.seq;
  declareParams();
  OwningOpRef<ModuleOp> module = ModuleOp::create(locFor("model"));
  builder.setInsertionPointToEnd(module->getBody());

  Type i64 = builder.getI64Type();
  SmallVector<Type> argTypes{tensor({b, s}, i64)};
  argTypes.append(paramTypes);
  Type logitsType = tensor({b, s, config.vocabSize});
  auto func = builder.create<func::FuncOp>(
      locFor("model"), "forward",
      builder.getFunctionType(argTypes, logitsType));
  func.setArgAttr(0, WeftDialect::kInputAttrName,
                  builder.getStringAttr("input_ids"));
  for (auto [i, name] : llvm::enumerate(paramNames))
    func.setArgAttr(1 + i, WeftDialect::kParamAttrName,
                    builder.getStringAttr(name));
  func.setResultAttr(0, WeftDialect::kOutputAttrName,
                     builder.getStringAttr("logits"));
  body = func.addEntryBlock();
  builder.setInsertionPointToStart(body);

  Value ids = body->getArgument(0);
  Value hidden = builder.create<GatherOp>(
      locFor("model.embed_tokens"), param("model.embed_tokens.weight"), ids,
      /*axis=*/0);
  Value positions = builder.create<IotaOp>(locFor("model.rotary_emb"),
                                           tensor({b, s}, i64), /*dim=*/1);
  float eps = static_cast<float>(config.rmsNormEps);
  for (int64_t l = 0; l < config.numHiddenLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    Value x = builder.create<RmsNormOp>(locFor(p + "input_layernorm"), hidden,
                                        param(p + "input_layernorm.weight"),
                                        builder.getF32FloatAttr(eps));
    hidden = builder.create<AddOp>(locFor(p + "self_attn"), hidden,
                                   buildAttention(l, x, positions));
    x = builder.create<RmsNormOp>(locFor(p + "post_attention_layernorm"),
                                  hidden,
                                  param(p + "post_attention_layernorm.weight"),
                                  builder.getF32FloatAttr(eps));
    hidden = builder.create<AddOp>(locFor(p + "mlp"), hidden, buildMlp(l, x));
  }
  hidden = builder.create<RmsNormOp>(locFor("model.norm"), hidden,
                                     param("model.norm.weight"),
                                     builder.getF32FloatAttr(eps));
  Value head = param(config.tieWordEmbeddings ? "model.embed_tokens.weight"
                                              : "lm_head.weight");
  Value logits =
      builder.create<LinearOp>(locFor("lm_head"), hidden, head, Value());
  builder.create<func::ReturnOp>(locFor("model"), logits);
  return module;
}

OwningOpRef<ModuleOp>
weft::frontend::buildLlamaForward(MLIRContext &context,
                                  const LlamaConfig &config,
                                  const LlamaBuildOptions &options) {
  Location loc = FileLineColLoc::get(&context, config.path, 1, 1);
  if (options.batch < 1 || options.seq < 1) {
    emitError(loc) << "batch and sequence length must be positive, found batch "
                   << options.batch << " and seq " << options.seq;
    return nullptr;
  }
  Type dtype;
  if (options.dtype == "f32")
    dtype = Float32Type::get(&context);
  else if (options.dtype == "bf16")
    dtype = BFloat16Type::get(&context);
  else {
    emitError(loc) << "unknown dtype '" << options.dtype
                   << "'; expected f32 or bf16";
    return nullptr;
  }
  context.loadDialect<WeftDialect, func::FuncDialect>();
  return LlamaGraphBuilder(context, config, options, dtype).build();
}
