// Reductions over any set of dimensions, and scatter-add (gather's adjoint).
#include "kernels/cpu/Kernels.h"

#include <algorithm>
#include <limits>
#include <vector>

void weft::kernels::cpu::reduce(const float *x, float *y, const int64_t *shape,
                                const uint8_t *reduced, int rank,
                                ReduceKind kind) {
  // Kept and reduced dimensions with x's strides, outermost first.
  std::vector<int64_t> keptSize, keptStride, redSize, redStride;
  int64_t stride = 1, outputs = 1, count = 1;
  for (int d = rank - 1; d >= 0; --d) {
    auto &sizes = reduced[d] ? redSize : keptSize;
    auto &strides = reduced[d] ? redStride : keptStride;
    sizes.insert(sizes.begin(), shape[d]);
    strides.insert(strides.begin(), stride);
    (reduced[d] ? count : outputs) *= shape[d];
    stride *= shape[d];
  }
  auto offsetOf = [](int64_t index, const std::vector<int64_t> &sizes,
                     const std::vector<int64_t> &strides) {
    int64_t offset = 0;
    for (int d = static_cast<int>(sizes.size()) - 1; d >= 0; --d) {
      offset += index % sizes[d] * strides[d];
      index /= sizes[d];
    }
    return offset;
  };
  // Each output's value from its running sum and extremum.
  auto finish = [&](double sum, float best) {
    switch (kind) {
    case ReduceKind::Sum:
      return static_cast<float>(sum);
    case ReduceKind::Mean:
      return static_cast<float>(sum / static_cast<double>(count));
    default:
      return best;
    }
  };
  const float start = kind == ReduceKind::Max
                          ? -std::numeric_limits<float>::infinity()
                          : std::numeric_limits<float>::infinity();
  // NaN propagates, as in NumPy and PyTorch.
  auto extremum = [kind](float best, float v) {
    if (kind == ReduceKind::Max)
      return v > best || v != v ? v : best;
    if (kind == ReduceKind::Min)
      return v < best || v != v ? v : best;
    return best;
  };
  const bool parallel = outputs * count > (1 << 15);
  // Every output adds its elements in the same order (reduced index
  // ascending) on each path, so the paths agree to the bit.
  // Kept dimensions outermost (reduced ones of size 1 aside): the innermost
  // kept stride is every reduced element.
  if (keptSize.empty() || redSize.empty() || keptStride.back() == count) {
    // y[o] = Σ_r x[o · count + r]: rows, one after the other.
#pragma omp parallel for if (parallel)
    for (int64_t o = 0; o < outputs; ++o) {
      const float *row = x + o * count;
      double sum = 0;
      float best = start;
      for (int64_t r = 0; r < count; ++r) {
        sum += row[r];
        best = extremum(best, row[r]);
      }
      y[o] = finish(sum, best);
    }
    return;
  }
  if (redStride.back() == outputs) { // reduced dimensions outermost
    // y[o] = Σ_r x[r · outputs + o]: columns, a cache line's worth at a time.
    constexpr int64_t kColumns = 16;
#pragma omp parallel for if (parallel)
    for (int64_t o0 = 0; o0 < outputs; o0 += kColumns) {
      const int64_t width = std::min(kColumns, outputs - o0);
      double sums[kColumns] = {};
      float best[kColumns];
      std::fill_n(best, kColumns, start);
      for (int64_t r = 0; r < count; ++r) {
        const float *row = x + r * outputs + o0;
        for (int64_t c = 0; c < width; ++c) {
          sums[c] += row[c];
          best[c] = extremum(best[c], row[c]);
        }
      }
      for (int64_t c = 0; c < width; ++c)
        y[o0 + c] = finish(sums[c], best[c]);
    }
    return;
  }
#pragma omp parallel for if (parallel)
  for (int64_t o = 0; o < outputs; ++o) {
    const float *base = x + offsetOf(o, keptSize, keptStride);
    double sum = 0;
    float best = start;
    for (int64_t r = 0; r < count; ++r) {
      const float v = base[offsetOf(r, redSize, redStride)];
      sum += v;
      best = extremum(best, v);
    }
    y[o] = finish(sum, best);
  }
}

int64_t weft::kernels::cpu::scatterAdd(const float *base,
                                       const int64_t *indices,
                                       const float *updates, float *out,
                                       int64_t outer, int64_t size,
                                       int64_t inner, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (indices[i] < 0 || indices[i] >= size)
      return i;
  if (out != base)
    std::copy(base, base + outer * size * inner, out);
  // Repeated indices accumulate in index order; threads split the columns,
  // so no two write the same element.
  constexpr int64_t kColumns = 256;
  const int64_t chunks = (inner + kColumns - 1) / kColumns;
#pragma omp parallel for collapse(2) if (outer * count * inner > (1 << 15))
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t b0 = chunk * kColumns, b1 = std::min(inner, b0 + kColumns);
      for (int64_t i = 0; i < count; ++i) {
        float *row = out + (a * size + indices[i]) * inner;
        const float *update = updates + (a * count + i) * inner;
        for (int64_t b = b0; b < b1; ++b)
          row[b] += update[b];
      }
    }
  return -1;
}
