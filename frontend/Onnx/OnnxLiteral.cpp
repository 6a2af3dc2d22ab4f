// Import-time values and the host evaluator of the ONNX importer.
#include "frontend/Onnx/OnnxLiteral.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <type_traits>

namespace weft::frontend::onnx_import {

namespace {
/// Above this many elements a result is not folded (the importer emits IR
/// instead, or says the op needs known inputs): a 4096² mask still folds.
constexpr int64_t kMaxFoldElements = int64_t{1} << 24;

/// Thrown by `make` past the limit; `fold` turns it into "not folded".
struct TooLarge {};

/// The most elements one value may have in the `fold` now running: the
/// limit, or less when the import's allowance left is less.
thread_local int64_t foldLimit = kMaxFoldElements;

/// The product of dims[from, to), both clamped to the rank.
int64_t product(const std::vector<int64_t> &dims, size_t from = 0,
                size_t to = SIZE_MAX) {
  const size_t begin = std::min(from, dims.size()),
               end = std::max(begin, std::min(to, dims.size()));
  return std::accumulate(dims.begin() + begin, dims.begin() + end, int64_t{1},
                         std::multiplies<>());
}

std::vector<int64_t> stridesOf(const std::vector<int64_t> &shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * shape[d + 1];
  return strides;
}

Literal make(int32_t type, std::vector<int64_t> shape) {
  Literal l{type, std::move(shape), {}, {}};
  for (int64_t d : l.shape)
    if (d < 0)
      invalid("a computed shape has the negative dimension " +
              std::to_string(d));
  const int64_t n = l.size();
  if (n > foldLimit)
    throw TooLarge{};
  if (l.isInteger())
    l.ints.assign(n, 0);
  else
    l.floats.assign(n, 0.0);
  return l;
}

/// Stores `v` at `i`, rounded as the element type rounds it.
void put(Literal &l, int64_t i, double v) {
  if (l.type == onnx::TensorProto::BOOL)
    l.ints[i] = v != 0;
  else if (l.isInteger())
    l.ints[i] = static_cast<int64_t>(v);
  else
    l.floats[i] = static_cast<float>(v);
}

/// Copies element `from` of `src` to element `to` of `dst` (same type).
void copyElement(const Literal &src, int64_t from, Literal &dst, int64_t to) {
  if (src.isInteger())
    dst.ints[to] = src.ints[from];
  else
    dst.floats[to] = src.floats[from];
}

/// Calls `f(coordinates, linear index)` for every element of `shape`.
void forEachIndex(
    const std::vector<int64_t> &shape,
    const std::function<void(const std::vector<int64_t> &, int64_t)> &f) {
  const int64_t n = product(shape);
  std::vector<int64_t> at(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    f(at, i);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++at[d] < shape[d])
        break;
      at[d] = 0;
    }
  }
}

std::vector<int64_t> intsOf(const Literal *l, const onnx::NodeProto &node,
                            const char *what) {
  if (!l || !l->isInteger())
    invalid(node.op_type() + " " + label(node) + ": " + what +
            " is not an integer tensor");
  return l->ints;
}

/// Evaluates an elementwise op over numpy-broadcast inputs: `f` gets the
/// elements of the inputs at one output position, as int64 when every input
/// and the result are integers (exact past 2^53: INT64_MAX is a common Slice
/// end), as double otherwise.
template <class F>
Literal elementwise(const onnx::NodeProto &node,
                    const std::vector<const Literal *> &in, int32_t type, F f) {
  std::vector<int64_t> shape;
  for (const Literal *l : in)
    shape = broadcastShape(shape, l->shape,
                           node.op_type() + " " + label(node) + ": shapes");
  Literal r = make(type, shape);
  const size_t rank = shape.size();
  std::vector<std::vector<int64_t>> strides;
  for (const Literal *l : in) {
    std::vector<int64_t> own = stridesOf(l->shape), s(rank, 0);
    for (size_t d = 0; d < l->shape.size(); ++d)
      if (l->shape[d] != 1)
        s[rank - l->shape.size() + d] = own[d];
    strides.push_back(std::move(s));
  }
  const bool integer =
      r.isInteger() &&
      std::all_of(in.begin(), in.end(), [](auto *l) { return l->isInteger(); });
  std::vector<double> args(in.size());
  std::vector<int64_t> intArgs(in.size());
  forEachIndex(shape, [&](const std::vector<int64_t> &at, int64_t i) {
    for (size_t k = 0; k < in.size(); ++k) {
      int64_t offset = 0;
      for (size_t d = 0; d < rank; ++d)
        offset += at[d] * strides[k][d];
      if (integer)
        intArgs[k] = in[k]->ints[offset];
      else
        args[k] = in[k]->at(offset);
    }
    if (integer) {
      const int64_t v = f(intArgs.data());
      r.ints[i] = type == onnx::TensorProto::BOOL ? v != 0 : v;
    } else {
      put(r, i, f(args.data()));
    }
  });
  return r;
}

