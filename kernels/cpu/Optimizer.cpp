// The optimizer step: AdamW as torch.optim.AdamW computes it, and the sum of
// squares behind global-norm gradient clipping. Built with
// -ffp-contract=off: every multiply and add rounds on its own, as PyTorch's
// CPU kernels do (fused only where theirs are: lerp and addcmul), so the
// update matches it to the bit.
#include "kernels/cpu/Kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace weft::kernels::cpu {
namespace {
/// The per-step scalars, computed as torch does: Python floats (double)
/// rounded to fp32 where they meet a tensor.
struct Scalars {
  float decay, oneMinusBeta1, beta2, oneMinusBeta2, bias2Sqrt, eps, stepSize;
};

Scalars scalarsOf(const AdamWStep &s) {
  const double lr = s.lr, beta1 = s.beta1, beta2 = s.beta2;
  const double bias1 = 1.0 - std::pow(beta1, static_cast<double>(s.step));
  const double bias2 = 1.0 - std::pow(beta2, static_cast<double>(s.step));
  return {static_cast<float>(1.0 - lr * s.weightDecay),
          static_cast<float>(1.0 - beta1),
          static_cast<float>(beta2),
          static_cast<float>(1.0 - beta2),
          static_cast<float>(std::sqrt(bias2)),
          static_cast<float>(s.eps),
          static_cast<float>(-(lr / bias1))};
}

/// Elements [begin, end) of the update. Cloned for x86-64-v3 so that the two
/// fused multiply-adds are instructions and the loop vectorises (the default
/// clone calls libm's fma). Gradients are f32, or bf16 when `grad16` is set
/// (not a template: clang cannot clone those).
__attribute__((target_clones("arch=x86-64-v3", "default"))) void
updateRange(const Scalars c, float multiplier, float scale, float *master,
            float *m, float *v, const float *grad, const uint16_t *grad16,
            uint16_t *param, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) {
    float g = grad16 ? bf16ToFloat(grad16[i]) : grad[i];
    if (multiplier != 1.0f) // the mean of accumulated gradients
      g = g * multiplier;
    if (scale != 1.0f) // clipping: torch scales the gradients in place first
      g = g * scale;
    float p = master[i] * c.decay; // param.mul_(1 - lr * wd)
    // exp_avg.lerp_(g, 1 - b1): torch's vectorised lerp is one fused
    // multiply-add, w·(g − m) + m.
    const float mi = std::fma(c.oneMinusBeta1, g - m[i], m[i]);
    // exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2): torch's AVX2 build
    // contracts addcmul's v + (w·g)·g into one fused multiply-add.
    const float vi = std::fma(c.oneMinusBeta2 * g, g, v[i] * c.beta2);
    const float denom = std::sqrt(vi) / c.bias2Sqrt + c.eps;
    p = p + c.stepSize * mi / denom; // param.addcdiv_(m, denom, -ss)
    master[i] = p;
    m[i] = mi;
    v[i] = vi;
    if (param)
      param[i] = floatToBf16(p);
  }
}

void update(const AdamWStep &step, float *master, float *m, float *v,
            const float *grad, const uint16_t *grad16, uint16_t *param,
            int64_t n) {
  const Scalars c = scalarsOf(step);
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t k = 0; k < chunks; ++k)
    updateRange(c, step.gradMultiplier, step.gradScale, master, m, v, grad,
                grad16, param, k * kChunk, std::min(n, (k + 1) * kChunk));
}

/// Σ x² in double over fixed chunks added in order: the same sum whatever
/// the thread count.
template <typename T> double squares(const T *x, int64_t n, float scale) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    double sum = 0;
    for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) {
      const double v = toFloat(x[i]) * scale;
      sum += v * v;
    }
    partial[c] = sum;
  }
  double total = 0;
  for (double p : partial)
    total += p;
  return total;
}
} // namespace

void adamwUpdate(const AdamWStep &step, float *master, float *m, float *v,
                 const float *grad, uint16_t *param, int64_t n) {
  update(step, master, m, v, grad, nullptr, param, n);
}

void adamwUpdateBf16Grad(const AdamWStep &step, float *master, float *m,
                         float *v, const uint16_t *grad, uint16_t *param,
                         int64_t n) {
  update(step, master, m, v, nullptr, grad, param, n);
}

double sumOfSquares(const float *x, int64_t n, float scale) {
  return squares(x, n, scale);
}

double sumOfSquaresBf16(const uint16_t *x, int64_t n, float scale) {
  return squares(x, n, scale);
}

} // namespace weft::kernels::cpu
