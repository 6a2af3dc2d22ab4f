// The plan builder. The library calls' argument order is the runtime's
// (runtime/cpu/CpuExecutor.cpp, runtime/cuda/CudaExecutor.cpp).
#include "codegen/PlanBuilder.h"

#include "codegen/Cpu/FusionGroupSource.h"
#include "codegen/Cpu/KernelCompiler.h"
#include "codegen/Cuda/FusionGroupCuda.h"
#include "codegen/Cuda/NvrtcCompiler.h"
#include "ir/WeftDialect.h"
#include "kernels/cpu/Kernels.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace weft;

namespace {
int64_t product(ArrayRef<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

/// Bytes of one element of a tensor type (i1 takes a byte).
int64_t elementBytes(Type type) {
  Type element = cast<RankedTensorType>(type).getElementType();
  return tensorBytes(RankedTensorType::get({1}, element));
}

/// The module name of a location ("model.layers.0.mlp"), or "".
std::string nameOf(Location loc) {
  if (auto name = dyn_cast<NameLoc>(loc))
    return name.getName().str();
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location inner : fused.getLocations())
      if (std::string name = nameOf(inner); !name.empty())
        return name;
  return "";
}

/// The mesh axes of a collective's group as a mask of the plan's mesh axes
/// (bit i: axis i); the module's mesh is the plan's.
FailureOr<int64_t> groupMask(Operation *op, MeshAttr mesh, ArrayAttr names) {
  auto module = op->getParentOfType<ModuleOp>();
  if (module->getAttrOfType<MeshAttr>("weft.mesh") != mesh)
    return op->emitError("runs on another mesh than the module's "
                         "(weft.mesh); a plan has one mesh");
  int64_t mask = 0;
  ArrayRef<MeshAxisAttr> axes = mesh.getAxes();
  for (auto name : names.getAsValueRange<StringAttr>())
    for (size_t a = 0; a < axes.size(); ++a)
      if (axes[a].getName() == name)
        mask |= int64_t{1} << a;
  return mask;
}

/// A sharded binding (a ZeRO block, a tensor-parallel slice): the whole
/// tensor's element count (and shape, and the split dimension of a slice)
/// and the axes of the group holding the blocks, from the argument's
/// weft.state_shard or weft.param_shard.
void setShard(plan::Binding &binding, DictionaryAttr shard) {
  binding.set_global_elements(shard.getAs<IntegerAttr>("elements").getInt());
  for (auto axis : shard.getAs<ArrayAttr>("axes").getAsValueRange<StringAttr>())
    binding.add_shard_axes(axis.str());
  if (auto shape = shard.getAs<DenseI64ArrayAttr>("shape"))
    for (int64_t size : shape.asArrayRef())
      binding.add_global_shape(size);
  if (auto dim = shard.getAs<IntegerAttr>("dim"))
    binding.set_shard_dim(dim.getInt());
}

class PlanBuilder {
public:
  explicit PlanBuilder(const codegen::PlanOptions &options)
      : options(options) {}
  /// Adds `func` as the plan's program `program` ("" for the main one).
  LogicalResult addProgram(func::FuncOp func, const std::string &program);
  plan::Plan take() { return std::move(plan); }

private:
  FailureOr<plan::DType> dtypeOf(Location loc, Type type);
  FailureOr<int> bufferOf(Value value, Operation *where);
  LogicalResult requireF32(Operation *op);
  LogicalResult lowerOp(Operation *op, plan::Step &step);
  LogicalResult lowerFusionGroup(FusionGroupOp group, plan::Step &step);
  /// The kernel of `group` in the plan, generated and compiled once.
  FailureOr<int> cpuKernel(FusionGroupOp group);
  FailureOr<int> cudaKernel(FusionGroupOp group);
  LogicalResult dumpKernel(Operation *where, const std::string &fileName,
                           const std::string &text);
  LogicalResult lowerStridedCopy(mlir::Operation *op, plan::LibraryCall &call);
  LogicalResult lowerOptimizerOp(mlir::Operation *op, plan::LibraryCall &call);
  LogicalResult lowerCollective(Operation *op, plan::LibraryCall &call);
  LogicalResult writeConstant(ConstantOp op);
  int64_t funcAttr(StringRef name) {
    return func->getAttrOfType<IntegerAttr>(name).getInt();
  }

  /// The state buffer's offset by name, laid out as names first appear.
  FailureOr<int64_t> stateOffset(Operation *where, const std::string &name,
                                 int64_t bytes);

  const codegen::PlanOptions &options;
  plan::Plan plan;
  llvm::StringMap<int> kernelByEntry;
  llvm::StringMap<std::pair<int64_t, int64_t>> stateLayout; // offset, bytes
  llvm::StringMap<int64_t> parameterOffsets;
  // The function being added.
  func::FuncOp func;
  std::string program;
  DenseMap<Value, int> buffers;
  DenseMap<Value, std::string> updateNames; // weft.update results
  int workspace = -1;
  int64_t constantBase = 0; // its constants follow the previous programs'
};
} // namespace

FailureOr<plan::DType> PlanBuilder::dtypeOf(Location loc, Type type) {
  Type element = cast<RankedTensorType>(type).getElementType();
  if (element.isF32())
    return plan::F32;
  if (element.isBF16())
    return plan::BF16;
  if (element.isF16())
    return plan::F16;
  if (element.isF64())
    return plan::F64;
  if (element.isInteger(64))
    return plan::I64;
  if (element.isInteger(32))
    return plan::I32;
  if (element.isInteger(8))
    return plan::I8;
  if (element.isInteger(1))
    return plan::I1;
  return emitError(loc) << "no plan dtype for " << element;
}