std::optional<Literal> unaryOp(const std::string &op, const Literal &x) {
  static const std::map<std::string, double (*)(double)> math = {
      {"Neg", [](double v) { return -v; }},
      {"Abs", [](double v) { return std::fabs(v); }},
      {"Exp", [](double v) { return std::exp(v); }},
      {"Log", [](double v) { return std::log(v); }},
      {"Sqrt", [](double v) { return std::sqrt(v); }},
      {"Cos", [](double v) { return std::cos(v); }},
      {"Sin", [](double v) { return std::sin(v); }},
      {"Tanh", [](double v) { return std::tanh(v); }},
      {"Erf", [](double v) { return std::erf(v); }},
      {"Floor", [](double v) { return std::floor(v); }},
      {"Ceil", [](double v) { return std::ceil(v); }},
      {"Sigmoid", [](double v) { return 1.0 / (1.0 + std::exp(-v)); }},
      {"Reciprocal", [](double v) { return 1.0 / v; }},
      {"Relu", [](double v) { return v > 0 ? v : 0.0; }},
      {"Not", [](double v) { return v == 0 ? 1.0 : 0.0; }},
      {"Sign", [](double v) { return double((v > 0) - (v < 0)); }},
  };
  auto it = math.find(op);
  if (it == math.end())
    return std::nullopt;
  Literal r = make(x.type, x.shape);
  for (int64_t i = 0; i < x.size(); ++i) {
    if (x.isInteger() && (op == "Neg" || op == "Abs")) // exact
      r.ints[i] = op == "Neg" ? -x.ints[i] : std::abs(x.ints[i]);
    else
      put(r, i, it->second(x.at(i)));
  }
  return r;
}

template <class T> constexpr bool isInt = std::is_integral_v<T>;

std::optional<Literal> binaryOp(const onnx::NodeProto &node,
                                const std::vector<const Literal *> &in) {
  const std::string &op = node.op_type();
  const bool variadic = op == "Max" || op == "Min";
  static const std::set<std::string> known = {
      "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
      "And",   "Or",   "Xor",         "Add",     "Sub",
      "Mul",   "Div",  "Pow",         "Mod",     "Max",
      "Min"};
  if (!known.count(op))
    return std::nullopt;
  if (!variadic && in.size() != 2)
    invalid(op + " " + label(node) + " takes two inputs");
  const int32_t b = onnx::TensorProto::BOOL, same = in[0]->type;
  auto run = [&](int32_t type, auto f) {
    return elementwise(node, in, type, f);
  };
  if (op == "Equal")
    return run(b, [](auto *a) { return a[0] == a[1]; });
  if (op == "Less")
    return run(b, [](auto *a) { return a[0] < a[1]; });
  if (op == "LessOrEqual")
    return run(b, [](auto *a) { return a[0] <= a[1]; });
  if (op == "Greater")
    return run(b, [](auto *a) { return a[0] > a[1]; });
  if (op == "GreaterOrEqual")
    return run(b, [](auto *a) { return a[0] >= a[1]; });
  if (op == "And")
    return run(b, [](auto *a) { return a[0] != 0 && a[1] != 0; });
  if (op == "Or")
    return run(b, [](auto *a) { return a[0] != 0 || a[1] != 0; });
  if (op == "Xor")
    return run(b, [](auto *a) { return (a[0] != 0) != (a[1] != 0); });
  if (op == "Add")
    return run(same, [](auto *a) { return a[0] + a[1]; });
  if (op == "Sub")
    return run(same, [](auto *a) { return a[0] - a[1]; });
  if (op == "Mul")
    return run(same, [](auto *a) { return a[0] * a[1]; });
  if (op == "Div")
    return run(same, [&](auto *a) {
      if constexpr (isInt<std::remove_pointer_t<decltype(a)>>)
        if (a[1] == 0)
          invalid("Div " + label(node) + " divides an integer by zero");
      return a[0] / a[1]; // integers truncate, as C does
    });
  if (op == "Pow")
    return run(same, [](auto *a) {
      return static_cast<std::remove_pointer_t<decltype(a)>>(
          std::pow(static_cast<double>(a[0]), static_cast<double>(a[1])));
    });
  if (op == "Mod") {
    const bool fmod = intAttr(node, "fmod", 0);
    return run(same, [&](auto *a) {
      using T = std::remove_pointer_t<decltype(a)>;
      if constexpr (isInt<T>) {
        if (a[1] == 0)
          invalid("Mod " + label(node) + " divides an integer by zero");
        T m = a[0] % a[1]; // fmod = 0: the divisor's sign, as Python's %
        return !fmod && m != 0 && (m < 0) != (a[1] < 0) ? m + a[1] : m;
      } else {
        T m = std::fmod(a[0], a[1]);
        return !fmod && m != 0 && (m < 0) != (a[1] < 0) ? m + a[1] : m;
      }
    });
  }
  const bool max = op == "Max";
  const size_t n = in.size();
  return run(same, [max, n](auto *a) {
    auto v = a[0];
    for (size_t k = 1; k < n; ++k) {
      if constexpr (!isInt<std::remove_pointer_t<decltype(a)>>)
        if (std::isnan(v) || std::isnan(a[k])) {
          v = NAN;
          continue;
        }
      v = max ? std::max(v, a[k]) : std::min(v, a[k]);
    }
    return v;
  });
}

