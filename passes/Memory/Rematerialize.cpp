// weft-rematerialize: activation checkpointing (see Passes.td).
#include "passes/Memory/Passes.h"

#include "passes/Memory/Forward.h"
#include "passes/Partition/Prefetch.h"
#include "passes/Schedule/Passes.h"

#include "ir/WeftDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/boykov_kolmogorov_max_flow.hpp>

#include <functional>
#include <map>
#include <queue>

namespace weft {
#define GEN_PASS_DEF_REMATERIALIZE
#include "passes/Memory/Passes.h.inc"
} // namespace weft

using namespace mlir;
using namespace weft;

namespace {
/// The layer index in an op's name (`model.layers.N.…`, `transformer.h.N.…`),
/// or -1.
int64_t layerOf(Location loc) {
  if (auto fused = dyn_cast<FusedLoc>(loc)) {
    for (Location inner : fused.getLocations())
      if (int64_t layer = layerOf(inner); layer >= 0)
        return layer;
    return -1;
  }
  auto name = dyn_cast<NameLoc>(loc);
  if (!name)
    return -1;
  StringRef text = name.getName().strref();
  for (StringRef prefix : {"model.layers.", "transformer.h."}) {
    size_t at = text.find(prefix);
    if (at == StringRef::npos)
      continue;
    int64_t layer;
    if (!text.drop_front(at + prefix.size())
             .take_while([](char c) { return c >= '0' && c <= '9'; })
             .getAsInteger(10, layer))
      return layer;
  }
  return -1;
}

/// Ops never recomputed: their FLOPs are the step's.
bool isHeavy(Operation *op) {
  return isa<LinearOp, MatmulOp, AttentionOp, GroupedLinearOp>(op);
}

int64_t resultBytes(Operation *op) {
  int64_t bytes = 0;
  for (Type type : op->getResultTypes())
    bytes += tensorBytes(type);
  return bytes;
}

using Traits =
    boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
using FlowGraph = boost::adjacency_list<
    boost::vecS, boost::vecS, boost::directedS,
    boost::property<
        boost::vertex_index_t, long,
        boost::property<
            boost::vertex_color_t, boost::default_color_type,
            boost::property<boost::vertex_distance_t, long,
                            boost::property<boost::vertex_predecessor_t,
                                            Traits::edge_descriptor>>>>,
    boost::property<boost::edge_capacity_t, long,
                    boost::property<boost::edge_residual_capacity_t, long,
                                    boost::property<boost::edge_reverse_t,
                                                    Traits::edge_descriptor>>>>;

struct Rematerialize : public weft::impl::RematerializeBase<Rematerialize> {
  using RematerializeBase::RematerializeBase;

  func::ReturnOp ret;
  llvm::DenseSet<Operation *> forward;
  /// The parameter gathers recomputation added (see recompute).
  llvm::DenseSet<Operation *> gatheredAgain;

  /// A use by the backward: neither the forward nor the function's return.
  bool isBackwardUse(OpOperand &use) {
    Operation *user = use.getOwner();
    return user != ret.getOperation() && !forward.contains(user);
  }
  bool hasBackwardUse(Operation *op) {
    for (Value result : op->getResults())
      for (OpOperand &use : result.getUses())
        if (isBackwardUse(use))
          return true;
    return false;
  }

  /// Bytes of the forward values the backward reads (a loss tile's are
  /// made right before its backward).
  int64_t savedBytes(Block &body) {
    int64_t bytes = 0;
    for (Operation &op : body)
      if (forward.contains(&op) && !isa<ConstantOp>(op) &&
          !op.hasAttr(kLossTileAttr))
        for (Value result : op.getResults())
          if (llvm::any_of(result.getUses(),
                           [&](OpOperand &u) { return isBackwardUse(u); }))
            bytes += tensorBytes(result.getType());
    return bytes;
  }

  /// The forward ops of `layer` that may be recomputed: none whose result
  /// another layer's forward (or a layerless op) reads, no constants.
  SmallVector<Operation *> candidates(ArrayRef<Operation *> layerOps) {
    llvm::DenseSet<Operation *> inLayer(layerOps.begin(), layerOps.end());
    SmallVector<Operation *> out;
    for (Operation *op : layerOps) {
      if (isa<ConstantOp>(op))
        continue;
      bool readElsewhere = false;
      for (Value result : op->getResults())
        for (Operation *user : result.getUsers())
          readElsewhere |= forward.contains(user) && !inLayer.contains(user);
      if (!readElsewhere)
        out.push_back(op);
    }
    return out;
  }

