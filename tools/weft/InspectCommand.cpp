// weft inspect: what a model holds and what one forward step costs.
#include "Commands.h"
#include "Format.h"
#include "ModelLoader.h"

#include "ir/WeftDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

using namespace mlir;
using namespace weft;
using namespace weft::cli;

namespace {
/// Op families in the order they are printed (DESIGN.md, "The IR").
constexpr const char *kFamilies[] = {
    "linear algebra", "elementwise", "reduction",    "shape",
    "transformer",    "collective",  "quantization", "memory",
};

StringRef familyOf(Operation *op) {
  static const llvm::StringMap<StringRef> families = [] {
    llvm::StringMap<StringRef> m;
    auto add = [&](StringRef family, std::initializer_list<StringRef> names) {
      for (StringRef name : names)
        m[name] = family;
    };
    add("linear algebra", {"matmul", "linear"});
    add("reduction", {"reduce", "softmax", "log_softmax"});
    add("shape", {"reshape", "transpose", "slice", "concat", "broadcast",
                  "gather", "scatter_add", "iota", "constant"});
    add("transformer",
        {"rms_norm", "rms_norm_grad", "layer_norm", "layer_norm_grad", "rope",
         "attention", "attention_grad", "cross_entropy"});
    add("collective", {"all_gather", "reduce_scatter", "all_reduce",
                       "all_to_all", "send", "recv", "collective_broadcast"});
    add("quantization", {"quantize_blockwise", "dequantize_blockwise"});
    add("memory", {"offload", "reload"});
    return m;
  }();
  if (op->hasTrait<OpTrait::Elementwise>())
    return "elementwise";
  auto it = families.find(op->getName().stripDialect());
  return it == families.end() ? StringRef("other") : it->second;
}

struct FamilyTotals {
  int64_t ops = 0;
  OpCost cost;
};

std::string typeString(Type type) {
  std::string text;
  llvm::raw_string_ostream os(text);
  type.print(os);
  return text;
}

} // namespace

const VerbSpec &weft::cli::inspectSpec() {
  static const VerbSpec spec = [] {
    VerbSpec s;
    s.name = "inspect";
    s.arguments = "MODEL";
    s.summary = "Show what a model holds and what one forward step costs.";
    s.details =
        "MODEL is a Hugging Face config.json, a folder holding one, or a "
        ".mlir\n"
        "file. Prints the inputs, outputs and parameters, the ops by family "
        "and\n"
        "the FLOPs, memory traffic, network bytes and host transfers of one\n"
        "forward step, from each op's cost (see ir/WeftInterfaces.td).\n"
        "A .plan file (weft compile) shows its memory: the peak, the step\n"
        "where the arena holds the most and the largest buffers live there;\n"
        "then its kernels, steps and buffers.";
    s.options = shapeOptions();
    s.options.push_back({"json", "", "", "print JSON instead of a table"});
    s.minPositional = s.maxPositional = 1;
    return s;
  }();
  return spec;
}