Literal castTo(const Literal &x, int32_t to) {
  Literal r = make(to, x.shape);
  for (int64_t i = 0; i < x.size(); ++i) {
    if (x.isInteger() && r.isInteger())
      r.ints[i] = to == onnx::TensorProto::BOOL ? x.ints[i] != 0
                  : to == onnx::TensorProto::INT32
                      ? static_cast<int32_t>(x.ints[i])
                      : x.ints[i];
    else
      put(r, i, to == onnx::TensorProto::BOOL ? x.at(i) != 0 : x.at(i));
  }
  return r;
}

} // namespace

Literal concatLiterals(const onnx::NodeProto &node,
                       const std::vector<const Literal *> &in, int64_t axis) {
  const int64_t rank = in[0]->shape.size();
  axis = normalizeAxis(axis, rank, node);
  std::vector<int64_t> shape = in[0]->shape;
  shape[axis] = 0;
  for (const Literal *l : in) {
    if (static_cast<int64_t>(l->shape.size()) != rank || l->type != in[0]->type)
      invalid("Concat " + label(node) + ": inputs differ in rank or type");
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && l->shape[d] != in[0]->shape[d])
        invalid("Concat " + label(node) + ": dimension " + std::to_string(d) +
                " differs between inputs");
    shape[axis] += l->shape[axis];
  }
  Literal r = make(in[0]->type, shape);
  const int64_t outer = product(shape, 0, axis);
  int64_t at = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (const Literal *l : in) {
      const int64_t chunk = product(l->shape, axis);
      for (int64_t j = 0; j < chunk; ++j)
        copyElement(*l, o * chunk + j, r, at++);
    }
  return r;
}

namespace {
/// The result of reading `x` at input coordinates computed from each output
/// coordinate.
Literal gatherBy(
    const Literal &x, const std::vector<int64_t> &shape,
    const std::function<int64_t(const std::vector<int64_t> &)> &inputOffset) {
  Literal r = make(x.type, shape);
  forEachIndex(shape, [&](const std::vector<int64_t> &at, int64_t i) {
    copyElement(x, inputOffset(at), r, i);
  });
  return r;
}

Literal transpose(const onnx::NodeProto &node, const Literal &x) {
  const int64_t rank = x.shape.size();
  std::vector<int64_t> perm = intsAttr(node, "perm");
  if (perm.empty())
    for (int64_t d = rank - 1; d >= 0; --d)
      perm.push_back(d);
  if (static_cast<int64_t>(perm.size()) != rank)
    invalid("Transpose " + label(node) + ": perm has " +
            std::to_string(perm.size()) + " entries for a rank-" +
            std::to_string(rank) + " input");
  std::vector<int64_t> shape, strides = stridesOf(x.shape);
  for (int64_t p : perm)
    shape.push_back(x.shape.at(normalizeAxis(p, rank, node)));
  return gatherBy(x, shape, [&](const std::vector<int64_t> &at) {
    int64_t offset = 0;
    for (int64_t d = 0; d < rank; ++d)
      offset += at[d] * strides[perm[d]];
    return offset;
  });
}

Literal slice(const onnx::NodeProto &node,
              const std::vector<const Literal *> &in) {
  const Literal &x = *in[0];
  const int64_t rank = x.shape.size();
  std::vector<int64_t> starts = intsOf(in[1], node, "starts"),
                       ends = intsOf(in[2], node, "ends"), axes, steps;
  if (in.size() > 3 && in[3])
    axes = intsOf(in[3], node, "axes");
  else
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(i);
  if (in.size() > 4 && in[4])
    steps = intsOf(in[4], node, "steps");
  else
    steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() ||
      steps.size() != starts.size())
    invalid("Slice " + label(node) +
            ": starts, ends, axes and steps differ in length");
  std::vector<int64_t> first(rank, 0), step(rank, 1), shape = x.shape;
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = normalizeAxis(axes[i], rank, node), dim = x.shape[a];
    if (steps[i] == 0)
      invalid("Slice " + label(node) + " has a zero step");
    auto index = [&](int64_t v, int64_t lo, int64_t hi) {
      v = v < 0 ? std::max<int64_t>(v, -dim) + dim : v; // saturating
      return std::clamp<int64_t>(v, lo, hi);
    };
    int64_t s, e;
    if (steps[i] > 0) {
      s = index(starts[i], 0, dim);
      e = index(ends[i], 0, dim);
    } else {
      s = index(starts[i], -1, dim - 1);
      e = ends[i] < -dim ? -1 : index(ends[i], -1, dim - 1);
    }
    first[a] = s;
    step[a] = steps[i];
    const int64_t span = steps[i] > 0 ? e - s : s - e,
                  magnitude = std::abs(steps[i]);
    shape[a] = std::max<int64_t>(0, (span + magnitude - 1) / magnitude);
  }
  std::vector<int64_t> strides = stridesOf(x.shape);
  return gatherBy(x, shape, [&](const std::vector<int64_t> &at) {
    int64_t offset = 0;
    for (int64_t d = 0; d < rank; ++d)
      offset += (first[d] + at[d] * step[d]) * strides[d];
    return offset;
  });
}