  /// The candidates a minimum cut leaves on the backward's side.
  SmallVector<Operation *> minCut(ArrayRef<Operation *> ops) {
    const long kInfinity = 1L << 50;
    FlowGraph graph;
    auto capacity = boost::get(boost::edge_capacity, graph);
    auto reverse = boost::get(boost::edge_reverse, graph);
    auto residual = boost::get(boost::edge_residual_capacity, graph);
    auto addEdge = [&](long from, long to, long c) {
      auto e = boost::add_edge(from, to, graph).first;
      auto r = boost::add_edge(to, from, graph).first;
      capacity[e] = c;
      capacity[r] = 0;
      reverse[e] = r;
      reverse[r] = e;
    };
    const long source = 0, sink = 1;
    long next = 2;
    llvm::DenseMap<Operation *, long> in;
    for (Operation *op : ops) {
      in[op] = next; // its out is in + 1
      next += 2;
    }
    // A value the layer reads from outside (an earlier layer's output, a
    // parameter, a constant) is kept anyway: a node that costs nothing to
    // save, on the source's side.
    llvm::DenseMap<Value, long> outside;
    auto outsideNode = [&](Value v) {
      auto [it, added] = outside.try_emplace(v, next);
      if (added) { // (adding an edge adds its vertices)
        addEdge(source, next, kInfinity);
        addEdge(next, next + 1, 0);
        next += 2;
      }
      return it->second;
    };
    for (Operation *op : ops) {
      long node = in[op];
      addEdge(node, node + 1, resultBytes(op) + 1);
      if (isHeavy(op))
        addEdge(source, node, kInfinity); // computed in the forward only
      for (Value operand : op->getOperands()) {
        Operation *producer = operand.getDefiningOp();
        auto it = producer ? in.find(producer) : in.end();
        addEdge((it != in.end() ? it->second : outsideNode(operand)) + 1, node,
                kInfinity);
      }
      if (hasBackwardUse(op))
        addEdge(node + 1, sink, kInfinity);
    }
    boost::boykov_kolmogorov_max_flow(graph, source, sink);
    // The source's side: what the residual graph still reaches.
    std::vector<bool> reached(boost::num_vertices(graph), false);
    std::queue<long> queue;
    queue.push(source);
    reached[source] = true;
    while (!queue.empty()) {
      long v = queue.front();
      queue.pop();
      for (auto [e, end] = boost::out_edges(v, graph); e != end; ++e) {
        long w = boost::target(*e, graph);
        if (!reached[w] && residual[*e] > 0) {
          reached[w] = true;
          queue.push(w);
        }
      }
    }
    SmallVector<Operation *> recomputed;
    for (Operation *op : ops)
      if (!reached[in[op]])
        recomputed.push_back(op);
    return recomputed;
  }

  /// Whether `value` is a ZeRO-3 parameter gathered whole: its gather, with
  /// the slices, reshapes and converts that make the parameter's shape of it.
  static bool isGatheredParameter(Value value) {
    Operation *op = value.getDefiningOp();
    return gathersParameter(op) ||
           (isa_and_nonnull<SliceOp, ReshapeOp, ConvertOp>(op) &&
            isGatheredParameter(op->getOperand(0)));
  }