FailureOr<int> PlanBuilder::bufferOf(Value value, Operation *where) {
  if (auto it = buffers.find(value); it != buffers.end())
    return it->second;
  BufferAttr attr;
  std::string name;
  if (auto arg = dyn_cast<BlockArgument>(value)) {
    attr = func.getArgAttrOfType<BufferAttr>(arg.getArgNumber(), "weft.buffer");
    auto param = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                   WeftDialect::kParamAttrName);
    auto input = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                   WeftDialect::kInputAttrName);
    auto state = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                   WeftDialect::kStateAttrName);
    name = param   ? param.str()
           : input ? input.str()
           : state ? state.str()
                   : "arg" + std::to_string(arg.getArgNumber());
  } else {
    Operation *def = value.getDefiningOp();
    auto all = def->getAttrOfType<ArrayAttr>("weft.buffers");
    if (all)
      attr = dyn_cast<BufferAttr>(all[cast<OpResult>(value).getResultNumber()]);
    name = nameOf(def->getLoc());
    if (name.empty())
      name = def->getName().stripDialect().str();
    if (auto update = updateNames.find(value); update != updateNames.end())
      name = update->second;
  }
  if (!attr)
    return where->emitError() << "uses a value without a buffer; run the "
                                 "bufferize phase before code generation";
  auto type = cast<RankedTensorType>(value.getType());
  FailureOr<plan::DType> dtype = dtypeOf(where->getLoc(), type);
  if (failed(dtype))
    return failure();
  int64_t offset = attr.getOffset();
  if (attr.getRegion() == "constants")
    offset += constantBase;
  if (attr.getRegion() == "state") {
    // A reshape views the state it reshapes: the same name and memory.
    Value root = value;
    while (auto reshape = root.getDefiningOp<ReshapeOp>())
      root = reshape.getOperand();
    if (root != value) {
      FailureOr<int> viewed = bufferOf(root, where);
      if (failed(viewed))
        return failure();
      name = plan.buffers(*viewed).name();
    }
    FailureOr<int64_t> at = stateOffset(where, name, tensorBytes(type));
    if (failed(at))
      return failure();
    offset = *at;
  }
  plan::Buffer *buffer = plan.add_buffers();
  buffer->set_name(name);
  buffer->set_region(attr.getRegion() == "parameters"  ? plan::PARAMETERS
                     : attr.getRegion() == "constants" ? plan::CONSTANTS
                     : attr.getRegion() == "state"     ? plan::STATE
                     : attr.getRegion() == "host"      ? plan::HOST
                                                       : plan::ARENA);
  buffer->set_offset(offset);
  buffer->set_bytes(tensorBytes(type));
  buffer->set_dtype(*dtype);
  for (int64_t d : type.getShape())
    buffer->add_shape(d);
  return buffers[value] = plan.buffers_size() - 1;
}

FailureOr<int64_t> PlanBuilder::stateOffset(Operation *where,
                                            const std::string &name,
                                            int64_t bytes) {
  auto [it, inserted] = stateLayout.try_emplace(name, 0, bytes);
  if (!inserted) {
    if (it->second.second != bytes)
      return where->emitError()
             << "state '" << name << "' is " << bytes << " bytes here and "
             << it->second.second << " bytes in an earlier program";
    return it->second.first;
  }
  it->second.first = plan.memory().state();
  plan.mutable_memory()->set_state(it->second.first + (bytes + 63) / 64 * 64);
  return it->second.first;
}

LogicalResult PlanBuilder::requireF32(Operation *op) {
  SmallVector<Type> types(op->getOperandTypes());
  llvm::append_range(types, op->getResultTypes());
  for (Type type : types) {
    Type element = cast<RankedTensorType>(type).getElementType();
    if (isa<FloatType>(element) && !element.isF32())
      return op->emitError()
             << "computes in " << element
             << "; the CPU backend computes in f32 (bf16 tensors are "
                "widened by weft-legalize-cpu-types; other float types are "
                "not run yet)";
  }
  return success();
}

LogicalResult PlanBuilder::writeConstant(ConstantOp op) {
  auto value = dyn_cast<DenseElementsAttr>(op.getValue());
  if (!value)
    return op.emitError("needs a dense constant value");
  int64_t offset =
      constantBase +
      cast<BufferAttr>(op->getAttrOfType<ArrayAttr>("weft.buffers")[0])
          .getOffset();
  std::string &data = *plan.mutable_constants();
  char *dst = data.data() + offset;
  Type element = value.getElementType();
  auto write = [&](auto range) {
    for (auto v : range) {
      std::memcpy(dst, &v, sizeof(v));
      dst += sizeof(v);
    }
  };
  if (element.isF32())
    write(value.getValues<float>());
  else if (element.isInteger(64))
    write(value.getValues<int64_t>());
  else if (element.isInteger(32))
    write(value.getValues<int32_t>());
  else if (element.isInteger(1))
    for (bool b : value.getValues<bool>())
      *dst++ = b ? 1 : 0;
  else if (element.isBF16() || element.isF16())
    for (const APFloat &f : value.getValues<APFloat>()) {
      uint16_t bits = f.bitcastToAPInt().getZExtValue();
      std::memcpy(dst, &bits, sizeof(bits));
      dst += sizeof(bits);
    }
  else
    return op.emitError() << "has constant elements of type " << element
                          << ", which CPU plans do not hold yet";
  return success();
}

LogicalResult PlanBuilder::dumpKernel(Operation *where,
                                      const std::string &fileName,
                                      const std::string &text) {
  if (options.dumpKernelsDir.empty())
    return success();
  llvm::SmallString<256> path(options.dumpKernelsDir);
  llvm::sys::path::append(path, fileName);
  std::error_code ec;
  llvm::raw_fd_ostream file(path, ec);
  if (ec)
    return where->emitError()
           << "cannot write " << path << ": " << ec.message();
  file << text;
  return success();
}