Literal tile(const onnx::NodeProto &node, const Literal &x,
             const Literal *repeatsLiteral) {
  std::vector<int64_t> repeats = intsOf(repeatsLiteral, node, "repeats");
  if (repeats.size() != x.shape.size())
    invalid("Tile " + label(node) + ": " + std::to_string(repeats.size()) +
            " repeats for a rank-" + std::to_string(x.shape.size()) + " input");
  std::vector<int64_t> shape, strides = stridesOf(x.shape);
  for (size_t d = 0; d < repeats.size(); ++d) {
    if (repeats[d] < 0)
      invalid("Tile " + label(node) + " has a negative repeat");
    shape.push_back(x.shape[d] * repeats[d]);
  }
  return gatherBy(x, shape, [&](const std::vector<int64_t> &at) {
    int64_t offset = 0;
    for (size_t d = 0; d < at.size(); ++d)
      offset += (at[d] % x.shape[d]) * strides[d];
    return offset;
  });
}

Literal gather(const onnx::NodeProto &node, const Literal &x,
               const Literal *indicesLiteral) {
  const int64_t rank = x.shape.size();
  const int64_t axis = normalizeAxis(intAttr(node, "axis", 0), rank, node);
  const Literal &idx = *indicesLiteral;
  if (!idx.isInteger())
    invalid("Gather " + label(node) + ": indices are not integers");
  std::vector<int64_t> shape(x.shape.begin(), x.shape.begin() + axis);
  shape.insert(shape.end(), idx.shape.begin(), idx.shape.end());
  shape.insert(shape.end(), x.shape.begin() + axis + 1, x.shape.end());
  const int64_t outer = product(x.shape, 0, axis),
                inner = product(x.shape, axis + 1), dim = x.shape[axis];
  Literal r = make(x.type, shape);
  int64_t at = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i : idx.ints) {
      const int64_t j = i < 0 ? i + dim : i;
      if (j < 0 || j >= dim)
        invalid("Gather " + label(node) + ": index " + std::to_string(i) +
                " is outside [-" + std::to_string(dim) + ", " +
                std::to_string(dim) + ")");
      for (int64_t k = 0; k < inner; ++k)
        copyElement(x, (o * dim + j) * inner + k, r, at++);
    }
  return r;
}

Literal gatherND(const onnx::NodeProto &node, const Literal &x,
                 const Literal *indicesLiteral) {
  const Literal &idx = *indicesLiteral;
  const int64_t b = intAttr(node, "batch_dims", 0);
  const int64_t r = x.shape.size(), q = idx.shape.size();
  if (!idx.isInteger() || q < 1 || b < 0 || b >= std::min(r, q))
    invalid("GatherND " + label(node) + ": indices of rank " +
            std::to_string(q) + " with batch_dims " + std::to_string(b) +
            " do not index a rank-" + std::to_string(r) + " tensor");
  const int64_t k = idx.shape.back();
  if (k < 1 || b + k > r)
    invalid("GatherND " + label(node) + ": index tuples of length " +
            std::to_string(k) + " do not fit a rank-" + std::to_string(r) +
            " tensor with batch_dims " + std::to_string(b));
  for (int64_t d = 0; d < b; ++d)
    if (idx.shape[d] != x.shape[d])
      invalid("GatherND " + label(node) + ": batch dimension " +
              std::to_string(d) + " differs between data and indices");
  std::vector<int64_t> shape(idx.shape.begin(), idx.shape.end() - 1);
  shape.insert(shape.end(), x.shape.begin() + b + k, x.shape.end());
  Literal out = make(x.type, shape);
  const int64_t tuples = product(idx.shape, 0, q - 1),
                perBatch = product(idx.shape, b, q - 1),
                inner = product(x.shape, b + k),
                batchSize = product(x.shape, b);
  const std::vector<int64_t> strides = stridesOf(x.shape);
  int64_t at = 0;
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t offset = (t / perBatch) * batchSize;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t dim = x.shape[b + j], i = idx.ints[t * k + j];
      if (i < -dim || i >= dim)
        invalid("GatherND " + label(node) + ": index " + std::to_string(i) +
                " is outside dimension " + std::to_string(b + j) + " of size " +
                std::to_string(dim));
      offset += (i < 0 ? i + dim : i) * strides[b + j];
    }
    for (int64_t e = 0; e < inner; ++e)
      copyElement(x, offset + e, out, at++);
  }
  return out;
}

