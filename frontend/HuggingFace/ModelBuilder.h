// Builds the forward graph of a Hugging Face causal LM in weft IR.
#ifndef WEFT_FRONTEND_HUGGINGFACE_MODELBUILDER_H
#define WEFT_FRONTEND_HUGGINGFACE_MODELBUILDER_H

#include "frontend/HuggingFace/ModelConfig.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace weft::frontend {

struct BuildOptions {
  int64_t batch = 1;
  int64_t seq = 128;
  /// Element type of parameters and activations: "f32" or "bf16".
  std::string dtype = "f32";
  /// Also take `labels` (BxS, i64) and return the causal-LM loss first, as
  /// Hugging Face's `model(input_ids, labels=labels).loss` computes it: the
  /// logits of positions 0..S−2 against the labels of 1..S−1, tokens
  /// labelled -100 ignored, the mean over the others (in fp32).
  bool loss = false;
  /// With `loss`: the real tokens of each sequence when fewer than `seq`
  /// (0: all), the rest padding at the end — a sequence padded to a multiple
  /// of the sequence-parallel ranks. Positions from `tokens − 1` on are no
  /// targets, and causal attention keeps the padding from every real token,
  /// so the loss and gradients are those of the unpadded sequence.
  int64_t tokens = 0;
};

/// Builds `func.func @forward(%input_ids: tensor<BxSxi64>, %params...) ->
/// tensor<BxSxVxdtype>` (logits) — with `loss`, `@forward(%input_ids,
/// %labels, %params...) -> (tensor<f32> loss, logits)` — with the parameters in
/// Hugging Face state-dict order, each argument carrying its checkpoint name in
/// `weft.param`; with tied embeddings there is no lm_head parameter. Op
/// locations name the module they come from ("model.layers.3.mlp"). Returns
/// null after emitting a diagnostic for invalid options.
mlir::OwningOpRef<mlir::ModuleOp> buildForward(mlir::MLIRContext &context,
                                               const ModelConfig &config,
                                               const BuildOptions &options);

} // namespace weft::frontend

#endif // WEFT_FRONTEND_HUGGINGFACE_MODELBUILDER_H