FailureOr<int> PlanBuilder::cpuKernel(FusionGroupOp group) {
  auto source = codegen::generateFusionGroupSource(
      group, funcAttr("weft.workspace_per_thread"));
  if (failed(source))
    return failure();
  auto [entry, text] = *source;
  if (auto it = kernelByEntry.find(entry); it != kernelByEntry.end())
    return it->second;
  llvm::Expected<codegen::CompiledKernel> compiled =
      codegen::compileCpuKernel(text);
  if (!compiled)
    return group.emitError() << llvm::toString(compiled.takeError());
  plan::Kernel *kernel = plan.add_kernels();
  kernel->set_name(entry);
  kernel->set_backend(plan::Kernel::CPU_SHARED_OBJECT);
  kernel->set_entry(entry);
  kernel->set_source(text);
  kernel->set_image(std::move(compiled->image));
  kernel->set_content_hash(compiled->contentHash);
  kernel->set_target(compiled->target);
  if (failed(dumpKernel(group, entry + ".cpp", text)))
    return failure();
  return kernelByEntry[entry] = plan.kernels_size() - 1;
}

FailureOr<int> PlanBuilder::cudaKernel(FusionGroupOp group) {
  FailureOr<codegen::CudaKernelSource> source =
      codegen::generateCudaFusionGroup(group);
  if (failed(source))
    return failure();
  if (auto it = kernelByEntry.find(source->entry); it != kernelByEntry.end())
    return it->second;
  if (failed(dumpKernel(group, source->entry + ".cu", source->source)))
    return failure();
  llvm::Expected<codegen::CompiledCudaKernel> compiled =
      codegen::compileCudaKernel(source->source, source->entry);
  if (!compiled)
    return group.emitError() << llvm::toString(compiled.takeError());
  plan::Kernel *kernel = plan.add_kernels();
  kernel->set_name(source->entry);
  kernel->set_backend(plan::Kernel::CUDA_CUBIN);
  kernel->set_entry(source->entry);
  kernel->set_source(source->source);
  kernel->set_image(std::move(compiled->cubin));
  kernel->set_ptx(std::move(compiled->ptx));
  kernel->set_content_hash(compiled->contentHash);
  kernel->set_target(codegen::kCudaArchitecture);
  kernel->set_registers(compiled->registers);
  kernel->set_spill_bytes(compiled->spillBytes);
  kernel->set_stack_bytes(compiled->stackBytes);
  kernel->set_grid_blocks(source->gridBlocks);
  kernel->set_block_threads(source->blockThreads);
  return kernelByEntry[source->entry] = plan.kernels_size() - 1;
}

LogicalResult PlanBuilder::lowerFusionGroup(FusionGroupOp group,
                                            plan::Step &step) {
  FailureOr<int> kernel = options.device == codegen::Device::Cuda
                              ? cudaKernel(group)
                              : cpuKernel(group);
  if (failed(kernel))
    return failure();
  plan::KernelLaunch *launch = step.mutable_launch();
  launch->set_kernel(*kernel);
  SmallVector<Value> values(group.getInputs());
  llvm::append_range(values, group.getResults());
  for (Value v : values) {
    FailureOr<int> id = bufferOf(v, group);
    if (failed(id))
      return failure();
    launch->add_buffers(*id);
  }
  launch->add_buffers(workspace);
  return success();
}

/// grad_norm: the gradients then the norm; the group whose members hold
/// blocks of them (an axis mask, 0 for none); grad_scale. adamw: param, grad,
/// exp_avg, exp_avg_sq, lr, step, grad_norm, then the three results (four
/// with the weights rounded to bf16); beta1, beta2, eps, weight_decay,
/// max_grad_norm, grad_scale.
LogicalResult PlanBuilder::lowerOptimizerOp(Operation *op,
                                            plan::LibraryCall &call) {
  call.set_function(isa<GradNormOp>(op) ? "grad_norm" : "adamw");
  SmallVector<Value> values(op->getOperands());
  llvm::append_range(values, op->getResults());
  for (Value v : values) {
    FailureOr<int> id = bufferOf(v, op);
    if (failed(id))
      return failure();
    call.add_buffers(*id);
  }
  if (auto adamw = dyn_cast<AdamWUpdateOp>(op)) {
    for (APFloat f : {adamw.getBeta1(), adamw.getBeta2(), adamw.getEps(),
                      adamw.getWeightDecay(), adamw.getMaxGradNorm()})
      call.add_floats(f.convertToDouble());
    call.add_floats(adamw.getGradScale().convertToFloat());
  } else {
    auto norm = cast<GradNormOp>(op);
    call.add_floats(norm.getGradScale().convertToFloat());
    int64_t mask = 0;
    if (norm.getMeshAttr()) {
      FailureOr<int64_t> group =
          groupMask(op, norm.getMeshAttr(), norm.getAxesAttr());
      if (failed(group))
        return failure();
      mask = *group;
    }
    call.add_ints(mask);
  }
  return success();
}