Literal cumSum(const onnx::NodeProto &node, const Literal &x,
               const Literal *axisLiteral) {
  const std::vector<int64_t> axes = intsOf(axisLiteral, node, "axis");
  if (axes.size() != 1)
    invalid("CumSum " + label(node) + ": axis is not a scalar");
  const int64_t rank = x.shape.size(),
                axis = normalizeAxis(axes[0], rank, node);
  const bool exclusive = intAttr(node, "exclusive", 0),
             reverse = intAttr(node, "reverse", 0);
  const int64_t outer = product(x.shape, 0, axis), n = x.shape[axis],
                inner = product(x.shape, axis + 1);
  Literal r = make(x.type, x.shape);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t e = 0; e < inner; ++e) {
      double sum = 0;
      for (int64_t s = 0; s < n; ++s) {
        const int64_t j = reverse ? n - 1 - s : s;
        const int64_t i = (o * n + j) * inner + e;
        if (!exclusive)
          sum += x.at(i);
        put(r, i, sum);
        if (exclusive)
          sum += x.at(i);
        if (!r.isInteger()) // accumulate as float does
          sum = static_cast<float>(sum);
      }
    }
  return r;
}

Literal trilu(const onnx::NodeProto &node,
              const std::vector<const Literal *> &in) {
  const Literal &x = *in[0];
  const int64_t rank = x.shape.size();
  if (rank < 2)
    invalid("Trilu " + label(node) + " needs a rank of at least 2");
  int64_t k = 0;
  if (in.size() > 1 && in[1]) {
    std::vector<int64_t> ks = intsOf(in[1], node, "k");
    if (ks.size() != 1)
      invalid("Trilu " + label(node) + ": k is not a scalar");
    k = ks[0];
  }
  const bool upper = intAttr(node, "upper", 1);
  const int64_t rows = x.shape[rank - 2], cols = x.shape[rank - 1];
  Literal r = make(x.type, x.shape);
  for (int64_t i = 0; i < x.size(); ++i) {
    const int64_t col = i % cols, row = (i / cols) % rows;
    const bool keep = upper ? col - row >= k : col - row <= k;
    if (keep)
      copyElement(x, i, r, i);
  }
  return r;
}

} // namespace

std::vector<Literal> splitLiteral(const Literal &x, int64_t axis,
                                  const std::vector<int64_t> &sizes) {
  const int64_t dim = x.shape[axis];
  std::vector<Literal> parts;
  const int64_t outer = product(x.shape, 0, axis),
                inner = product(x.shape, axis + 1);
  int64_t begin = 0;
  for (int64_t size : sizes) {
    std::vector<int64_t> shape = x.shape;
    shape[axis] = size;
    Literal p = make(x.type, shape);
    int64_t at = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < size * inner; ++j)
        copyElement(x, (o * dim + begin) * inner + j, p, at++);
    parts.push_back(std::move(p));
    begin += size;
  }
  return parts;
}

namespace {

Literal reduce(const onnx::NodeProto &node,
               const std::vector<const Literal *> &in) {
  const Literal &x = *in[0];
  const int64_t rank = x.shape.size();
  std::vector<int64_t> axes = in.size() > 1 && in[1]
                                  ? intsOf(in[1], node, "axes")
                                  : intsAttr(node, "axes");
  const std::string &op = node.op_type();
  if (axes.empty() && intAttr(node, "noop_with_empty_axes", 0))
    return x;
  std::vector<bool> reduced(rank, axes.empty());
  for (int64_t a : axes)
    reduced[normalizeAxis(a, rank, node)] = true;
  const bool keep = intAttr(node, "keepdims", 1);
  std::vector<int64_t> shape, kept;
  for (int64_t d = 0; d < rank; ++d) {
    if (!reduced[d] || keep)
      shape.push_back(reduced[d] ? 1 : x.shape[d]);
    kept.push_back(reduced[d] ? 1 : x.shape[d]);
  }
  const double start = op == "ReduceMax"    ? -INFINITY
                       : op == "ReduceMin"  ? INFINITY
                       : op == "ReduceProd" ? 1.0
                                            : 0.0;
  std::vector<double> acc(product(kept), start);
  std::vector<int64_t> keptStrides = stridesOf(kept);
  forEachIndex(x.shape, [&](const std::vector<int64_t> &at, int64_t i) {
    int64_t o = 0;
    for (int64_t d = 0; d < rank; ++d)
      o += (reduced[d] ? 0 : at[d]) * keptStrides[d];
    const double v = x.at(i);
    double &a = acc[o];
    if (op == "ReduceMax")
      a = std::isnan(a) || std::isnan(v) ? NAN : std::max(a, v);
    else if (op == "ReduceMin")
      a = std::isnan(a) || std::isnan(v) ? NAN : std::min(a, v);
    else if (op == "ReduceProd")
      a *= v;
    else
      a += v;
  });
  const int64_t count = product(x.shape) / std::max<int64_t>(1, product(kept));
  Literal r = make(x.type, shape);
  for (size_t i = 0; i < acc.size(); ++i)
    put(r, i, op == "ReduceMean" ? acc[i] / count : acc[i]);
  return r;
}

Literal matmul(const onnx::NodeProto &node, const Literal &a,
               const Literal &b) {
  if (a.shape.empty() || b.shape.empty())
    invalid("MatMul " + label(node) + " of a scalar");
  // Vectors become matrices and lose the added dimension at the end.
  std::vector<int64_t> x = a.shape, y = b.shape;
  if (x.size() == 1)
    x.insert(x.begin(), 1);
  if (y.size() == 1)
    y.push_back(1);
  const int64_t m = x[x.size() - 2], k = x.back(), n = y.back();
  if (y[y.size() - 2] != k)
    invalid("MatMul " + label(node) + ": inner dimensions " +
            std::to_string(k) + " and " + std::to_string(y[y.size() - 2]) +
            " differ");
  std::vector<int64_t> batch =
      broadcastShape({x.begin(), x.end() - 2}, {y.begin(), y.end() - 2},
                     "MatMul " + label(node) + ": batch dimensions");
  if (product(batch) * m * n * k > foldLimit)
    throw TooLarge{};
  std::vector<int64_t> shape = batch;
  if (a.shape.size() > 1)
    shape.push_back(m);
  if (b.shape.size() > 1)
    shape.push_back(n);
  Literal r = make(a.type, shape);
  auto offsetIn = [&](const std::vector<int64_t> &s, int64_t bi) {
    // The batch index `bi` of the broadcast batch, read in `s`'s batch.
    const size_t rank = s.size() - 2;
    int64_t offset = 0, stride = 1, rest = bi;
    for (size_t d = batch.size(); d-- > 0;) {
      const int64_t coord = rest % batch[d];
      rest /= batch[d];
      const int64_t own =
          static_cast<int64_t>(d) - static_cast<int64_t>(batch.size() - rank);
      if (own >= 0) {
        if (s[own] != 1)
          offset += coord * stride;
        stride *= s[own];
      }
    }
    return offset * s[rank] * s[rank + 1];
  };
  for (int64_t bi = 0; bi < product(batch); ++bi) {
    const int64_t oa = offsetIn(x, bi), ob = offsetIn(y, bi);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double sum = 0;
        for (int64_t p = 0; p < k; ++p)
          sum += a.at(oa + i * k + p) * b.at(ob + p * n + j);
        put(r, (bi * m + i) * n + j, sum);
      }
  }
  return r;
}