int weft::cli::runInspect(llvm::ArrayRef<std::string> args) {
  ParsedArgs parsed;
  if (int code = parseOrReport(args, inspectSpec(), parsed); code >= 0)
    return code;
  auto fail = [](llvm::Error error) {
    llvm::errs() << "weft inspect: " << llvm::toString(std::move(error))
                 << "\n";
    return 1;
  };
  llvm::Expected<ModelShapeOptions> shape = readShapeOptions(parsed);
  if (!shape)
    return fail(shape.takeError());

  ModelLoader loader;
  const std::string &path = parsed.positional[0];
  if (llvm::StringRef(path).ends_with(".plan")) {
    if (shape->givenByUser) {
      llvm::errs() << "weft inspect: " << path
                   << " is compiled; --batch, --seq and --dtype apply to a "
                      "config.json\n";
      return 1;
    }
    return inspectPlan(path, parsed.has("json"));
  }
  auto module = loader.load(path, *shape);
  if (!module)
    return fail(module.takeError());
  auto func = findEntryFunction(**module);
  if (!func) {
    llvm::errs() << "weft inspect: " << path
                 << " has no @forward function (nor a single function)\n";
    return 1;
  }

  // Arguments: named inputs and parameters.
  nlohmann::json inputs = nlohmann::json::array(),
                 outputs = nlohmann::json::array();
  int64_t paramCount = 0, paramBytes = 0, paramTensors = 0, tokens = 0;
  bool costKnown = true;
  for (BlockArgument arg : func.getArguments()) {
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    if (auto name = func.getArgAttrOfType<StringAttr>(
            arg.getArgNumber(), WeftDialect::kParamAttrName)) {
      if (!type || !type.hasStaticShape()) {
        costKnown = false;
        continue;
      }
      ++paramTensors;
      paramCount += type.getNumElements();
      paramBytes += tensorBytes(type);
      continue;
    }
    auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  WeftDialect::kInputAttrName);
    std::string label =
        name ? name.str() : "arg" + std::to_string(arg.getArgNumber());
    inputs.push_back({{"name", label}, {"type", typeString(arg.getType())}});
    if (label == "input_ids" && type && type.hasStaticShape())
      tokens = type.getNumElements();
  }
  for (auto [i, type] : llvm::enumerate(func.getResultTypes())) {
    auto name =
        func.getResultAttrOfType<StringAttr>(i, WeftDialect::kOutputAttrName);
    outputs.push_back(
        {{"name", name ? name.str() : "result" + std::to_string(i)},
         {"type", typeString(type)}});
  }

  // Ops by family, with their costs.
  llvm::StringMap<FamilyTotals> families;
  FamilyTotals total;
  func.walk([&](Operation *op) {
    auto cost = dyn_cast<CostOpInterface>(op);
    if (!cost)
      return;
    FamilyTotals &family = families[familyOf(op)];
    OpCost c = cost.getCost();
    ++family.ops;
    family.cost += c;
    ++total.ops;
    total.cost += c;
  });
  costKnown = costKnown && total.cost.isKnown;

  if (parsed.has("json")) {
    nlohmann::json out;
    out["model"] = path;
    out["function"] = func.getSymName().str();
    out["inputs"] = inputs;
    out["outputs"] = outputs;
    out["parameters"] = {{"count", paramCount},
                         {"tensors", paramTensors},
                         {"bytes", paramBytes}};
    out["tokens"] = tokens;
    out["cost_known"] = costKnown;
    auto costJson = [](const FamilyTotals &t) {
      return nlohmann::json{{"ops", t.ops},
                            {"flops", t.cost.flops},
                            {"memory_bytes", t.cost.memoryBytes},
                            {"comm_bytes", t.cost.commBytes},
                            {"transfer_bytes", t.cost.transferBytes}};
    };
    for (const char *family : kFamilies)
      if (families.count(family))
        out["families"][family] = costJson(families[family]);
    out["total"] = costJson(total);
    llvm::outs() << out.dump(2) << "\n";
    return 0;
  }

  llvm::raw_ostream &os = llvm::outs();
  os << "model        " << path << " (@" << func.getSymName() << ")\n";
  for (const auto &input : inputs)
    os << "input        " << input["name"].get<std::string>() << ": "
       << input["type"].get<std::string>() << "\n";
  for (const auto &output : outputs)
    os << "output       " << output["name"].get<std::string>() << ": "
       << output["type"].get<std::string>() << "\n";
  os << "parameters   " << withCommas(paramCount) << " in " << paramTensors
     << " tensors, " << binary(paramBytes) << "\n\n";
  os << llvm::left_justify("ops by family", 16) << llvm::right_justify("ops", 6)
     << llvm::right_justify("FLOPs", 14) << llvm::right_justify("memory", 12)
     << llvm::right_justify("network", 12)
     << llvm::right_justify("host<->dev", 12) << "\n";
  auto row = [&](StringRef name, const FamilyTotals &t) {
    os << "  " << llvm::left_justify(name, 14)
       << llvm::right_justify(std::to_string(t.ops), 6)
       << llvm::right_justify(decimal(t.cost.flops, "FLOP"), 14)
       << llvm::right_justify(binary(t.cost.memoryBytes), 12)
       << llvm::right_justify(binary(t.cost.commBytes), 12)
       << llvm::right_justify(binary(t.cost.transferBytes), 12) << "\n";
  };
  for (const char *family : kFamilies)
    if (families.count(family))
      row(family, families[family]);
  row("total", total);
  if (!costKnown)
    os << "\nsome shapes are dynamic: the counts above cover only the static "
          "ops\n";
  else if (tokens > 0)
    os << "\nper forward step of " << withCommas(tokens)
       << " tokens: " << decimal(total.cost.flops, "FLOP") << " ("
       << decimal(static_cast<double>(total.cost.flops) / tokens, "FLOP")
       << " per token)\n";
  return 0;
}