/// all_reduce, reduce_scatter, all_gather (all_gather_start when it is
/// prefetched), all_slice, all_to_all: x, result (all_gather and
/// all_to_all: then the workspace, their staging copies along inner
/// dimensions); the reduction (ReduceKind; the reductions only) and the group's
/// axis mask; then for all_gather and all_slice the dimension they join or
/// split, for all_to_all its split and concat dimensions, each followed by
/// the operand's rank and shape. reduce_scatter splits dim 0.
LogicalResult PlanBuilder::lowerCollective(Operation *op,
                                           plan::LibraryCall &call) {
  call.set_function(op->getName().stripDialect().str());
  auto mesh = op->getAttrOfType<MeshAttr>("mesh");
  auto dim = op->getAttrOfType<IntegerAttr>("dim");
  // ZeRO-3's prefetched gathers start and are waited for at their readers.
  if (isa<AllGatherOp>(op) && op->hasAttr("weft.prefetch") && dim.getInt() == 0)
    call.set_function("all_gather_start");
  if (isa<ReduceScatterOp>(op) && dim.getInt() != 0)
    return op->emitError("CPU reduce-scatter splits dim 0 only yet");
  std::optional<ReduceKind> kind;
  if (auto reduce = dyn_cast<AllReduceOp>(op))
    kind = reduce.getKind();
  if (auto scatter = dyn_cast<ReduceScatterOp>(op))
    kind = scatter.getKind();
  if (kind == ReduceKind::min)
    return op->emitError("a min reduction has no CPU collective yet");
  auto type = cast<RankedTensorType>(op->getOperand(0).getType());
  Type element = type.getElementType();
  if (kind && !element.isF32() && !element.isInteger(64))
    return op->emitError() << "reduces " << element
                           << "; CPU collectives reduce f32 and i64";
  FailureOr<int64_t> mask =
      groupMask(op, mesh, op->getAttrOfType<ArrayAttr>("axes"));
  if (failed(mask))
    return failure();
  for (Value v : {op->getOperand(0), Value(op->getResult(0))}) {
    FailureOr<int> id = bufferOf(v, op);
    if (failed(id))
      return failure();
    call.add_buffers(*id);
  }
  if (isa<AllGatherOp, AllToAllOp>(op))
    call.add_buffers(workspace);
  if (kind)
    call.add_ints(static_cast<int64_t>(*kind));
  call.add_ints(*mask);
  auto addShape = [&] {
    call.add_ints(type.getRank());
    for (int64_t size : type.getShape())
      call.add_ints(size);
  };
  if (isa<AllGatherOp, AllSliceOp>(op)) {
    call.add_ints(dim.getInt());
    addShape();
  } else if (auto exchange = dyn_cast<AllToAllOp>(op)) {
    call.add_ints(exchange.getSplitDim());
    call.add_ints(exchange.getConcatDim());
    addShape();
  }
  return success();
}

/// Transpose, slice and broadcast: a copy of the result's box out of a
/// strided view of the operand (see kernels::cpu::copyStrided).
LogicalResult PlanBuilder::lowerStridedCopy(Operation *op,
                                            plan::LibraryCall &call) {
  call.set_function("copy_strided");
  Value x = op->getOperand(0), y = op->getResult(0);
  ArrayRef<int64_t> in = cast<RankedTensorType>(x.getType()).getShape();
  ArrayRef<int64_t> out = cast<RankedTensorType>(y.getType()).getShape();
  if (out.size() > kernels::cpu::StridedCopy::kMaxRank)
    return op->emitError() << "has rank " << out.size()
                           << "; CPU copies take rank "
                           << kernels::cpu::StridedCopy::kMaxRank << " at most";
  SmallVector<int64_t> inStrides(in.size(), 1), outStrides(out.size(), 1);
  for (int d = static_cast<int>(in.size()) - 2; d >= 0; --d)
    inStrides[d] = inStrides[d + 1] * in[d + 1];
  for (int d = static_cast<int>(out.size()) - 2; d >= 0; --d)
    outStrides[d] = outStrides[d + 1] * out[d + 1];
  int64_t srcOffset = 0;
  SmallVector<int64_t> srcStrides(out.size(), 0);
  if (auto transpose = dyn_cast<TransposeOp>(op)) {
    for (auto [d, from] : llvm::enumerate(transpose.getPermutation()))
      srcStrides[d] = inStrides[from];
  } else if (auto slice = dyn_cast<SliceOp>(op)) {
    for (size_t d = 0; d < in.size(); ++d) {
      srcOffset += slice.getStart()[d] * inStrides[d];
      srcStrides[d] = slice.getStride()[d] * inStrides[d];
    }
  } else {
    auto broadcast = cast<BroadcastOp>(op);
    for (auto [j, d] : llvm::enumerate(broadcast.getDims()))
      srcStrides[d] = in[j] == 1 ? 0 : inStrides[j];
  }
  for (Value v : {x, y}) {
    FailureOr<int> id = bufferOf(v, op);
    if (failed(id))
      return failure();
    call.add_buffers(*id);
  }
  call.add_ints(elementBytes(x.getType()));
  call.add_ints(static_cast<int64_t>(out.size()));
  call.add_ints(srcOffset);
  call.add_ints(0);
  for (ArrayRef<int64_t> values :
       {out, ArrayRef<int64_t>(srcStrides), ArrayRef<int64_t>(outStrides)})
    for (int64_t v : values)
      call.add_ints(v);
  return success();
}