Literal range(const onnx::NodeProto &node,
              const std::vector<const Literal *> &in) {
  for (const Literal *l : in)
    if (l->size() != 1)
      invalid("Range " + label(node) + ": bounds are not scalars");
  const double start = in[0]->at(0), limit = in[1]->at(0), delta = in[2]->at(0);
  if (delta == 0)
    invalid("Range " + label(node) + " has a zero delta");
  const int64_t n = std::max<int64_t>(
      0, static_cast<int64_t>(std::ceil((limit - start) / delta)));
  Literal r = make(in[0]->type, {n});
  for (int64_t i = 0; i < n; ++i)
    put(r, i, start + i * delta);
  return r;
}

Literal constantOfShape(const onnx::NodeProto &node, const Literal *shape) {
  Literal fill{onnx::TensorProto::FLOAT, {1}, {0.0}, {}};
  if (const auto *v = attribute(node, "value"); v && v->has_t())
    fill = readTensor(v->t(), "");
  if (fill.size() != 1)
    invalid("ConstantOfShape " + label(node) +
            ": value does not hold one element");
  Literal r = make(fill.type, intsOf(shape, node, "shape"));
  for (int64_t i = 0; i < r.size(); ++i)
    copyElement(fill, 0, r, i);
  return r;
}

std::optional<std::vector<Literal>>
evaluate(const onnx::NodeProto &node, const std::vector<const Literal *> &in) {
  const std::string &op = node.op_type();
  auto one = [](Literal l) { // an initializer list would copy it
    std::vector<Literal> results;
    results.push_back(std::move(l));
    return results;
  };
  if (in.empty() && op != "Constant")
    return std::nullopt;
  if (in.size() == 1 && op != "Cast")
    if (std::optional<Literal> r = unaryOp(op, *in[0]))
      return one(*r);
  if (op == "Where")
    return one(elementwise(node, in, in[1]->type,
                           [](auto *a) { return a[0] != 0 ? a[1] : a[2]; }));
  if (std::optional<Literal> r = binaryOp(node, in))
    return one(*r);
  if (op == "Cast") {
    const int32_t to = intAttr(node, "to", 0);
    if (!Literal::isIntegerType(to) && to != onnx::TensorProto::FLOAT)
      return std::nullopt; // the importer names the type it does not take
    return one(castTo(*in[0], to));
  }
  if (op == "Concat")
    return one(concatLiterals(node, in, intAttr(node, "axis", 0)));
  if (op == "Transpose")
    return one(transpose(node, *in[0]));
  if (op == "Slice")
    return one(slice(node, in));
  if (op == "Expand") {
    std::vector<int64_t> shape =
        broadcastShape(in[0]->shape, intsOf(in[1], node, "shape"),
                       "Expand " + label(node) + ": shapes");
    const Literal target = make(onnx::TensorProto::BOOL, shape);
    return one(elementwise(node, {in[0], &target}, in[0]->type,
                           [](auto *a) { return a[0]; }));
  }
  if (op == "Tile")
    return one(tile(node, *in[0], in[1]));
  if (op == "Gather")
    return one(gather(node, *in[0], in[1]));
  if (op == "GatherND")
    return one(gatherND(node, *in[0], in[1]));
  if (op == "CumSum")
    return one(cumSum(node, *in[0], in[1]));
  if (op == "Trilu")
    return one(trilu(node, in));
  if (op == "Split") {
    const Literal &x = *in[0];
    const int64_t axis =
        normalizeAxis(intAttr(node, "axis", 0), x.shape.size(), node);
    return splitLiteral(
        x, axis,
        splitSizes(node, in.size() > 1 ? in[1] : nullptr, x.shape[axis]));
  }
  if (op == "ReduceSum" || op == "ReduceMean" || op == "ReduceMax" ||
      op == "ReduceMin" || op == "ReduceProd")
    return one(reduce(node, in));
  if (op == "MatMul")
    return one(matmul(node, *in[0], *in[1]));
  if (op == "Range")
    return one(range(node, in));
  if (op == "ConstantOfShape")
    return one(constantOfShape(node, in[0]));
  return std::nullopt;
}
} // namespace

