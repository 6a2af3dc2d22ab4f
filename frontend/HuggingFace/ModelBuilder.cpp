// Causal LM forward graphs, op for op as transformers' modeling files compute
// them (eager attention, no cache): Llama, Mistral and Qwen2 share Llama's
// decoder layer (with biases and sliding windows where their configs say);
// BLOOM has its own.
#include "frontend/HuggingFace/ModelBuilder.h"

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

#include <cmath>

using namespace mlir;
using namespace weft;
using namespace weft::frontend;

namespace {
class GraphBuilder {
public:
  GraphBuilder(MLIRContext &context, const ModelConfig &config,
               const BuildOptions &options, Type dtype)
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
    return body->getArgument((options.loss ? 2 : 1) +
                             (it - paramNames.begin()));
  }
  void declareParams();
  Value linear(const std::string &module, Value x);
  Value rmsNorm(const std::string &module, Value x);
  Value layerNorm(const std::string &module, Value x);
  Value buildLlamaAttention(int64_t layer, Value x, Value positions);
  Value buildLlamaMlp(int64_t layer, Value x);
  Value buildMixtralMoe(int64_t layer, Value x);
  std::vector<float> alibiSlopes() const;
  Value buildBloomAttention(int64_t layer, Value x, Value slopes);
  Value buildBloomMlp(int64_t layer, Value x);

  MLIRContext &context;
  const ModelConfig &config;
  const BuildOptions &options;
  Type dtype;
  OpBuilder builder;
  SmallVector<std::string> paramNames;
  SmallVector<Type> paramTypes;
  Block *body = nullptr;
};
} // namespace

void GraphBuilder::declareParams() {
  const ModelConfig &c = config;
  int64_t h = c.hiddenSize, d = c.headDim;
  auto linear = [&](const std::string &name, int64_t out, int64_t in,
                    bool bias) {
    declareParam(name + ".weight", {out, in});
    if (bias)
      declareParam(name + ".bias", {out});
  };
  if (c.architecture == Architecture::Bloom) {
    declareParam("transformer.word_embeddings.weight", {c.vocabSize, h});
    declareParam("transformer.word_embeddings_layernorm.weight", {h});
    declareParam("transformer.word_embeddings_layernorm.bias", {h});
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) {
      std::string p = "transformer.h." + std::to_string(l) + ".";
      declareParam(p + "input_layernorm.weight", {h});
      declareParam(p + "input_layernorm.bias", {h});
      linear(p + "self_attention.query_key_value", 3 * h, h, true);
      linear(p + "self_attention.dense", h, h, true);
      declareParam(p + "post_attention_layernorm.weight", {h});
      declareParam(p + "post_attention_layernorm.bias", {h});
      linear(p + "mlp.dense_h_to_4h", c.intermediateSize, h, true);
      linear(p + "mlp.dense_4h_to_h", h, c.intermediateSize, true);
    }
    declareParam("transformer.ln_f.weight", {h});
    declareParam("transformer.ln_f.bias", {h});
  } else {
    declareParam("model.embed_tokens.weight", {c.vocabSize, h});
    for (int64_t l = 0; l < c.numHiddenLayers; ++l) {
      std::string p = "model.layers." + std::to_string(l) + ".";
      linear(p + "self_attn.q_proj", c.numAttentionHeads * d, h, c.qkvBias);
      linear(p + "self_attn.k_proj", c.numKeyValueHeads * d, h, c.qkvBias);
      linear(p + "self_attn.v_proj", c.numKeyValueHeads * d, h, c.qkvBias);
      linear(p + "self_attn.o_proj", h, c.numAttentionHeads * d, c.outputBias);
      if (c.architecture == Architecture::Mixtral) {
        std::string moe = p + "block_sparse_moe.";
        declareParam(moe + "gate.weight", {c.numLocalExperts, h});
        for (int64_t e = 0; e < c.numLocalExperts; ++e) {
          std::string expert = moe + "experts." + std::to_string(e) + ".";
          declareParam(expert + "w1.weight", {c.intermediateSize, h});
          declareParam(expert + "w2.weight", {h, c.intermediateSize});
          declareParam(expert + "w3.weight", {c.intermediateSize, h});
        }
      } else {
        linear(p + "mlp.gate_proj", c.intermediateSize, h, c.mlpBias);
        linear(p + "mlp.up_proj", c.intermediateSize, h, c.mlpBias);
        linear(p + "mlp.down_proj", h, c.intermediateSize, c.mlpBias);
      }
      declareParam(p + "input_layernorm.weight", {h});
      declareParam(p + "post_attention_layernorm.weight", {h});
    }
    declareParam("model.norm.weight", {h});
  }
  if (!c.tieWordEmbeddings)
    declareParam("lm_head.weight", {c.vocabSize, h});
}