LogicalResult PlanBuilder::lowerOp(Operation *op, plan::Step &step) {
  if (auto group = dyn_cast<FusionGroupOp>(op))
    return lowerFusionGroup(group, step);
  if (isa<GradNormOp, AdamWUpdateOp>(op))
    return lowerOptimizerOp(op, *step.mutable_call());
  if (isa<AllReduceOp, ReduceScatterOp, AllGatherOp, AllSliceOp, AllToAllOp>(
          op))
    return lowerCollective(op, *step.mutable_call());
  // Device ↔ host copies (any element type): src, dst; bytes.
  if (isa<OffloadOp, ReloadOp>(op)) {
    plan::LibraryCall *call = step.mutable_call();
    call->set_function(isa<OffloadOp>(op) ? "offload" : "reload");
    for (Value v : {op->getOperand(0), Value(op->getResult(0))}) {
      FailureOr<int> id = bufferOf(v, op);
      if (failed(id))
        return failure();
      call->add_buffers(*id);
    }
    call->add_ints(
        tensorBytes(cast<RankedTensorType>(op->getResultTypes()[0])));
    return success();
  }
  // linear, grouped_linear, matmul, attention and its backward, and rope
  // run bf16 as it is: weft-legalize-cpu-types leaves them bf16 only when
  // all their floats are.
  const bool bf16AsIs =
      isa<LinearOp, GroupedLinearOp, MatmulOp, AttentionOp, AttentionGradOp,
          RopeOp>(op) &&
      cast<RankedTensorType>(op->getResultTypes()[0]).getElementType().isBF16();
  // cross_entropy reads bf16 logits as they are (its loss is f32).
  const bool bf16Logits =
      isa<CrossEntropyOp>(op) &&
      cast<CrossEntropyOp>(op).getLogits().getType().getElementType().isBF16();
  // Data movement takes any element type; the rest computes in f32.
  if (!bf16AsIs && !bf16Logits &&
      !isa<GatherOp, IotaOp, TransposeOp, SliceOp, BroadcastOp, ConcatOp,
           MoeDispatchOp>(op) &&
      failed(requireF32(op)))
    return failure();
  // Integer arithmetic has no CPU kernels yet.
  if (isa<MatmulOp, ReduceOp, ScatterAddOp>(op) && !bf16AsIs)
    for (Type type : op->getResultTypes())
      if (!cast<RankedTensorType>(type).getElementType().isF32())
        return op->emitError() << "computes in "
                               << cast<RankedTensorType>(type).getElementType()
                               << "; the CPU backend runs it in f32 only";
  plan::LibraryCall *call = step.mutable_call();
  auto use = [&](Value v) -> LogicalResult {
    if (!v) {
      call->add_buffers(-1);
      return success();
    }
    FailureOr<int> id = bufferOf(v, op);
    if (failed(id))
      return failure();
    call->add_buffers(*id);
    return success();
  };
  auto ints = [&](std::initializer_list<int64_t> values) {
    for (int64_t v : values)
      call->add_ints(v);
  };
  auto shape = [](Value v) {
    return cast<RankedTensorType>(v.getType()).getShape();
  };

  if (auto linear = dyn_cast<LinearOp>(op)) {
    call->set_function(bf16AsIs ? "linear_bf16" : "linear");
    int64_t in = shape(linear.getWeight())[1],
            out = shape(linear.getWeight())[0];
    if (failed(use(linear.getX())) || failed(use(linear.getWeight())) ||
        failed(use(linear.getBias())) || failed(use(linear.getResult())))
      return failure();
    if (bf16AsIs)
      call->add_buffers(workspace);
    ints({product(shape(linear.getX())) / in, in, out});
    return success();
  }
  if (auto matmul = dyn_cast<MatmulOp>(op)) {
    call->set_function(bf16AsIs ? "matmul_bf16" : "matmul");
    ArrayRef<int64_t> result = shape(matmul.getResult()),
                      lhs = shape(matmul.getLhs());
    int64_t m = result[result.size() - 2], n = result.back();
    int64_t k = lhs[lhs.size() - (matmul.getTransposeLhs() ? 2 : 1)];
    int64_t batch = product(result.drop_back(2));
    bool sharedRhs = shape(matmul.getRhs()).size() == 2 && result.size() > 2;
    if (failed(use(matmul.getLhs())) || failed(use(matmul.getRhs())) ||
        failed(use(matmul.getAcc())) || failed(use(matmul.getResult())))
      return failure();
    if (bf16AsIs)
      call->add_buffers(workspace);
    ints({batch, m, n, k, matmul.getTransposeLhs(), matmul.getTransposeRhs(),
          sharedRhs ? 0 : k * n});
    return success();
  }
  if (auto attention = dyn_cast<AttentionOp>(op)) {
    call->set_function(bf16AsIs ? "attention_bf16" : "attention");
    ArrayRef<int64_t> q = shape(attention.getQ()), k = shape(attention.getK());
    if (failed(use(attention.getQ())) || failed(use(attention.getK())) ||
        failed(use(attention.getV())) || failed(use(attention.getMask())) ||
        failed(use(attention.getAlibiSlopes())) ||
        failed(use(attention.getResult())))
      return failure();
    call->add_buffers(workspace);
    if (failed(use(attention.getLse()))) // -1 without with_lse
      return failure();
    bool maskPerBatch =
        attention.getMask() && shape(attention.getMask()).size() == 3;
    ints({q[0], q[1], k[1], q[2], k[2], q[3], shape(attention.getV())[3],
          static_cast<int64_t>(attention.getKind()), maskPerBatch,
          attention.getWindow().value_or(0)});
    call->add_floats(attention.getScaleOrDefault());
    return success();
  }
  if (auto grad = dyn_cast<AttentionGradOp>(op)) {
    call->set_function(bf16AsIs ? "attention_grad_bf16" : "attention_grad");
    ArrayRef<int64_t> q = shape(grad.getQ()), k = shape(grad.getK());
    for (Value v : {grad.getQ(), grad.getK(), grad.getV(), grad.getOut(),
                    grad.getDout(), grad.getMask(), grad.getAlibiSlopes(),
                    grad.getDq(), grad.getDk(), grad.getDv()})
      if (failed(use(v)))
        return failure();
    call->add_buffers(workspace);
    if (failed(use(grad.getLse()))) // -1: the backward computes it
      return failure();
    bool maskPerBatch = grad.getMask() && shape(grad.getMask()).size() == 3;
    ints({q[0], q[1], k[1], q[2], k[2], q[3], shape(grad.getV())[3],
          static_cast<int64_t>(grad.getKind()), maskPerBatch,
          grad.getWindow().value_or(0)});
    call->add_floats(grad.getScaleOrDefault());
    return success();
  }
  if (auto rope = dyn_cast<RopeOp>(op)) {
    call->set_function(bf16AsIs ? "rope_bf16" : "rope");
    ArrayRef<int64_t> x = shape(rope.getX());
    if (failed(use(rope.getX())) || failed(use(rope.getPositions())) ||
        failed(use(rope.getResult())))
      return failure();
    ints({x[0], x[1], x[2], x[3], rope.getInterleaved()});
    call->add_floats(rope.getTheta().convertToDouble());
    if (std::optional<ArrayRef<double>> frequencies = rope.getFrequencies())
      for (double f : *frequencies)
        call->add_floats(f);
    return success();
  }
  if (isa<SoftmaxOp, LogSoftmaxOp>(op)) {
    call->set_function("softmax");
    int64_t dim = op->getAttrOfType<IntegerAttr>("dim").getInt();
    ArrayRef<int64_t> x = shape(op->getOperand(0));
    if (failed(use(op->getOperand(0))) || failed(use(op->getResult(0))))
      return failure();
    ints({product(x.take_front(dim)), x[dim], product(x.drop_front(dim + 1)),
          isa<LogSoftmaxOp>(op)});
    return success();
  }
  if (auto gather = dyn_cast<GatherOp>(op)) {
    call->set_function("gather");
    ArrayRef<int64_t> table = shape(gather.getTable());
    int64_t axis = gather.getAxis();
    if (failed(use(gather.getTable())) || failed(use(gather.getIndices())) ||
        failed(use(gather.getResult())))
      return failure();
    ints({product(table.take_front(axis)), table[axis],
          product(table.drop_front(axis + 1)),
          product(shape(gather.getIndices()))});
    return success();
  }
  if (auto loss = dyn_cast<CrossEntropyOp>(op)) {
    call->set_function(bf16Logits ? "cross_entropy_bf16" : "cross_entropy");
    ArrayRef<int64_t> logits = shape(loss.getLogits());
    if (failed(use(loss.getLogits())) || failed(use(loss.getLabels())) ||
        failed(use(loss.getResult())))
      return failure();
    ints({product(logits.drop_back()), logits.back(), loss.getIgnoreIndex(),
          static_cast<int64_t>(loss.getReduction())});
    return success();
  }
  if (isa<TransposeOp, SliceOp, BroadcastOp>(op))
    return lowerStridedCopy(op, *call);
  if (auto concat = dyn_cast<ConcatOp>(op)) {
    call->set_function("concat");
    ArrayRef<int64_t> result = shape(concat.getResult());
    const int64_t dim = concat.getDim();
    for (Value input : concat.getInputs())
      if (failed(use(input)))
        return failure();
    if (failed(use(concat.getResult())))
      return failure();
    call->add_ints(product(result.take_front(dim)));
    for (Value input : concat.getInputs())
      call->add_ints(product(shape(input).drop_front(dim)) *
                     elementBytes(input.getType()));
    return success();
  }
  if (auto reduce = dyn_cast<ReduceOp>(op)) {
    call->set_function("reduce");
    ArrayRef<int64_t> x = shape(reduce.getX());
    if (failed(use(reduce.getX())) || failed(use(reduce.getResult())))
      return failure();
    ints({static_cast<int64_t>(reduce.getKind()),
          static_cast<int64_t>(x.size())});
    for (int64_t d : x)
      call->add_ints(d);
    for (int64_t d = 0; d < static_cast<int64_t>(x.size()); ++d)
      call->add_ints(llvm::is_contained(reduce.getDims(), d));
    return success();
  }
  if (auto scatter = dyn_cast<ScatterAddOp>(op)) {
    call->set_function("scatter_add");
    ArrayRef<int64_t> base = shape(scatter.getBase());
    int64_t axis = scatter.getAxis();
    if (failed(use(scatter.getBase())) || failed(use(scatter.getIndices())) ||
        failed(use(scatter.getUpdates())) || failed(use(scatter.getResult())))
      return failure();
    ints({product(base.take_front(axis)), base[axis],
          product(base.drop_front(axis + 1)),
          product(shape(scatter.getIndices()))});
    return success();
  }
  if (auto gate = dyn_cast<MoeGateOp>(op)) {
    call->set_function("moe_gate");
    ArrayRef<int64_t> logits = shape(gate.getLogits());
    if (failed(use(gate.getLogits())) || failed(use(gate.getWeights())) ||
        failed(use(gate.getExperts())))
      return failure();
    ints({product(logits.drop_back()), logits.back(), gate.getTopK(),
          gate.getNormalize()});
    return success();
  }
  if (auto dispatch = dyn_cast<MoeDispatchOp>(op)) {
    call->set_function("moe_dispatch");
    ArrayRef<int64_t> experts = shape(dispatch.getExperts());
    if (failed(use(dispatch.getX())) || failed(use(dispatch.getExperts())) ||
        failed(use(dispatch.getRows())) || failed(use(dispatch.getOffsets())))
      return failure();
    ints({experts[0], experts[1], dispatch.getNumExperts(),
          shape(dispatch.getX())[1] * elementBytes(dispatch.getX().getType())});
    return success();
  }
  if (auto grouped = dyn_cast<GroupedLinearOp>(op)) {
    call->set_function(bf16AsIs ? "grouped_linear_bf16" : "grouped_linear");
    if (failed(use(grouped.getX())) || failed(use(grouped.getOffsets())))
      return failure();
    for (Value w : grouped.getWeights())
      if (failed(use(w)))
        return failure();
    if (failed(use(grouped.getResult())))
      return failure();
    if (bf16AsIs)
      call->add_buffers(workspace);
    ArrayRef<int64_t> w = shape(grouped.getWeights().front());
    ints({static_cast<int64_t>(grouped.getWeights().size()), w[1], w[0]});
    return success();
  }
  if (auto combine = dyn_cast<MoeCombineOp>(op)) {
    call->set_function("moe_combine");
    ArrayRef<int64_t> weights = shape(combine.getWeights());
    if (failed(use(combine.getRows())) || failed(use(combine.getWeights())) ||
        failed(use(combine.getExperts())) || failed(use(combine.getResult())))
      return failure();
    ints({weights[0], weights[1], combine.getNumExperts(),
          shape(combine.getRows())[1]});
    return success();
  }
  if (auto iota = dyn_cast<IotaOp>(op)) {
    if (!iota.getType().getElementType().isInteger(64))
      return op->emitError("iota produces i64 only on the CPU for now");
    call->set_function("iota");
    ArrayRef<int64_t> y = shape(iota.getResult());
    int64_t dim = iota.getDim();
    if (failed(use(iota.getResult())))
      return failure();
    ints({product(y.take_front(dim)), y[dim], product(y.drop_front(dim + 1))});
    return success();
  }
  return op->emitError() << "has no CPU lowering yet";
}