void unsupported(const std::string &message) {
  throw ImportFailure{message, true};
}
void invalid(const std::string &message) {
  throw ImportFailure{message, false};
}

int64_t Literal::size() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

const onnx::AttributeProto *attribute(const onnx::NodeProto &node,
                                      const char *name) {
  for (const auto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t intAttr(const onnx::NodeProto &node, const char *name,
                int64_t otherwise) {
  const auto *a = attribute(node, name);
  return a ? a->i() : otherwise;
}

float floatAttr(const onnx::NodeProto &node, const char *name,
                float otherwise) {
  const auto *a = attribute(node, name);
  return a ? a->f() : otherwise;
}

std::vector<int64_t> intsAttr(const onnx::NodeProto &node, const char *name) {
  const auto *a = attribute(node, name);
  if (!a)
    return {};
  return {a->ints().begin(), a->ints().end()};
}

std::string label(const onnx::NodeProto &node) {
  if (!node.name().empty())
    return "'" + node.name() + "'";
  return "(" + node.op_type() + " writing '" +
         (node.output_size() ? node.output(0) : "") + "')";
}

int64_t normalizeAxis(int64_t axis, int64_t rank, const onnx::NodeProto &node) {
  if (axis < -rank || axis >= rank)
    invalid(node.op_type() + " " + label(node) + ": axis " +
            std::to_string(axis) + " is outside a rank-" +
            std::to_string(rank) + " tensor");
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> broadcastShape(const std::vector<int64_t> &x,
                                    const std::vector<int64_t> &y,
                                    const std::string &what) {
  const size_t rank = std::max(x.size(), y.size());
  std::vector<int64_t> shape(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t p = i + x.size() >= rank ? x[i + x.size() - rank] : 1;
    int64_t q = i + y.size() >= rank ? y[i + y.size() - rank] : 1;
    if (p != q && p != 1 && q != 1)
      invalid(what + " do not broadcast: dimension " + std::to_string(i) +
              " is " + std::to_string(p) + " and " + std::to_string(q));
    shape[i] = p == 1 ? q : p;
  }
  return shape;
}

TensorData readTensorData(const onnx::TensorProto &tensor,
                          const std::string &modelPath, bool withData) {
  TensorData t;
  t.type = tensor.data_type();
  t.shape.assign(tensor.dims().begin(), tensor.dims().end());
  const std::string what = "tensor '" + tensor.name() + "'";
  int64_t width = 0;
  switch (t.type) {
  case onnx::TensorProto::FLOAT:
  case onnx::TensorProto::INT32:
    width = 4;
    break;
  case onnx::TensorProto::INT64:
    width = 8;
    break;
  case onnx::TensorProto::BOOL:
    width = 1;
    break;
  default:
    unsupported(what + " has element type " +
                onnx::TensorProto::DataType_Name(
                    static_cast<onnx::TensorProto::DataType>(t.type)) +
                "; weft imports FLOAT, INT64, INT32 and BOOL tensors");
  }
  // Dimensions are checked against the data before anything is allocated.
  int64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0)
      invalid(what + " has the negative dimension " + std::to_string(d));
    if (__builtin_mul_overflow(n, d, &n) || n > (int64_t{1} << 40))
      invalid(what + ": its shape has more than 2^40 elements");
  }
  auto needBytes = [&](int64_t bytes) {
    if (bytes % width)
      invalid(what + " has " + std::to_string(bytes) +
              " bytes of data, not a multiple of its element size " +
              std::to_string(width));
    if (bytes / width != n)
      invalid(what + " holds " + std::to_string(bytes / width) +
              " elements, its shape needs " + std::to_string(n));
  };
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto &entry : tensor.external_data()) {
      char *end = nullptr;
      if (entry.key() == "location")
        location = entry.value();
      else if (entry.key() == "offset")
        offset = std::strtoll(entry.value().c_str(), &end, 10);
      else if (entry.key() == "length")
        length = std::strtoll(entry.value().c_str(), &end, 10);
      if (end && *end)
        invalid(what + ": external data " + entry.key() + " '" + entry.value() +
                "' is not a number");
    }
    if (location.empty())
      invalid(what + ": external data without a location");
    // As ONNX's checker has it: the data lies in the model's folder.
    bool escapes = llvm::sys::path::is_absolute(location);
    for (auto it = llvm::sys::path::begin(location),
              end = llvm::sys::path::end(location);
         it != end; ++it)
      escapes |= *it == "..";
    if (escapes)
      invalid(what + ": external data location '" + location +
              "' is not a relative path inside the model's folder");
    llvm::SmallString<256> file(llvm::sys::path::parent_path(modelPath));
    llvm::sys::path::append(file, location);
    std::ifstream in(std::string(file), std::ios::binary);
    if (!in)
      invalid(what + ": cannot open its external data " + std::string(file));
    in.seekg(0, std::ios::end);
    const int64_t size = in.tellg();
    if (length < 0)
      length = size - offset;
    if (offset < 0 || offset > size || length > size - offset)
      invalid(what + ": external data [" + std::to_string(offset) + ", +" +
              std::to_string(length) + ") runs past the end of " +
              std::string(file) + " (" + std::to_string(size) + " bytes)");
    needBytes(length);
    if (withData) {
      t.bytes.resize(length);
      in.seekg(offset);
      in.read(t.bytes.data(), length);
    }
    return t;
  }
  if (!tensor.raw_data().empty() || n == 0) {
    needBytes(tensor.raw_data().size());
    if (withData)
      t.bytes = tensor.raw_data();
    return t;
  }
  // Typed fields: floats, int64s, or int32s (INT32 and BOOL).
  auto fromField = [&](const auto &field, auto element) {
    using T = decltype(element);
    needBytes(static_cast<int64_t>(field.size()) * width);
    if (!withData)
      return;
    t.bytes.resize(n * width);
    for (int64_t i = 0; i < n; ++i) {
      T v = static_cast<T>(field.Get(i));
      std::memcpy(t.bytes.data() + i * width, &v, width);
    }
  };
  switch (t.type) {
  case onnx::TensorProto::FLOAT:
    fromField(tensor.float_data(), float());
    break;
  case onnx::TensorProto::INT64:
    fromField(tensor.int64_data(), int64_t());
    break;
  case onnx::TensorProto::INT32:
    fromField(tensor.int32_data(), int32_t());
    break;
  default: // BOOL
    fromField(tensor.int32_data(), static_cast<uint8_t>(0));
  }
  return t;
}