Value GraphBuilder::linear(const std::string &module, Value x) {
  auto it = llvm::find(paramNames, module + ".bias");
  Value bias = it == paramNames.end() ? Value() : param(module + ".bias");
  return builder.create<LinearOp>(locFor(module), x, param(module + ".weight"),
                                  bias);
}

Value GraphBuilder::buildLlamaAttention(int64_t layer, Value x,
                                        Value positions) {
  std::string p = "model.layers." + std::to_string(layer) + ".self_attn";
  Location loc = locFor(p);
  int64_t b = options.batch, s = options.seq, d = config.headDim;
  int64_t heads = config.numAttentionHeads, kvHeads = config.numKeyValueHeads;
  auto project = [&](StringRef name, int64_t numHeads) -> Value {
    return builder.create<ReshapeOp>(loc, tensor({b, s, numHeads, d}),
                                     linear(p + "." + name.str(), x));
  };
  DenseF64ArrayAttr frequencies;
  if (config.ropeScaling.kind != RopeScaling::Kind::None)
    frequencies = builder.getDenseF64ArrayAttr(config.ropeFrequencies());
  auto rope = [&](Value t) -> Value {
    return builder.create<RopeOp>(loc, t, positions,
                                  builder.getF64FloatAttr(config.ropeTheta),
                                  /*interleaved=*/UnitAttr(), frequencies);
  };
  Value q = rope(project("q_proj", heads));
  Value k = rope(project("k_proj", kvHeads));
  Value v = project("v_proj", kvHeads);
  IntegerAttr window;
  if (layer < static_cast<int64_t>(config.slidingLayers.size()) &&
      config.slidingLayers[layer] && config.slidingWindow > 0)
    window = builder.getI64IntegerAttr(config.slidingWindow);
  Value attn = builder
                   .create<AttentionOp>(
                       loc, AttentionKind::causal, q, k, v, /*mask=*/Value(),
                       /*alibi_slopes=*/Value(), /*scale=*/FloatAttr(), window)
                   .getResult();
  Value flat = builder.create<ReshapeOp>(loc, tensor({b, s, heads * d}), attn);
  return linear(p + ".o_proj", flat);
}

Value GraphBuilder::buildLlamaMlp(int64_t layer, Value x) {
  std::string p = "model.layers." + std::to_string(layer) + ".mlp";
  Location loc = locFor(p);
  Value gate = builder.create<SiluOp>(loc, linear(p + ".gate_proj", x));
  Value up = linear(p + ".up_proj", x);
  return linear(p + ".down_proj", builder.create<MulOp>(loc, gate, up));
}

