// What kernels/cuda/Library.cu's training kernels take by value, shared by
// the kernels and the runtime that launches them (the same layout on both
// sides: pointers travel as 64-bit device addresses).
#ifndef WEFT_KERNELS_CUDA_TRAINING_H
#define WEFT_KERNELS_CUDA_TRAINING_H

namespace weft::kernels::cuda::training {

/// weft_sum_squares runs this many blocks of kNormThreads threads per
/// gradient, whatever the GPU, so the norm's order of sums is fixed.
constexpr int kNormBlocks = 256;
constexpr int kNormThreads = 256;

/// AdamW's settings (kernels::cpu::AdamWStep without the per-step lr and
/// step, which the kernel reads from the plan's inputs).
struct AdamW {
  double beta1, beta2, eps, weightDecay, maxGradNorm;
  float gradMultiplier;
  int bf16Grad;
};

/// Attention's backward (kernels::cpu::attentionBackward's operands and
/// layouts); lse and delta are [batch, heads, sq] f32, delta in its
/// workspace, lse the forward's when `lseGiven`, else computed there too.
struct AttentionGrad {
  unsigned long long q, k, v, out, dout, mask, slopes, dq, dk, dv, lse, delta;
  long long batch, sq, skv, heads, kvHeads, dimQK, dimV;
  long long window;
  int kind, maskPerBatch;
  float scale;
  int lseGiven;
};

constexpr int kAttentionGradWarps = 4; // rows (queries or keys) per block

/// Workspace bytes attention's backward takes from the plan: each query
/// row's δ and log-sum-exp (the latter used when the forward gave none).
constexpr long long attentionGradWorkspaceBytes(long long batch,
                                                long long heads, long long sq) {
  return 2 * batch * heads * sq * 4;
}

} // namespace weft::kernels::cuda::training

#endif // WEFT_KERNELS_CUDA_TRAINING_H