  /// Recomputes `ops` (forward ops of one layer, in block order) right
  /// before the first backward op that reads one of them; the backward then
  /// reads the copies. A parameter a copy reads gathered (ZeRO-3) is gathered
  /// again for it, as DeepSpeed's recomputation does: the forward's gather
  /// dies at its forward reader instead of living on to the backward.
  void recompute(ArrayRef<Operation *> ops) {
    llvm::DenseSet<Operation *> chosen(ops.begin(), ops.end());
    // What the backward needs of them, with what those need of them.
    llvm::SetVector<Operation *> needed;
    SmallVector<Operation *> work;
    for (Operation *op : ops)
      if (hasBackwardUse(op))
        work.push_back(op);
    while (!work.empty()) {
      Operation *op = work.pop_back_val();
      if (!needed.insert(op))
        continue;
      for (Value operand : op->getOperands())
        if (Operation *producer = operand.getDefiningOp();
            producer && chosen.contains(producer))
          work.push_back(producer);
    }
    if (needed.empty())
      return;
    SmallVector<Operation *> ordered(needed.begin(), needed.end());
    llvm::sort(ordered, [](Operation *a, Operation *b) {
      return a->isBeforeInBlock(b);
    });
    Operation *first = nullptr;
    for (Operation *op : ordered)
      for (Value result : op->getResults())
        for (OpOperand &use : result.getUses())
          if (isBackwardUse(use) &&
              (!first || use.getOwner()->isBeforeInBlock(first)))
            first = use.getOwner();
    OpBuilder b(first);
    IRMapping mapping;
    llvm::DenseSet<Operation *> copies;
    std::function<void(Value)> gatherAgain = [&](Value value) {
      Operation *op = value.getDefiningOp();
      if (mapping.contains(value) || !op)
        return;
      for (Value operand : op->getOperands())
        gatherAgain(operand);
      Operation *copy = b.clone(*op, mapping);
      if (isa<AllGatherOp>(copy))
        gatheredAgain.insert(copy);
      copies.insert(copy);
    };
    for (Operation *op : ordered) {
      for (Value operand : op->getOperands())
        if (!needed.contains(operand.getDefiningOp()) &&
            isGatheredParameter(operand))
          gatherAgain(operand);
      copies.insert(b.clone(*op, mapping));
    }
    for (Operation *op : ordered)
      for (Value result : op->getResults())
        for (OpOperand &use : llvm::make_early_inc_range(result.getUses()))
          if (isBackwardUse(use) && !copies.contains(use.getOwner()))
            use.set(mapping.lookup(result));
  }

  /// Forward elementwise ops whose inputs the backward reads anyway and
  /// whose every backward reader is elementwise too (SwiGLU's silu(gate),
  /// read by its gradient's products): recomputed in the backward, where
  /// the copy joins its readers' kernel, instead of saved.
  void recomputeElementwise(Block &body) {
    // What weft-form-fusion-groups fuses, elementwise.
    auto fusible = [](Operation *op) {
      return isRowKernelOp(op) && op->hasTrait<OpTrait::Elementwise>();
    };
    auto saved = [&](Value value) {
      Operation *def = value.getDefiningOp();
      return !def || isa<ConstantOp>(def) || hasBackwardUse(def);
    };
    SmallVector<Operation *> ops;
    for (Operation &op : body)
      if (forward.contains(&op) && fusible(&op))
        ops.push_back(&op);
    // (One at a time: an input recomputed before is no longer saved.)
    for (Operation *op : ops)
      if (hasBackwardUse(op) && llvm::all_of(op->getOperands(), saved) &&
          llvm::all_of(op->getUses(), [&](OpOperand &use) {
            return !isBackwardUse(use) || fusible(use.getOwner());
          }))
        recompute(op);
  }

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    Block &body = func.getBody().front();
    ret = cast<func::ReturnOp>(body.getTerminator());
    if (policy != "none" && policy != "full" && policy != "selective" &&
        policy != "mincut" && policy != "auto") {
      func.emitError("weft-rematerialize: policy is '")
          << policy << "'; expected none, full, selective, mincut or auto";
      return signalPassFailure();
    }
    forward = forwardOps(func);
    recomputeElementwise(body);
    std::map<int64_t, SmallVector<Operation *>> layers;
    for (Operation &op : body)
      if (forward.contains(&op))
        if (int64_t layer = layerOf(op.getLoc()); layer >= 0)
          layers[layer].push_back(&op);

    auto apply = [&](StringRef how) {
      for (auto &[layer, ops] : layers) {
        if (policy == "auto" && savedBytes(body) <= budget)
          return;
        SmallVector<Operation *> chosen = candidates(ops);
        if (how == "selective")
          llvm::erase_if(chosen, isHeavy);
        else if (how == "mincut")
          chosen = minCut(chosen);
        recompute(chosen);
      }
    };
    if (policy == "auto") {
      // The cheapest recomputation first; whole layers only when that is
      // not enough.
      apply("mincut");
      apply("full");
    } else if (policy != "none") {
      apply(policy);
    }
    // Prefetched as weft-data-parallel's gathers are.
    prefetchGathers(func, [&](Operation *gather) {
      return gatheredAgain.contains(gather);
    });
    func->setAttr("weft.saved_bytes",
                  OpBuilder(func).getI64IntegerAttr(savedBytes(body)));
  }
};
} // namespace