LogicalResult PlanBuilder::addProgram(func::FuncOp entry,
                                      const std::string &name) {
  func = entry;
  program = name;
  buffers.clear();
  updateNames.clear();
  for (StringRef attr :
       {"weft.arena_bytes", "weft.workspace_bytes", "weft.workspace_per_thread",
        "weft.parameter_bytes", "weft.constant_bytes", "weft.threads",
        "weft.activation_bytes"})
    if (!func->getAttrOfType<IntegerAttr>(attr))
      return func.emitError()
             << "has no '" << attr
             << "'; run the bufferize phase before code generation";
  const char *device = options.device == codegen::Device::Cuda ? "cuda" : "cpu";
  if (auto planned = func->getAttrOfType<StringAttr>("weft.device");
      !planned || planned.getValue() != device)
    return func.emitError()
           << "has its workspace planned for "
           << (planned ? planned.getValue() : StringRef("no device"))
           << ", not " << device << " (weft-assign-buffers{device=" << device
           << "})";
  const bool first = program.empty();
  if (first) {
    plan.set_model(options.model);
    plan.set_device(device);
    plan.set_strategy("single rank");
    plan.set_threads(static_cast<int>(funcAttr("weft.threads")));
  } else if (plan.threads() != funcAttr("weft.threads")) {
    return func.emitError()
           << "is planned for " << funcAttr("weft.threads")
           << " threads, the main program for " << plan.threads();
  }
  // Programs run one at a time: the arena is the largest of theirs, the
  // constants are laid one after another.
  plan::Memory *memory = plan.mutable_memory();
  memory->set_parameters(
      std::max(memory->parameters(), funcAttr("weft.parameter_bytes")));
  memory->set_activations(
      std::max(memory->activations(), funcAttr("weft.activation_bytes")));
  memory->set_workspace(
      std::max(memory->workspace(), funcAttr("weft.workspace_bytes")));
  memory->set_arena(std::max(memory->arena(), funcAttr("weft.arena_bytes")));
  if (auto host = func->getAttrOfType<IntegerAttr>("weft.host_bytes"))
    memory->set_host(std::max(memory->host(), host.getInt()));
  constantBase = memory->constants();
  memory->set_constants(constantBase + funcAttr("weft.constant_bytes"));
  plan.mutable_constants()->resize(memory->constants(), '\0');

  plan::Buffer *ws = plan.add_buffers();
  ws->set_name("workspace");
  ws->set_region(plan::ARENA);
  ws->set_offset(funcAttr("weft.activation_bytes"));
  ws->set_bytes(funcAttr("weft.workspace_bytes"));
  ws->set_dtype(plan::I8);
  ws->add_shape(funcAttr("weft.workspace_bytes"));
  workspace = plan.buffers_size() - 1;

  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  for (auto [i, value] : llvm::enumerate(ret.getOperands()))
    if (auto update = func.getResultAttrOfType<StringAttr>(
            i, WeftDialect::kUpdateAttrName)) {
      updateNames[value] = update.str();
      // A reshape's operand may hold the memory (the bufferizer's choice).
      if (auto reshape = value.getDefiningOp<ReshapeOp>())
        updateNames[reshape.getOperand()] = update.str();
    }

  for (BlockArgument arg : func.getArguments()) {
    FailureOr<int> id = bufferOf(arg, func);
    if (failed(id))
      return failure();
    if (auto param = func.getArgAttrOfType<StringAttr>(
            arg.getArgNumber(), WeftDialect::kParamAttrName)) {
      // Every program sees a parameter at the same place.
      auto [known, added] = parameterOffsets.try_emplace(
          param.getValue(), plan.buffers(*id).offset());
      if (!added && known->second != plan.buffers(*id).offset())
        return func.emitError() << "holds parameter '" << param.getValue()
                                << "' at another offset than the main program";
      if (!added)
        continue;
      plan::Binding *binding = plan.add_parameters();
      binding->set_name(param.str());
      binding->set_buffer(*id);
      if (auto shard = func.getArgAttrOfType<DictionaryAttr>(
              arg.getArgNumber(), "weft.param_shard"))
        setShard(*binding, shard);
    } else if (plan.buffers(*id).region() == plan::STATE) {
      bool known = llvm::any_of(plan.state(), [&](const plan::Binding &b) {
        return b.name() == plan.buffers(*id).name();
      });
      if (known)
        continue;
      plan::Binding *binding = plan.add_state();
      binding->set_name(plan.buffers(*id).name());
      binding->set_buffer(*id);
      if (auto shard = func.getArgAttrOfType<DictionaryAttr>(
              arg.getArgNumber(), "weft.state_shard"))
        setShard(*binding, shard);
    } else {
      plan::Binding *binding = plan.add_inputs();
      binding->set_name(plan.buffers(*id).name());
      binding->set_buffer(*id);
      binding->set_program(program);
    }
  }

  plan::Stream *stream = plan.add_streams();
  stream->set_name(first ? "compute" : program);
  stream->set_program(program);
  plan::Cost *cost = plan.mutable_cost();
  for (Operation &op : body) {
    if (op.hasTrait<OpTrait::IsTerminator>()) {
      for (auto [i, value] : llvm::enumerate(ret.getOperands())) {
        if (isa<BlockArgument>(value))
          return ret.emitError() << "returns argument "
                                 << cast<BlockArgument>(value).getArgNumber()
                                 << " itself; CPU plans return computed values";
        FailureOr<int> id = bufferOf(value, ret);
        if (failed(id))
          return failure();
        if (updateNames.count(value)) {
          plan::Region region = plan.buffers(*id).region();
          if (region != plan::PARAMETERS && region != plan::STATE)
            return ret.emitError()
                   << "result " << i << " updates '" << updateNames[value]
                   << "' but was not given its memory; run the bufferize "
                      "phase before code generation";
          continue;
        }
        auto name = func.getResultAttrOfType<StringAttr>(
            i, WeftDialect::kOutputAttrName);
        plan::Binding *binding = plan.add_outputs();
        binding->set_name(name ? name.str() : "result" + std::to_string(i));
        binding->set_buffer(*id);
        binding->set_program(program);
      }
      continue;
    }
    if (auto opCost = dyn_cast<CostOpInterface>(op)) {
      OpCost c = opCost.getCost();
      cost->set_flops(cost->flops() + c.flops);
      cost->set_memory_bytes(cost->memory_bytes() + c.memoryBytes);
      cost->set_comm_bytes(cost->comm_bytes() + c.commBytes);
      cost->set_transfer_bytes(cost->transfer_bytes() + c.transferBytes);
    }
    if (isa<ReshapeOp>(op)) // a view: its buffer is its operand's
      continue;
    if (auto constant = dyn_cast<ConstantOp>(op)) {
      if (failed(writeConstant(constant)))
        return failure();
      continue;
    }
    plan::Step step;
    step.set_name(nameOf(op.getLoc()));
    if (step.name().empty())
      step.set_name(op.getName().stripDialect().str());
    if (auto live = op.getAttrOfType<IntegerAttr>("weft.live_bytes"))
      step.set_live_bytes(live.getInt());
    if (failed(lowerOp(&op, step)))
      return failure();
    for (Value result : op.getResults()) {
      FailureOr<int> id = bufferOf(result, &op);
      if (failed(id))
        return failure();
      step.add_writes(*id);
    }
    *stream->add_steps() = std::move(step);
  }
  memory->set_peak(memory->parameters() + memory->arena() +
                   memory->constants() + memory->state());
  return success();
}