Literal readTensor(const onnx::TensorProto &tensor,
                   const std::string &modelPath) {
  TensorData t = readTensorData(tensor, modelPath);
  Literal l{t.type, t.shape, {}, {}};
  const int64_t n = l.size();
  const char *p = t.bytes.data();
  if (l.isInteger())
    l.ints.resize(n);
  else
    l.floats.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (t.type) {
    case onnx::TensorProto::FLOAT: {
      float f;
      std::memcpy(&f, p + 4 * i, 4);
      l.floats[i] = f;
      break;
    }
    case onnx::TensorProto::INT64:
      std::memcpy(&l.ints[i], p + 8 * i, 8);
      break;
    case onnx::TensorProto::INT32: {
      int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      l.ints[i] = v;
      break;
    }
    default: // BOOL
      l.ints[i] = p[i] != 0;
    }
  }
  return l;
}

std::vector<int64_t> splitSizes(const onnx::NodeProto &node,
                                const Literal *split, int64_t dim) {
  std::vector<int64_t> sizes =
      split ? intsOf(split, node, "split") : intsAttr(node, "split");
  const int64_t outputs = node.output_size();
  if (sizes.empty()) { // equal parts, the last one smaller (num_outputs)
    const int64_t part = (dim + outputs - 1) / std::max<int64_t>(outputs, 1);
    for (int64_t i = 0; i < outputs; ++i)
      sizes.push_back(std::clamp<int64_t>(dim - i * part, 0, part));
  }
  const int64_t total = std::accumulate(sizes.begin(), sizes.end(), int64_t{0});
  if (static_cast<int64_t>(sizes.size()) != outputs || total != dim ||
      std::any_of(sizes.begin(), sizes.end(), [](int64_t s) { return s < 0; }))
    invalid("Split " + label(node) + ": " + std::to_string(sizes.size()) +
            " parts summing to " + std::to_string(total) + " for " +
            std::to_string(outputs) + " outputs and dimension " +
            std::to_string(dim));
  return sizes;
}

std::optional<std::vector<Literal>>
fold(const onnx::NodeProto &node, const std::vector<const Literal *> &inputs,
     int64_t &budget) {
  if (budget <= 0)
    return std::nullopt;
  foldLimit = std::min(kMaxFoldElements, budget);
  try {
    std::optional<std::vector<Literal>> results = evaluate(node, inputs);
    if (!results)
      return std::nullopt;
    int64_t held = 0;
    for (const Literal &l : *results)
      held += l.size();
    if (held > budget)
      return std::nullopt;
    budget -= held;
    return results;
  } catch (const TooLarge &) {
    return std::nullopt;
  }
}

const std::set<std::string> &foldOnlyOps() {
  static const std::set<std::string> ops = {"GatherND",   "Mod",  "Range",
                                            "ReduceProd", "Sign", "Xor"};
  return ops;
}

} // namespace weft::frontend::onnx_import