/// Mixtral's sparse MoE block: top-k routing, tokens dispatched to their
/// experts, each expert a SwiGLU (w1 gate, w3 up, w2 down), outputs combined
/// with the routing weights.
Value GraphBuilder::buildMixtralMoe(int64_t layer, Value x) {
  std::string p = "model.layers." + std::to_string(layer) + ".block_sparse_moe";
  Location loc = locFor(p);
  const int64_t tokens = options.batch * options.seq, h = config.hiddenSize;
  const int64_t experts = config.numLocalExperts;
  Value flat = builder.create<ReshapeOp>(loc, tensor({tokens, h}), x);
  Value logits = linear(p + ".gate", flat);
  auto gate = builder.create<MoeGateOp>(
      loc, logits, builder.getI64IntegerAttr(config.numExpertsPerTok),
      builder.getUnitAttr());
  auto dispatch = builder.create<MoeDispatchOp>(
      loc, flat, gate.getExperts(), builder.getI64IntegerAttr(experts));
  auto expertLinear = [&](StringRef which, Value rows) -> Value {
    SmallVector<Value> weights;
    for (int64_t e = 0; e < experts; ++e)
      weights.push_back(param(p + ".experts." + std::to_string(e) + "." +
                              which.str() + ".weight"));
    return builder.create<GroupedLinearOp>(loc, rows, dispatch.getOffsets(),
                                           weights);
  };
  Value hiddenRows = builder.create<MulOp>(
      loc, builder.create<SiluOp>(loc, expertLinear("w1", dispatch.getRows())),
      expertLinear("w3", dispatch.getRows()));
  Value combined = builder.create<MoeCombineOp>(
      loc, expertLinear("w2", hiddenRows), gate.getWeights(), gate.getExperts(),
      builder.getI64IntegerAttr(experts));
  return builder.create<ReshapeOp>(loc, tensor({options.batch, options.seq, h}),
                                   combined);
}

/// BLOOM's ALiBi slopes (transformers' build_alibi_tensor): a geometric
/// sequence over the closest power of two of the head count, and every
/// other slope of the next power's sequence for the remaining heads.
std::vector<float> GraphBuilder::alibiSlopes() const {
  const int64_t heads = config.numAttentionHeads;
  int64_t closest = 1;
  while (closest * 2 <= heads)
    closest *= 2;
  auto base = [](int64_t n) {
    return std::pow(2.0, -std::pow(2.0, -(std::log2(double(n)) - 3)));
  };
  std::vector<float> slopes;
  for (int64_t i = 1; i <= closest; ++i)
    slopes.push_back(static_cast<float>(std::pow(base(closest), i)));
  for (int64_t i = 1; static_cast<int64_t>(slopes.size()) < heads; i += 2)
    slopes.push_back(static_cast<float>(std::pow(base(2 * closest), i)));
  return slopes;
}

Value GraphBuilder::buildBloomAttention(int64_t layer, Value x, Value slopes) {
  std::string p = "transformer.h." + std::to_string(layer) + ".self_attention";
  Location loc = locFor(p);
  int64_t b = options.batch, s = options.seq, d = config.headDim;
  int64_t heads = config.numAttentionHeads;
  // The fused projection is laid out per head as (q, k, v).
  Value fused = builder.create<ReshapeOp>(loc, tensor({b, s, heads, 3, d}),
                                          linear(p + ".query_key_value", x));
  auto part = [&](int64_t which) -> Value {
    Value slice = builder.create<SliceOp>(
        loc, fused, builder.getDenseI64ArrayAttr({0, 0, 0, which, 0}),
        builder.getDenseI64ArrayAttr({b, s, heads, which + 1, d}),
        builder.getDenseI64ArrayAttr({1, 1, 1, 1, 1}));
    return builder.create<ReshapeOp>(loc, tensor({b, s, heads, d}), slice);
  };
  Value attn =
      builder
          .create<AttentionOp>(loc, AttentionKind::alibi, part(0), part(1),
                               part(2), /*mask=*/Value(), slopes,
                               /*scale=*/FloatAttr(), /*window=*/IntegerAttr())
          .getResult();
  Value flat = builder.create<ReshapeOp>(loc, tensor({b, s, heads * d}), attn);
  return linear(p + ".dense", flat);
}

