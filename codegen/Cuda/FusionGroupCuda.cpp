// Generating CUDA C++ for fusion groups. Every value of the group is a local
// variable of the loop over a chunk's columns; see FusionGroupCuda.h.
#include "codegen/Cuda/FusionGroupCuda.h"

#include "codegen/Cpu/KernelCompiler.h"
#include "codegen/Elementwise.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace weft;

namespace {
using ValueTypes = codegen::ElementCTypes;

FailureOr<ValueTypes> typesOf(Operation *where, Type type) {
  return codegen::elementCTypes(where, type, "CUDA");
}

bool isBf16(Type type) {
  return cast<RankedTensorType>(type).getElementType().isBF16();
}

/// What every generated kernel starts with: NVRTC compiles without headers,
/// so the integer types, the std:: math the shared expressions call, bf16
/// rounding (nearest even, NaN kept NaN, as on the CPU), vector chunks and
/// block reductions are defined here.
constexpr const char *kPrelude = R"(typedef long long int64_t;
typedef int int32_t;
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
namespace std {
__device__ __forceinline__ float exp(float x) { return expf(x); }
__device__ __forceinline__ float log(float x) { return logf(x); }
__device__ __forceinline__ float tanh(float x) { return tanhf(x); }
__device__ __forceinline__ float sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ float erf(float x) { return erff(x); }
__device__ __forceinline__ float cos(float x) { return cosf(x); }
__device__ __forceinline__ float sin(float x) { return sinf(x); }
__device__ __forceinline__ float floor(float x) { return floorf(x); }
__device__ __forceinline__ float ceil(float x) { return ceilf(x); }
__device__ __forceinline__ float pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ float abs(float x) { return fabsf(x); }
template <typename T> __device__ __forceinline__ T abs(T x) { return x < 0 ? -x : x; }
template <typename T> __device__ __forceinline__ T max(T a, T b) { return a < b ? b : a; }
template <typename T> __device__ __forceinline__ T min(T a, T b) { return b < a ? b : a; }
} // namespace std
template <typename A, typename B>
__device__ __forceinline__ auto weftSelect(bool p, A a, B b) { return p ? a : b; }
__device__ __forceinline__ float weftBf16ToFloat(uint16_t bits) {
  return __uint_as_float(static_cast<unsigned>(bits) << 16);
}
__device__ __forceinline__ uint16_t weftFloatToBf16(float value) {
  unsigned word = __float_as_uint(value);
  if ((word & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>(word >> 16 | 0x40);
  word += 0x7fffu + (word >> 16 & 1);
  return static_cast<uint16_t>(word >> 16);
}
template <typename T, int V>
struct alignas(sizeof(T) * V < 16 ? sizeof(T) * V : 16) WeftChunk {
  T v[V];
};
template <int V, typename T>
__device__ __forceinline__ WeftChunk<T, V> weftLoad(const T *p) {
  return *reinterpret_cast<const WeftChunk<T, V> *>(p);
}
template <int V, typename T>
__device__ __forceinline__ void weftStore(T *p, const WeftChunk<T, V> &chunk) {
  *reinterpret_cast<WeftChunk<T, V> *>(p) = chunk;
}
/// The sum (or maximum) over the block; every thread gets it.
template <bool kMax> __device__ __forceinline__ float weftBlockReduce(float v) {
  __shared__ float partial[32];
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads(); // the previous reduction has read `partial`
  if (lane == 0)
    partial[warp] = v;
  __syncthreads();
  v = lane < static_cast<int>((blockDim.x + 31) >> 5)
          ? partial[lane]
          : (kMax ? __int_as_float(0xff800000) : 0.0f);
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  return v;
}
)";

bool isRowOp(Operation &op) {
  return isa<RmsNormOp, RmsNormGradOp, LayerNormOp, LayerNormGradOp, SoftmaxOp,
             LogSoftmaxOp>(op);
}

class Generator {
public:
  explicit Generator(FusionGroupOp group) : group(group) {}
  FailureOr<codegen::CudaKernelSource> generate();

private:
  /// The loop over a thread's chunks of the row (a block per row) or of the
  /// tensor (elementwise), opened; c0 is the chunk's first column.
  void emitLoopHead(llvm::raw_ostream &os);
  /// Loads every input's values at the chunk (or, when the rows stay in
  /// registers, names the loaded ones).
  LogicalResult emitChunkStart(llvm::raw_ostream &os);
  /// Loads each thread's chunks of the row once, for every pass.
  LogicalResult emitKeptChunks(llvm::raw_ostream &os);
  /// The ops before `limit` (all when null) at column c0 + j.
  LogicalResult emitBody(llvm::raw_ostream &os, Operation *limit);
  /// Passes computing `op`'s row statistics into s<k>_* scalars.
  LogicalResult emitStatistics(llvm::raw_ostream &os, Operation &op,
                               unsigned k);
  std::string name(Value v) {
    auto [it, inserted] = names.try_emplace(v, "");
    if (inserted)
      it->second = "v" + std::to_string(names.size() - 1);
    return it->second;
  }

  FusionGroupOp group;
  int64_t rows = 0, cols = 0;
  int vector = 1;
  bool rowMode = false;
  /// Chunks of each row input a thread keeps in registers across the passes
  /// (a block per row whose row takes at most two chunks a thread); 0: each
  /// pass loads them again.
  int kept = 0;
  llvm::DenseMap<Value, std::string> names;
  llvm::DenseMap<Operation *, unsigned> rowOpIndex;
  SmallVector<codegen::InputLayout> layouts;
};

LogicalResult Generator::emitChunkStart(llvm::raw_ostream &os) {
  Block &body = group.getBody().front();
  for (BlockArgument input : body.getArguments()) {
    FailureOr<ValueTypes> t = typesOf(group, input.getType());
    if (failed(t))
      return failure();
    unsigned i = input.getArgNumber();
    if (layouts[i] == codegen::InputLayout::PerRow) { // one value per row
      os << "      const " << t->storage << " a" << i << " = in" << i << "["
         << (rowMode ? "blockIdx.x" : "i0 / kCols") << "];\n";
      continue;
    }
    os << "      const WeftChunk<" << t->storage << ", " << vector << "> "
       << (kept ? "&" : "") << "a" << i << " = ";
    if (kept)
      os << "a" << i << "_kept[k];\n";
    else
      os << "weftLoad<" << vector << ">(in" << i << " + "
         << (layouts[i] == codegen::InputLayout::Row
                 ? (rowMode ? "rowStart + c0" : "i0")
                 : "c0")
         << ");\n";
  }
  return success();
}

void Generator::emitLoopHead(llvm::raw_ostream &os) {
  if (!rowMode) {
    os << "  for (int64_t i0 = (static_cast<int64_t>(blockIdx.x) * blockDim.x "
          "+ threadIdx.x) * "
       << vector << "; i0 < kRows * kCols; i0 += static_cast<int64_t>("
       << "gridDim.x) * blockDim.x * " << vector << ") {\n"
       << "    const int64_t c0 = i0 % kCols;\n";
    return;
  }
  if (kept) {
    os << "#pragma unroll\n  for (int k = 0; k < " << kept << "; ++k) {\n"
       << "    const int64_t c0 = (static_cast<int64_t>(threadIdx.x) + "
          "static_cast<int64_t>(k) * blockDim.x) * "
       << vector << ";\n    if (c0 >= kCols)\n      break;\n";
    return;
  }
  os << "  for (int64_t c0 = static_cast<int64_t>(threadIdx.x) * " << vector
     << "; c0 < kCols; c0 += static_cast<int64_t>(blockDim.x) * " << vector
     << ") {\n";
}

LogicalResult Generator::emitKeptChunks(llvm::raw_ostream &os) {
  Block &body = group.getBody().front();
  for (BlockArgument input : body.getArguments()) {
    unsigned i = input.getArgNumber();
    if (layouts[i] == codegen::InputLayout::PerRow)
      continue;
    FailureOr<ValueTypes> t = typesOf(group, input.getType());
    if (failed(t))
      return failure();
    os << "  WeftChunk<" << t->storage << ", " << vector << "> a" << i
       << "_kept[" << kept << "];\n";
  }
  emitLoopHead(os);
  for (BlockArgument input : body.getArguments()) {
    unsigned i = input.getArgNumber();
    if (layouts[i] != codegen::InputLayout::PerRow)
      os << "    a" << i << "_kept[k] = weftLoad<" << vector << ">(in" << i
         << " + "
         << (layouts[i] == codegen::InputLayout::Row ? "rowStart + c0" : "c0")
         << ");\n";
  }
  os << "  }\n";
  return success();
}

LogicalResult Generator::emitBody(llvm::raw_ostream &os, Operation *limit) {
  Block &body = group.getBody().front();
  for (BlockArgument input : body.getArguments()) {
    FailureOr<ValueTypes> t = typesOf(group, input.getType());
    if (failed(t))
      return failure();
    std::string element =
        "a" + std::to_string(input.getArgNumber()) +
        (layouts[input.getArgNumber()] == codegen::InputLayout::PerRow
             ? ""
             : ".v[j]");
    os << "        const " << t->compute << " " << name(input) << " = "
       << (isBf16(input.getType()) ? "weftBf16ToFloat(" + element + ")"
                                   : element)
       << ";\n";
  }
  for (Operation &op : body.without_terminator()) {
    if (&op == limit)
      break;
    SmallVector<std::string> in;
    for (Value operand : op.getOperands())
      in.push_back(name(operand));
    FailureOr<ValueTypes> t = typesOf(&op, op.getResult(0).getType());
    if (failed(t))
      return failure();
    std::string expression = codegen::elementwiseExpression(&op, in);
    if (auto convert = dyn_cast<ConvertOp>(op)) {
      expression = "static_cast<" + t->compute.str() + ">(" + in[0] + ")";
      if (isBf16(convert.getType())) // round to bf16's precision
        expression = "weftBf16ToFloat(weftFloatToBf16(" + expression + "))";
    } else if (isa<BroadcastOp, IotaOp>(op)) {
      // Row producers (FormFusionGroups): the row's value, the column.
      if (failed(codegen::checkRowProducer(group, &op)))
        return failure();
      expression = isa<IotaOp>(op)
                       ? "static_cast<" + t->compute.str() + ">(c0 + j)"
                       : in[0];
    } else if (isRowOp(op)) {
      std::string s = "s" + std::to_string(rowOpIndex.lookup(&op));
      if (isa<RmsNormOp>(op))
        expression = in[0] + " * " + s + "_inv * " + in[1];
      else if (isa<RmsNormGradOp>(op)) // r·(g·w) − x·r³·mean(g·w·x)
        expression = s + "_inv * (" + in[2] + " * " + in[1] + ") - " + in[0] +
                     " * " + s + "_inv3 * " + s + "_dot";
      else if (isa<LayerNormGradOp>(op)) // r·(g·w − mean(g·w) − x̂·mean(g·w·x̂))
        expression = s + "_inv * (" + in[2] + " * " + in[1] + " - " + s +
                     "_gw - (" + in[0] + " - " + s + "_mean) * " + s +
                     "_inv * " + s + "_gwx)";
      else if (auto norm = dyn_cast<LayerNormOp>(op))
        expression = "(" + in[0] + " - " + s + "_mean) * " + s + "_inv * " +
                     in[1] + (norm.getBias() ? " + " + in[2] : "");
      else if (isa<SoftmaxOp>(op))
        expression = "std::exp(" + in[0] + " - " + s + "_max) * " + s + "_inv";
      else
        expression = in[0] + " - " + s + "_log";
    }
    if (expression.empty())
      return op.emitError()
             << "cannot be generated as part of a CUDA fusion group";
    os << "        const " << t->compute << " " << name(op.getResult(0))
       << " = " << expression << "; // " << op.getName().stripDialect() << "\n";
  }
  return success();
}

LogicalResult Generator::emitStatistics(llvm::raw_ostream &os, Operation &op,
                                        unsigned k) {
  std::string s = "s" + std::to_string(k);
  auto pass = [&](const std::string &init, const std::string &accumulate,
                  const std::string &after) -> LogicalResult {
    os << "  {\n    float acc = " << init << ";\n";
    emitLoopHead(os);
    if (failed(emitChunkStart(os)))
      return failure();
    os << "#pragma unroll\n      for (int j = 0; j < " << vector
       << "; ++j) {\n";
    if (failed(emitBody(os, &op)))
      return failure();
    os << "        " << accumulate << ";\n      }\n    }\n"
       << "    " << after << ";\n  }\n";
    return success();
  };
  const std::string x = name(op.getOperand(0));
  // The row's mean of `term` into `target`.
  auto mean = [&](const std::string &term, const std::string &target) {
    return pass("0.0f", "acc += " + term,
                target + " = weftBlockReduce<false>(acc) / kCols");
  };
  // s_inv = 1 / sqrt(the row's mean of `term` + epsilon).
  auto inverseRoot = [&](const std::string &term, APFloat epsilon) {
    return pass("0.0f", "acc += " + term,
                s +
                    "_inv = 1.0f / std::sqrt(weftBlockReduce<false>(acc) / "
                    "kCols + " +
                    codegen::floatLiteral(epsilon.convertToDouble()) + ")");
  };
  // LayerNorm's s_mean and s_inv; `centered` is x − s_mean.
  const std::string centered = "(" + x + " - " + s + "_mean)";
  auto meanAndInverse = [&](APFloat epsilon) {
    return success(
        succeeded(mean(x, s + "_mean")) &&
        succeeded(inverseRoot(centered + " * " + centered, epsilon)));
  };
  if (auto norm = dyn_cast<RmsNormOp>(op)) {
    os << "  float " << s << "_inv;\n";
    return inverseRoot(x + " * " + x, norm.getEpsilon());
  }
  if (auto grad = dyn_cast<RmsNormGradOp>(op)) {
    const std::string g = name(grad.getGrad()), w = name(grad.getWeight());
    os << "  float " << s << "_inv, " << s << "_inv3, " << s << "_dot;\n";
    if (failed(inverseRoot(x + " * " + x, grad.getEpsilon())))
      return failure();
    os << "  " << s << "_inv3 = " << s << "_inv * " << s << "_inv * " << s
       << "_inv;\n";
    return mean(g + " * " + w + " * " + x, s + "_dot");
  }
  if (auto grad = dyn_cast<LayerNormGradOp>(op)) {
    const std::string g = name(grad.getGrad()), w = name(grad.getWeight());
    os << "  float " << s << "_mean, " << s << "_inv, " << s << "_gw, " << s
       << "_gwx;\n";
    if (failed(meanAndInverse(grad.getEpsilon())) ||
        failed(mean(g + " * " + w, s + "_gw")))
      return failure();
    return mean(g + " * " + w + " * (" + centered + " * " + s + "_inv)",
                s + "_gwx");
  }
  if (auto norm = dyn_cast<LayerNormOp>(op)) {
    os << "  float " << s << "_mean, " << s << "_inv;\n";
    return meanAndInverse(norm.getEpsilon());
  }
  // Softmax and log-softmax: the maximum, then the sum of exponentials.
  os << "  float " << s << "_max, " << s
     << (isa<SoftmaxOp>(op) ? "_inv;\n" : "_log;\n");
  if (failed(pass("__int_as_float(0xff800000)",
                  "acc = std::max(acc, " + x + ")",
                  s + "_max = weftBlockReduce<true>(acc)")))
    return failure();
  return pass("0.0f", "acc += std::exp(" + x + " - " + s + "_max)",
              isa<SoftmaxOp>(op)
                  ? s + "_inv = 1.0f / weftBlockReduce<false>(acc)"
                  : s + "_log = std::log(weftBlockReduce<false>(acc)) + " + s +
                        "_max");
}

FailureOr<codegen::CudaKernelSource> Generator::generate() {
  Block &body = group.getBody().front();
  auto groupType = cast<RankedTensorType>(group.getResult(0).getType());
  cols = std::max<int64_t>(group.getRowLength(), 1);
  rows = groupType.getNumElements() / cols;
  for (Operation &op : body.without_terminator())
    if (isRowOp(op)) {
      rowOpIndex[&op] = rowOpIndex.size();
      rowMode = true;
    }

  // Parameters, and the widest element that fixes the chunk width.
  std::string params;
  llvm::raw_string_ostream ps(params);
  int widest = 1;
  for (BlockArgument input : body.getArguments()) {
    FailureOr<ValueTypes> t = typesOf(group, input.getType());
    if (failed(t))
      return failure();
    FailureOr<codegen::InputLayout> layout = codegen::inputLayout(group, input);
    if (failed(layout))
      return failure();
    layouts.push_back(*layout);
    if (*layout != codegen::InputLayout::PerRow) // a scalar a row
      widest = std::max(widest, t->bytes);
    ps << "const " << t->storage << " *in" << input.getArgNumber() << ", ";
  }
  YieldOp yield = group.getYield();
  for (auto [i, result] : llvm::enumerate(yield.getValues())) {
    FailureOr<ValueTypes> t = typesOf(group, result.getType());
    if (failed(t))
      return failure();
    widest = std::max(widest, t->bytes);
    ps << t->storage << " *out" << i << ", ";
  }
  ps << "char *workspace";
  vector = std::max(1, 16 / widest);
  while (cols % vector != 0)
    vector /= 2;

  std::string code;
  llvm::raw_string_ostream os(code);
  codegen::CudaKernelSource kernel;
  if (rowMode) {
    int64_t chunks = (cols + vector - 1) / vector;
    kernel.blockThreads =
        static_cast<int>(std::clamp<int64_t>((chunks + 31) / 32 * 32, 32, 512));
    kernel.gridBlocks = std::max<int64_t>(rows, 1);
    const int64_t perThread =
        (chunks + kernel.blockThreads - 1) / kernel.blockThreads;
    kept = perThread <= 2 ? static_cast<int>(perThread) : 0;
    os << "  if (blockIdx.x >= kRows)\n    return;\n"
       << "  const int64_t rowStart = static_cast<int64_t>(blockIdx.x) * "
          "kCols;\n";
    if (kept && failed(emitKeptChunks(os)))
      return failure();
    for (Operation &op : body.without_terminator())
      if (isRowOp(op) && failed(emitStatistics(os, op, rowOpIndex.lookup(&op))))
        return failure();
  } else {
    kernel.blockThreads = 256;
    int64_t chunks = (rows * cols + vector - 1) / vector;
    kernel.gridBlocks = std::clamp<int64_t>((chunks + 255) / 256, 1, 1 << 16);
  }
  emitLoopHead(os);
  // The last pass: every value, the results stored.
  if (failed(emitChunkStart(os)))
    return failure();
  SmallVector<ValueTypes> resultTypes;
  for (auto [i, result] : llvm::enumerate(yield.getValues())) {
    ValueTypes t = *typesOf(group, result.getType());
    resultTypes.push_back(t);
    os << "      WeftChunk<" << t.storage << ", " << vector << "> o" << i
       << ";\n";
  }
  os << "#pragma unroll\n      for (int j = 0; j < " << vector << "; ++j) {\n";
  if (failed(emitBody(os, nullptr)))
    return failure();
  for (auto [i, result] : llvm::enumerate(yield.getValues()))
    os << "        o" << i << ".v[j] = "
       << (isBf16(result.getType()) ? "weftFloatToBf16(" + name(result) + ")"
                                    : name(result))
       << ";\n";
  os << "      }\n";
  for (size_t i = 0; i < resultTypes.size(); ++i)
    os << "      weftStore<" << vector << ">(out" << i << " + "
       << (rowMode ? "rowStart + c0" : "i0") << ", o" << i << ");\n";
  os << "  }\n";

  std::string opNames;
  for (Operation &op : body.without_terminator())
    opNames +=
        (opNames.empty() ? "" : ", ") + op.getName().stripDialect().str();
  std::string source;
  llvm::raw_string_ostream src(source);
  // Elementwise kernels keep at least 4 blocks of 256 threads an SM (64
  // registers a thread, no spills): SwiGLU's backward, four inputs and two
  // results a chunk, asked for 72 and half the warps.
  src << "// weft fusion group: " << opNames << " over " << rows << " rows of "
      << cols << (rowMode ? ", a block per row" : ", elementwise") << "\n"
      << kPrelude << "\n"
      << "extern \"C\" __global__ void __launch_bounds__("
      << kernel.blockThreads << (rowMode ? "" : ", 4") << ")\n@ENTRY@("
      << params << ") {\n"
      << "  constexpr int64_t kRows = " << rows << ", kCols = " << cols << ";\n"
      << code << "}\n";
  kernel.entry = "weft_cuda_" + codegen::contentHash(source);
  source.replace(source.find("@ENTRY@"), 7, kernel.entry);
  kernel.source = std::move(source);
  return kernel;
}
} // namespace

FailureOr<codegen::CudaKernelSource>
codegen::generateCudaFusionGroup(FusionGroupOp group) {
  return Generator(group).generate();
}