FailureOr<plan::Plan> weft::codegen::buildPlan(ModuleOp module,
                                               const PlanOptions &options) {
  func::FuncOp entry = findEntryFunction(module);
  if (!entry)
    return module.emitError("needs a @forward or @train_step function (or a "
                            "single function)");
  PlanBuilder builder(options);
  if (failed(builder.addProgram(entry, "")))
    return failure();
  for (auto func : module.getOps<func::FuncOp>())
    if (func != entry && failed(builder.addProgram(func, func.getName().str())))
      return failure();
  plan::Plan plan = builder.take();
  // The mesh the collectives run on, and the strategy that made it.
  if (auto mesh = module->getAttrOfType<MeshAttr>("weft.mesh")) {
    std::string strategy;
    for (MeshAxisAttr axis : mesh.getAxes()) {
      plan::MeshAxis *out = plan.add_mesh();
      out->set_name(axis.getName().str());
      out->set_size(axis.getSize());
      strategy += (strategy.empty() ? "" : ", ") + axis.getName().str() + "=" +
                  std::to_string(axis.getSize());
    }
    plan.set_strategy(strategy);
  }
  // weft-optimizer's settings.
  if (auto settings = module->getAttrOfType<DictionaryAttr>("weft.optimizer")) {
    plan::Optimizer *o = plan.mutable_optimizer();
    auto number = [&](StringRef key) {
      auto value = settings.getAs<FloatAttr>(key);
      return value ? value.getValueAsDouble() : 0.0;
    };
    if (auto kind = settings.getAs<StringAttr>("kind"))
      o->set_kind(kind.str());
    o->set_beta1(number("beta1"));
    o->set_beta2(number("beta2"));
    o->set_eps(number("eps"));
    o->set_weight_decay(number("weight_decay"));
    o->set_max_grad_norm(number("max_grad_norm"));
    if (auto k = settings.getAs<IntegerAttr>("accumulation"))
      o->set_accumulation(static_cast<int32_t>(k.getInt()));
    if (auto exempt = settings.getAs<ArrayAttr>("no_decay"))
      for (auto pattern : exempt.getAsRange<StringAttr>())
        o->add_no_decay(pattern.str());
  }
  return plan;
}