Value GraphBuilder::buildBloomMlp(int64_t layer, Value x) {
  std::string p = "transformer.h." + std::to_string(layer) + ".mlp";
  Value up = builder.create<GeluOp>(locFor(p), linear(p + ".dense_h_to_4h", x),
                                    GeluApproximation::tanh);
  return linear(p + ".dense_4h_to_h", up);
}

Value GraphBuilder::layerNorm(const std::string &module, Value x) {
  return builder.create<LayerNormOp>(
      locFor(module), x, param(module + ".weight"), param(module + ".bias"),
      builder.getF32FloatAttr(static_cast<float>(config.normEps)));
}

Value GraphBuilder::rmsNorm(const std::string &module, Value x) {
  return builder.create<RmsNormOp>(
      locFor(module), x, param(module + ".weight"),
      builder.getF32FloatAttr(static_cast<float>(config.normEps)));
}

OwningOpRef<ModuleOp> GraphBuilder::build() {
  int64_t b = options.batch, s = options.seq;
  declareParams();
  OwningOpRef<ModuleOp> module = ModuleOp::create(locFor("model"));
  builder.setInsertionPointToEnd(module->getBody());

  Type i64 = builder.getI64Type();
  const int inputs = options.loss ? 2 : 1;
  SmallVector<Type> argTypes(inputs, tensor({b, s}, i64));
  argTypes.append(paramTypes);
  Type logitsType = tensor({b, s, config.vocabSize});
  SmallVector<Type> resultTypes{logitsType};
  if (options.loss)
    resultTypes.insert(resultTypes.begin(),
                       RankedTensorType::get({}, builder.getF32Type()));
  auto func = builder.create<func::FuncOp>(
      locFor("model"), "forward",
      builder.getFunctionType(argTypes, resultTypes));
  func.setArgAttr(0, WeftDialect::kInputAttrName,
                  builder.getStringAttr("input_ids"));
  if (options.loss)
    func.setArgAttr(1, WeftDialect::kInputAttrName,
                    builder.getStringAttr("labels"));
  for (auto [i, name] : llvm::enumerate(paramNames))
    func.setArgAttr(inputs + i, WeftDialect::kParamAttrName,
                    builder.getStringAttr(name));
  if (options.loss)
    func.setResultAttr(0, WeftDialect::kOutputAttrName,
                       builder.getStringAttr("loss"));
  func.setResultAttr(options.loss ? 1 : 0, WeftDialect::kOutputAttrName,
                     builder.getStringAttr("logits"));
  body = func.addEntryBlock();
  builder.setInsertionPointToStart(body);

  Value ids = body->getArgument(0);
  Value hidden, embedding;
  if (config.architecture == Architecture::Bloom) {
    embedding = param("transformer.word_embeddings.weight");
    hidden = builder.create<GatherOp>(locFor("transformer.word_embeddings"),
                                      embedding, ids, /*axis=*/0);
    hidden = layerNorm("transformer.word_embeddings_layernorm", hidden);
    std::vector<float> values = alibiSlopes();
    auto slopesType =
        RankedTensorType::get({config.numAttentionHeads}, builder.getF32Type());
    Value slopes = builder.create<ConstantOp>(
        locFor("transformer"),
        DenseElementsAttr::get(slopesType, ArrayRef<float>(values)));
    for (int64_t l = 0; l < config.numHiddenLayers; ++l) {
      std::string p = "transformer.h." + std::to_string(l) + ".";
      Value x = layerNorm(p + "input_layernorm", hidden);
      hidden = builder.create<AddOp>(locFor(p + "self_attention"), hidden,
                                     buildBloomAttention(l, x, slopes));
      x = layerNorm(p + "post_attention_layernorm", hidden);
      hidden =
          builder.create<AddOp>(locFor(p + "mlp"), hidden, buildBloomMlp(l, x));
    }
    hidden = layerNorm("transformer.ln_f", hidden);
  } else {
    embedding = param("model.embed_tokens.weight");
    hidden = builder.create<GatherOp>(locFor("model.embed_tokens"), embedding,
                                      ids, /*axis=*/0);
    Value positions = builder.create<IotaOp>(locFor("model.rotary_emb"),
                                             tensor({b, s}, i64), /*dim=*/1);
    for (int64_t l = 0; l < config.numHiddenLayers; ++l) {
      std::string p = "model.layers." + std::to_string(l) + ".";
      Value x = rmsNorm(p + "input_layernorm", hidden);
      hidden = builder.create<AddOp>(locFor(p + "self_attn"), hidden,
                                     buildLlamaAttention(l, x, positions));
      x = rmsNorm(p + "post_attention_layernorm", hidden);
      const bool moe = config.architecture == Architecture::Mixtral;
      hidden = builder.create<AddOp>(
          locFor(p + (moe ? "block_sparse_moe" : "mlp")), hidden,
          moe ? buildMixtralMoe(l, x) : buildLlamaMlp(l, x));
    }
    hidden = rmsNorm("model.norm", hidden);
  }
  Value head = config.tieWordEmbeddings ? embedding : param("lm_head.weight");
  Value logits =
      builder.create<LinearOp>(locFor("lm_head"), hidden, head, Value());
  if (!options.loss) {
    builder.create<func::ReturnOp>(locFor("model"), logits);
    return module;
  }
  // Position t predicts label t + 1. The labels are shifted before anything
  // else reads them, the last position's target ignored (-100): the mean
  // over the targets is HF's logits[:, :-1] against labels[:, 1:], and the
  // positions stay whole, so a sequence-parallel rank's logits meet their
  // own targets (REFERENCE.md, Ulysses: labels shifted before sharding).
  Location at = locFor("loss");
  constexpr int64_t kIgnore = -100;
  const int64_t real = options.tokens > 0 ? options.tokens : s;
  Value next = builder.create<SliceOp>(
      at, tensor({b, real - 1}, i64), body->getArgument(1),
      ArrayRef<int64_t>{0, 1}, ArrayRef<int64_t>{b, real},
      ArrayRef<int64_t>{1, 1});
  Value none = builder.create<ConstantOp>(
      at, DenseElementsAttr::get(tensor({b, s - real + 1}, i64),
                                 builder.getI64IntegerAttr(kIgnore)));
  Value targets = builder.create<ConcatOp>(at, tensor({b, s}, i64),
                                           ValueRange{next, none}, 1);
  Value loss = builder.create<CrossEntropyOp>(at, logits, targets, kIgnore,
                                              LossReduction::mean);
  builder.create<func::ReturnOp>(locFor("model"), ValueRange{loss, logits});
  return module;
}

OwningOpRef<ModuleOp>
weft::frontend::buildForward(MLIRContext &context, const ModelConfig &config,
                             const BuildOptions &options) {
  Location loc = FileLineColLoc::get(&context, config.path, 1, 1);
  if (options.batch < 1 || options.seq < 1) {
    emitError(loc) << "batch and sequence length must be positive, found batch "
                   << options.batch << " and seq " << options.seq;
    return nullptr;
  }
  if (options.tokens < 0 || options.tokens > options.seq ||
      (options.tokens > 0 && !options.loss)) {
    emitError(loc) << "the real tokens (" << options.tokens
                   << ") of a padded sequence are counted with a loss and lie "
                      "in [1, seq = "
                   << options.seq << "]";
    return nullptr;
  }
  if (options.loss && (options.tokens > 0 ? options.tokens : options.seq) < 2) {
    emitError(loc) << "a causal-LM loss needs a sequence of at least 2 tokens "
                      "(each predicts the next), found "
                   << options.seq;
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
  return GraphBuilder(context, config, options, dtype).build();
}
