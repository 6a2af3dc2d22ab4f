// weft train: compiles a training step (forward, backward) for the CPU and
// runs the training loop: data, AdamW, logs, progress, checkpoints, resume.
#include "Commands.h"
#include "Format.h"
#include "ModelLoader.h"
#include "PlanCompiler.h"

#include "frontend/HuggingFace/ModelConfig.h"
#include "runtime/AtomicFile.h"
#include "runtime/Checkpoint.h"
#include "runtime/Communicator.h"
#include "runtime/Error.h"
#include "runtime/PlanFile.h"
#include "runtime/Safetensors.h"
#include "runtime/TokenData.h"
#include "runtime/Trace.h"
#include "runtime/Trainer.h"
#include "runtime/cpu/CpuExecutor.h"
#ifdef WEFT_HAVE_CUDA_RUNTIME
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/CudaExecutor.h"
#endif

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

using namespace weft::cli;
namespace rt = weft::runtime;
using nlohmann::json;

const VerbSpec &weft::cli::trainSpec() {
  static const VerbSpec spec = [] {
    VerbSpec s;
    s.name = "train";
    s.arguments = "MODEL";
    s.summary = "Train a model on CPUs or CUDA GPUs: forward, backward and "
                "AdamW.";
    s.details =
        "MODEL is a Hugging Face model folder or config.json. Weights come\n"
        "from the folder's safetensors, or are drawn from --seed when there\n"
        "are none. --data is a flat token file ('weft data tokenize'); each\n"
        "sample is --seq tokens, which are also the labels (the loss shifts\n"
        "them, as Hugging Face does). --batch is the global batch of one\n"
        "optimizer step, split into --grad-accum micro-batches. --config\n"
        "reads a DeepSpeed JSON config (train_batch_size,\n"
        "train_micro_batch_size_per_gpu, gradient_accumulation_steps,\n"
        "optimizer.params, scheduler WarmupCosineLR or WarmupLR,\n"
        "bf16.enabled, gradient_clipping, steps_per_print,\n"
        "zero_optimization.stage, sequence_parallel_size,\n"
        "tensor_parallel.autotp_size, activation_checkpointing.\n"
        "cpu_checkpointing); flags override it, ZeRO's bucket and\n"
        "overlap knobs are named as ignored, and unknown keys are errors.\n"
        "Defaults are torch.optim.AdamW's:\n"
        "lr 1e-3, betas 0.9,0.999, eps 1e-8, weight decay 0.01 on every\n"
        "parameter; constant learning rate, no clipping.";
    s.options = {
        {"data", "", "FILE", "token file to train on (required)"},
        {"token-dtype", "", "u16|u32", "width of each token id (default u16)"},
        {"data-order", "", "shuffled|sequential",
         "sample order (default shuffled with --seed)"},
        {"steps", "", "N", "optimizer steps to take (required)"},
        {"batch", "", "B", "sequences per optimizer step (default 8)"},
        {"seq", "", "T", "tokens per sequence (default 128)"},
        {"grad-accum", "", "A", "micro-batches per step (default 1)"},
        {"lr", "", "LR", "peak learning rate (default 1e-3)"},
        {"betas", "", "B1,B2", "AdamW's betas (default 0.9,0.999)"},
        {"eps", "", "EPS", "AdamW's epsilon (default 1e-8)"},
        {"weight-decay", "", "WD", "decoupled weight decay (default 0.01)"},
        {"no-decay", "", "PATTERN",
         "no weight decay for parameters whose name contains PATTERN "
         "(repeatable)"},
        {"grad-clip", "", "NORM", "clip the global gradient norm (0: off)"},
        {"warmup", "", "N", "linear warm-up steps, then cosine decay"},
        {"min-lr-ratio", "", "R", "cosine decay ends at R · lr (default 0)"},
        {"precision", "", "fp32|bf16",
         "fp32 throughout, or bf16 parameters and activations with fp32 "
         "master weights and optimizer state (default fp32)"},
        {"freeze", "", "PATTERN",
         "no gradient nor optimizer state for parameters whose name "
         "contains PATTERN (repeatable)"},
        {"seed", "", "N", "data order and initial weights (default 0)"},
        {"config", "", "FILE", "DeepSpeed JSON config"},
        {"log", "", "FILE",
         "one JSON line per step; the loss curve is written beside it as "
         ".svg"},
        {"trace", "", "FILE",
         "write a Chrome/Perfetto trace of the run's first step (rank 0's: "
         "each plan step, the arena's live bytes, the bytes each collective "
         "sent)"},
        {"save-every", "", "K", "write a checkpoint every K steps"},
        {"save-dir", "", "DIR", "where checkpoints go (DIR/step-N)"},
        {"resume", "", "DIR", "continue from a checkpoint (or DIR's latest)"},
        {"threads", "", "N", "CPU threads (default: all cores)"},
        {"device", "", "cpu|cuda",
         "train on the CPU (default) or on CUDA GPUs (the plan is compiled "
         "for them; under mpirun a GPU per rank, collectives through "
         "NCCL)"},
        {"dp", "", "N",
         "data-parallel ranks (default: the ranks of the launch, "
         "mpirun -np N); each takes its contiguous share of every step's "
         "samples"},
        {"zero", "", "0|1|2|3",
         "ZeRO stage over the dp (× sp) ranks: 1 shards the optimizer state, "
         "2 also reduce-scatters the gradients, 3 also stores the parameters "
         "sharded, gathered before each use (default 0)"},
        {"sp", "", "N",
         "sequence-parallel ranks (Ulysses, DeepSpeed's "
         "sequence_parallel_size): each takes --seq/N tokens of every "
         "sample, attention runs by heads; dp × sp = the launch's ranks "
         "(default 1)"},
        {"tp", "", "N",
         "tensor-parallel ranks (Megatron's column- and row-parallel "
         "linears: each holds 1/N of q, k, v, o, gate, up and down and "
         "runs 1/N of the heads; dp × tp = the launch's ranks; not with "
         "--sp or ZeRO yet; default 1)"},
    };
    for (OptionSpec &option : rematOptions())
      s.options.push_back(option);
    s.minPositional = s.maxPositional = 1;
    return s;
  }();
  return spec;
}

namespace {
/// On a GPU: the most device memory the run takes, known before launch.
std::string deviceMemoryNote(const weft::plan::Plan &plan,
                             const std::string &model) {
#ifdef WEFT_HAVE_CUDA_RUNTIME
  if (plan.device() == "cuda") {
    const rt::CudaExecutor::DeviceMemory d =
        rt::CudaExecutor::deviceMemory(plan, model);
    return "; on the GPU at most " + binary(d.block + d.cudnnAtMost) +
           " with the runtime's own and cuDNN's workspace";
  }
#endif
  (void)plan, (void)model;
  return "";
}

struct Settings {
  std::string data, tokenDtype = "u16", order = "shuffled";
  int64_t steps = 0, batch = 8, seq = 128, accumulation = 1;
  int64_t micro = 0; // from DeepSpeed's train_micro_batch_size_per_gpu
  rt::OptimizerOptions optimizer;
  std::string precision = "fp32";
  std::vector<std::string> frozen;
  uint64_t seed = 0;
  std::string log, saveDir, resume, trace;
  int64_t saveEvery = 0, threads = 0;
  int64_t ranks = 1, dp = 1; // of the launch; data-parallel ranks
  int64_t sp = 1;            // sequence-parallel ranks
  int64_t tp = 1;            // tensor-parallel ranks
  int64_t zero = 0;          // ZeRO stage
  std::string configNote;    // what the DeepSpeed config set that weft ignores
  bool offloadActivations = false; // activation_checkpointing.cpu_checkpointing
};

llvm::Error makeError(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// Reads a DeepSpeed config into `s`. Errors name the file and the key.
llvm::Error applyDeepSpeedConfig(const std::string &path, Settings &s) {
  std::ifstream file(path);
  if (!file)
    return makeError(path + ": cannot open");
  json config;
  try {
    config = json::parse(file);
  } catch (const json::exception &e) {
    return makeError(path + ": not JSON: " + e.what());
  }
  if (!config.is_object())
    return makeError(path + ": expected a JSON object");
  std::vector<std::string> unknown, ignored;
  // The value at `key` of `object` as a T, or an error naming `where`.
  auto number = [&](const json &object, const std::string &key,
                    const std::string &where, auto &into) -> llvm::Error {
    const json &value = object.at(key);
    using T = std::remove_reference_t<decltype(into)>;
    if (std::is_integral_v<T> ? !value.is_number_integer() : !value.is_number())
      return makeError(path + ": '" + where + "' is " + value.type_name() +
                       ", expected " +
                       (std::is_integral_v<T> ? "an integer" : "a number"));
    into = value.get<T>();
    return llvm::Error::success();
  };
  int64_t globalBatch = 0;
  for (auto &[key, value] : config.items()) {
    llvm::Error error = llvm::Error::success();
    if (key == "train_batch_size") {
      error = number(config, key, key, globalBatch);
    } else if (key == "train_micro_batch_size_per_gpu") {
      error = number(config, key, key, s.micro);
    } else if (key == "gradient_accumulation_steps") {
      error = number(config, key, key, s.accumulation);
    } else if (key == "sequence_parallel_size") {
      error = number(config, key, key, s.sp);
      if (!error && (s.sp < 1 || s.ranks % s.sp != 0))
        return makeError(path + ": sequence_parallel_size " +
                         std::to_string(s.sp) + " does not divide the " +
                         std::to_string(s.ranks) + " ranks of the launch");
    } else if (key == "tensor_parallel") {
      // DeepSpeed's AutoTP training: tensor_parallel.autotp_size.
      if (!value.is_object())
        return makeError(path + ": 'tensor_parallel' is " + value.type_name() +
                         ", expected an object");
      for (auto &[inner, ignored] : value.items())
        if (inner == "autotp_size")
          error = number(value, inner, "tensor_parallel.autotp_size", s.tp);
        else
          unknown.push_back(key + "." + inner);
      if (!error && (s.tp < 1 || s.ranks % s.tp != 0))
        return makeError(path + ": tensor_parallel.autotp_size " +
                         std::to_string(s.tp) + " does not divide the " +
                         std::to_string(s.ranks) + " ranks of the launch");
    } else if (key == "gradient_clipping") {
      error = number(config, key, key, s.optimizer.maxGradNorm);
    } else if (key == "zero_optimization") {
      if (!value.is_object())
        return makeError(path + ": 'zero_optimization' is " +
                         value.type_name() + ", expected an object");
      // DeepSpeed's knobs for bucketing and overlapping ZeRO's collectives:
      // a weft plan fixes both, so they change nothing here.
      static const char *const kCommunicationTuning[] = {
          "overlap_comm",
          "contiguous_gradients",
          "reduce_scatter",
          "reduce_bucket_size",
          "allgather_partitions",
          "allgather_bucket_size",
          "round_robin_gradients",
          "sub_group_size",
          "stage3_prefetch_bucket_size",
          "stage3_param_persistence_threshold",
          "stage3_max_live_parameters",
          "stage3_max_reuse_distance",
          "stage3_gather_16bit_weights_on_model_save"};
      for (auto &[inner, innerValue] : value.items())
        if (inner == "stage")
          error = number(value, inner, "zero_optimization.stage", s.zero);
        else if (llvm::is_contained(kCommunicationTuning, inner))
          ignored.push_back(key + "." + inner);
        else
          unknown.push_back(key + "." + inner);
    } else if (key == "activation_checkpointing") {
      // cpu_checkpointing: the checkpoints wait in host memory — weft's
      // activation offload (--offload-activations); which activations are
      // checkpoints is --remat's choice.
      if (!value.is_object())
        return makeError(path + ": 'activation_checkpointing' is " +
                         value.type_name() + ", expected an object");
      static const char *const kTuning[] = {"contiguous_memory_optimization",
                                            "synchronize_checkpoint_boundary",
                                            "number_checkpoints", "profile"};
      for (auto &[inner, innerValue] : value.items())
        if (inner == "cpu_checkpointing") {
          if (!innerValue.is_boolean())
            return makeError(path +
                             ": 'activation_checkpointing.cpu_checkpointing' "
                             "is " +
                             innerValue.type_name() + ", expected a boolean");
          s.offloadActivations = innerValue.get<bool>();
        } else if (llvm::is_contained(kTuning, inner)) {
          ignored.push_back(key + "." + inner);
        } else {
          unknown.push_back(key + "." + inner);
        }
    } else if (key == "steps_per_print" || key == "wall_clock_breakdown") {
      // Printing is per step here; accepted for compatibility.
    } else if (key == "bf16" || key == "fp16") {
      if (!value.is_object() || !value.contains("enabled") ||
          !value["enabled"].is_boolean())
        return makeError(path + ": '" + key +
                         ".enabled' is missing or not a boolean");
      for (auto &[inner, ignored] : value.items())
        if (inner != "enabled")
          unknown.push_back(key + "." + inner);
      if (key == "fp16" && value["enabled"].get<bool>())
        return makeError(path + ": 'fp16.enabled' is true; weft trains in "
                                "fp32 or bf16 (bf16.enabled)");
      if (key == "bf16")
        s.precision = value["enabled"].get<bool>() ? "bf16" : "fp32";
    } else if (key == "optimizer") {
      if (!value.is_object())
        return makeError(path + ": 'optimizer' is not an object");
      std::string type = value.value("type", "AdamW");
      if (type != "AdamW" && type != "Adam")
        return makeError(path + ": 'optimizer.type' is '" + type +
                         "'; weft has AdamW");
      for (auto &[inner, v] : value.items()) {
        if (inner == "type")
          continue;
        if (inner != "params") {
          unknown.push_back("optimizer." + inner);
          continue;
        }
        for (auto &[param, pv] : v.items()) {
          const std::string where = "optimizer.params." + param;
          if (param == "lr")
            error = number(v, param, where, s.optimizer.lr);
          else if (param == "eps")
            error = number(v, param, where, s.optimizer.eps);
          else if (param == "weight_decay")
            error = number(v, param, where, s.optimizer.weightDecay);
          else if (param == "betas") {
            if (!pv.is_array() || pv.size() != 2 || !pv[0].is_number() ||
                !pv[1].is_number())
              return makeError(path + ": '" + where +
                               "' is not a list of two numbers");
            s.optimizer.beta1 = pv[0];
            s.optimizer.beta2 = pv[1];
          } else
            unknown.push_back(where);
          if (error)
            return error;
        }
      }
    } else if (key == "scheduler") {
      if (!value.is_object() || !value.contains("type") ||
          !value["type"].is_string())
        return makeError(path + ": 'scheduler.type' is missing");
      std::string type = value["type"];
      if (type != "WarmupCosineLR" && type != "WarmupLR")
        return makeError(path + ": 'scheduler.type' is '" + type +
                         "'; weft has WarmupCosineLR and WarmupLR");
      rt::LearningRateSchedule &schedule = s.optimizer.schedule;
      schedule.kind = type == "WarmupCosineLR"
                          ? rt::LearningRateSchedule::Kind::WarmupCosine
                          : rt::LearningRateSchedule::Kind::Warmup;
      const json params = value.value("params", json::object());
      for (auto &[param, pv] : params.items()) {
        const std::string where = "scheduler.params." + param;
        if (param == "warmup_num_steps")
          error = number(params, param, where, schedule.warmupSteps);
        else if (param == "total_num_steps")
          error = number(params, param, where, schedule.totalSteps);
        else if (param == "cos_min_ratio")
          error = number(params, param, where, schedule.minRatio);
        else if (param == "warmup_max_lr")
          error = number(params, param, where, s.optimizer.lr);
        else if (param == "warmup_type") {
          if (pv != "linear")
            return makeError(path + ": '" + where + "' is " + pv.dump() +
                             "; weft warms up linearly (\"linear\")");
        } else
          unknown.push_back(where);
        if (error)
          return error;
      }
    } else {
      unknown.push_back(key);
    }
    if (error)
      return error;
  }
  auto listOf = [](const std::vector<std::string> &keys) {
    std::string list;
    for (const std::string &key : keys)
      list += (list.empty() ? "'" : ", '") + key + "'";
    return list;
  };
  if (!unknown.empty())
    return makeError(path + ": unknown key" +
                     (unknown.size() > 1 ? "s " : " ") + listOf(unknown));
  if (!ignored.empty())
    s.configNote = path + ": ignoring DeepSpeed's tuning " + listOf(ignored) +
                   " (the plan fixes how collectives are sized and what they "
                   "overlap, and where activations lie)";
  // The ranks sequence and tensor parallelism leave are data-parallel.
  if (s.ranks % (s.sp * s.tp) != 0)
    return makeError(path + ": sequence_parallel_size " + std::to_string(s.sp) +
                     " × tensor_parallel.autotp_size " + std::to_string(s.tp) +
                     " does not divide the " + std::to_string(s.ranks) +
                     " ranks of the launch");
  s.dp = s.ranks / (s.sp * s.tp);
  if (s.micro > 0)
    s.batch = s.micro * s.accumulation * s.dp;
  if (globalBatch > 0) {
    if (s.micro > 0 && globalBatch != s.micro * s.accumulation * s.dp)
      return makeError(path + ": train_batch_size " +
                       std::to_string(globalBatch) +
                       " is not train_micro_batch_size_per_gpu × "
                       "gradient_accumulation_steps × data-parallel ranks (" +
                       std::to_string(s.micro * s.accumulation * s.dp) + ")");
    s.batch = globalBatch;
  }
  return llvm::Error::success();
}

/// Reads the flags into `s` (after the config file: flags win).
llvm::Error applyFlags(const ParsedArgs &args, Settings &s) {
  auto integer = [&](const char *name, int64_t &into) -> llvm::Error {
    if (!args.has(name))
      return llvm::Error::success();
    llvm::Expected<int64_t> value = args.getPositiveInt(name, into);
    if (!value)
      return value.takeError();
    into = *value;
    return llvm::Error::success();
  };
  auto real = [&](const char *name, double &into) -> llvm::Error {
    std::optional<std::string> text = args.get(name);
    if (!text)
      return llvm::Error::success();
    char *end = nullptr;
    double value = std::strtod(text->c_str(), &end);
    if (text->empty() || *end != '\0' || !std::isfinite(value) || value < 0)
      return makeError("--" + std::string(name) +
                       " expects a non-negative number, found '" + *text + "'");
    into = value;
    return llvm::Error::success();
  };
  for (auto [name, into] : {std::pair{"steps", &s.steps},
                            {"batch", &s.batch},
                            {"seq", &s.seq},
                            {"grad-accum", &s.accumulation},
                            {"dp", &s.dp},
                            {"sp", &s.sp},
                            {"tp", &s.tp},
                            {"save-every", &s.saveEvery},
                            {"threads", &s.threads}})
    if (llvm::Error error = integer(name, *into))
      return error;
  if (args.has("batch") || args.has("grad-accum"))
    s.micro = 0; // the flags' batch and accumulation decide
  if ((args.has("sp") || args.has("tp")) && !args.has("dp") && s.sp > 0 &&
      s.tp > 0)
    s.dp = s.ranks / (s.sp * s.tp); // the ranks sp and tp leave
  if (std::optional<std::string> warmup = args.get("warmup")) {
    int64_t steps;
    if (llvm::StringRef(*warmup).getAsInteger(10, steps) || steps < 0)
      return makeError("--warmup expects a non-negative integer, found '" +
                       *warmup + "'");
    s.optimizer.schedule.kind = rt::LearningRateSchedule::Kind::WarmupCosine;
    s.optimizer.schedule.warmupSteps = steps;
  }
  for (auto [name, into] : {std::pair{"lr", &s.optimizer.lr},
                            {"eps", &s.optimizer.eps},
                            {"weight-decay", &s.optimizer.weightDecay},
                            {"grad-clip", &s.optimizer.maxGradNorm},
                            {"min-lr-ratio", &s.optimizer.schedule.minRatio}})
    if (llvm::Error error = real(name, *into))
      return error;
  if (std::optional<std::string> betas = args.get("betas")) {
    double b1, b2;
    char comma;
    std::istringstream in(*betas);
    if (!(in >> b1 >> comma >> b2) || comma != ',' || !in.eof() || b1 < 0 ||
        b1 >= 1 || b2 < 0 || b2 >= 1)
      return makeError("--betas expects B1,B2 in [0, 1), found '" + *betas +
                       "'");
    s.optimizer.beta1 = b1;
    s.optimizer.beta2 = b2;
  }
  for (const std::string &pattern : args.getAll("no-decay"))
    s.optimizer.noDecay.push_back(pattern);
  s.frozen = args.getAll("freeze");
  if (std::optional<std::string> seed = args.get("seed")) {
    char *end = nullptr;
    s.seed = std::strtoull(seed->c_str(), &end, 10);
    if (seed->empty() || *end != '\0' || (*seed)[0] == '-')
      return makeError("--seed expects a non-negative integer, found '" +
                       *seed + "'");
  }
  s.data = args.get("data").value_or(s.data);
  s.tokenDtype = args.get("token-dtype").value_or(s.tokenDtype);
  s.order = args.get("data-order").value_or(s.order);
  s.precision = args.get("precision").value_or(s.precision);
  s.log = args.get("log").value_or("");
  s.trace = args.get("trace").value_or("");
  s.saveDir = args.get("save-dir").value_or("");
  s.resume = args.get("resume").value_or("");

  if (s.data.empty())
    return makeError("--data FILE is required");
  if (s.steps <= 0)
    return makeError("--steps N is required");
  if (s.tokenDtype != "u16" && s.tokenDtype != "u32")
    return makeError("--token-dtype is '" + s.tokenDtype +
                     "'; expected u16 or u32");
  if (s.order != "shuffled" && s.order != "sequential")
    return makeError("--data-order is '" + s.order +
                     "'; expected shuffled or sequential");
  if (s.precision != "fp32" && s.precision != "bf16")
    return makeError("--precision is '" + s.precision +
                     "'; expected fp32 or bf16");
  if (s.seq < 2)
    return makeError("--seq must be at least 2 (the loss predicts each "
                     "token from those before it)");
  if (std::optional<std::string> zero = args.get("zero"))
    if (llvm::StringRef(*zero).getAsInteger(10, s.zero))
      return makeError("--zero expects 0, 1, 2 or 3, found '" + *zero + "'");
  // The flag's or zero_optimization.stage's.
  if (s.zero < 0 || s.zero > 3)
    return makeError("ZeRO stage " + std::to_string(s.zero) +
                     " (--zero or zero_optimization.stage): the stages are "
                     "0, 1, 2 and 3");
  if (s.sp < 1)
    return makeError("--sp " + std::to_string(s.sp) + ": at least one rank");
  if (s.tp < 1)
    return makeError("--tp " + std::to_string(s.tp) + ": at least one rank");
  if (s.dp * s.sp * s.tp != s.ranks)
    return makeError("--dp " + std::to_string(s.dp) + " × --sp " +
                     std::to_string(s.sp) + " × --tp " + std::to_string(s.tp) +
                     " needs " + std::to_string(s.dp * s.sp * s.tp) +
                     " ranks (dp · sp · tp); this "
                     "launch has " +
                     std::to_string(s.ranks) + " (mpirun -np N)");
  if (s.batch % (s.accumulation * s.dp) != 0)
    return makeError("--batch " + std::to_string(s.batch) +
                     " is not a multiple of --grad-accum " +
                     std::to_string(s.accumulation) + " × --dp " +
                     std::to_string(s.dp));
  if (s.saveEvery > 0 && s.saveDir.empty())
    return makeError("--save-every needs --save-dir DIR");
  rt::LearningRateSchedule &schedule = s.optimizer.schedule;
  if (schedule.kind == rt::LearningRateSchedule::Kind::WarmupCosine &&
      schedule.totalSteps == 0)
    schedule.totalSteps = s.steps;
  return llvm::Error::success();
}

/// The model's config.json text, or empty for a .mlir model.
std::string configText(const std::string &model) {
  std::string path =
      llvm::sys::fs::is_directory(model) ? model + "/config.json" : model;
  if (!llvm::StringRef(path).ends_with(".json"))
    return "";
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

/// Where the model's safetensors are: the folder (or config.json's folder)
/// when it has some, else empty.
std::string weightsOf(const std::string &model) {
  std::string dir = llvm::sys::fs::is_directory(model)
                        ? model
                        : llvm::sys::path::parent_path(model).str();
  if (dir.empty())
    dir = ".";
  if (llvm::sys::fs::exists(dir + "/model.safetensors") ||
      llvm::sys::fs::exists(dir + "/model.safetensors.index.json"))
    return dir;
  return "";
}

/// The loss curve as an SVG line chart.
std::string lossCurveSvg(const std::vector<double> &losses,
                         const std::string &title) {
  const double width = 640, height = 360, left = 60, right = 20, top = 30,
               bottom = 40;
  double lo = *std::min_element(losses.begin(), losses.end());
  double hi = *std::max_element(losses.begin(), losses.end());
  if (hi - lo < 1e-9)
    hi = lo + 1;
  auto x = [&](size_t i) {
    return left +
           (width - left - right) * static_cast<double>(i) /
               static_cast<double>(std::max<size_t>(1, losses.size() - 1));
  };
  auto y = [&](double v) {
    return top + (height - top - bottom) * (hi - v) / (hi - lo);
  };
  auto n = [](double v) { return llvm::formatv("{0:f1}", v).str(); };
  std::string svg;
  llvm::raw_string_ostream os(svg);
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << n(width)
     << "\" height=\"" << n(height)
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
     << "<text x=\"" << n(left) << "\" y=\"18\">";
  for (char c : title) // XML text
    os << (c == '&'   ? "&amp;"
           : c == '<' ? "&lt;"
           : c == '>' ? "&gt;"
                      : std::string(1, c));
  os << "</text>\n";
  for (int k = 0; k <= 4; ++k) {
    double v = lo + (hi - lo) * k / 4;
    os << "<line x1=\"" << n(left) << "\" x2=\"" << n(width - right)
       << "\" y1=\"" << n(y(v)) << "\" y2=\"" << n(y(v))
       << "\" stroke=\"#ddd\"/>\n<text x=\"4\" y=\"" << n(y(v) + 4) << "\">"
       << llvm::formatv("{0:f3}", v) << "</text>\n";
  }
  os << "<text x=\"" << n((width - right) / 2) << "\" y=\"" << n(height - 10)
     << "\">step (1 – " << losses.size()
     << ")</text>\n<polyline fill=\"none\" stroke=\"#1f77b4\" "
     << "stroke-width=\"1.5\" points=\"";
  for (size_t i = 0; i < losses.size(); ++i)
    os << n(x(i)) << "," << n(y(losses[i])) << " ";
  os << "\"/>\n</svg>\n";
  return svg;
}

json settingsJson(const Settings &s) {
  const rt::OptimizerOptions &o = s.optimizer;
  return {{"batch", s.batch},
          {"seq", s.seq},
          {"grad_accum", s.accumulation},
          {"precision", s.precision},
          {"data", s.data},
          {"data_order", s.order},
          {"seed", s.seed},
          {"lr", o.lr},
          {"betas", {o.beta1, o.beta2}},
          {"eps", o.eps},
          {"weight_decay", o.weightDecay},
          {"grad_clip", o.maxGradNorm},
          {"warmup", o.schedule.warmupSteps},
          {"total_steps", o.schedule.totalSteps},
          {"min_lr_ratio", o.schedule.minRatio}};
}
} // namespace

int weft::cli::runTrain(llvm::ArrayRef<std::string> args) {
  ParsedArgs parsed;
  if (int code = parseOrReport(args, trainSpec(), parsed); code >= 0)
    return code;
  auto fail = [](const std::string &message) {
    llvm::errs() << "weft train: " << message << "\n";
    return 1;
  };
  Settings s;
  s.ranks = s.dp = rt::Communicator::launchedRanks();
  if (auto config = parsed.get("config"))
    if (llvm::Error error = applyDeepSpeedConfig(*config, s))
      return fail(llvm::toString(std::move(error)));
  if (llvm::Error error = applyFlags(parsed, s)) {
    llvm::errs() << "weft train: " << llvm::toString(std::move(error)) << "\n\n"
                 << usage(trainSpec());
    return 2;
  }
  const std::string &model = parsed.positional[0];
  llvm::Expected<weft::codegen::Device> device =
      readDevice(parsed.get("device"));
  if (!device)
    return fail(llvm::toString(device.takeError()));
  if (*device == weft::codegen::Device::Cuda) {
#ifdef WEFT_HAVE_CUDA_RUNTIME
    try { // no driver: said before anything is compiled
      rt::CudaDriver::get();
    } catch (const rt::Error &error) {
      return fail(error.what());
    }
#endif
  }
  // Under mpirun: every rank trains; rank 0 alone prints, logs and saves.
  // An error on any rank ends them all with its message.
  rt::Communicator *comm = s.ranks > 1 ? &rt::Communicator::world() : nullptr;
  const int rank = comm ? comm->rank() : 0;
  if (rank == 0 && !s.configNote.empty())
    llvm::errs() << "weft train: " << s.configNote << "\n";
  auto failAll = [&](const std::string &message) {
    if (comm)
      comm->abort("weft train: rank " + std::to_string(rank) + ": " + message);
    return fail(message);
  };
  if (rank != 0) {
    llvm::outs().flush();
    int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0)
      ::dup2(null, STDOUT_FILENO);
    s.log.clear(); // every rank saves (ZeRO's state is gathered), rank 0
                   // writes
  }
  try {
    auto config = weft::frontend::readModelConfig(model);
    if (!config)
      return fail(llvm::toString(config.takeError()));
    const int64_t vocab = config->vocabSize;
    const rt::TokenWidth width =
        s.tokenDtype == "u16" ? rt::TokenWidth::U16 : rt::TokenWidth::U32;
    rt::TokenData data(s.data, width, s.seq);
    const rt::DataOrder order = s.order == "sequential"
                                    ? rt::DataOrder::Sequential
                                    : rt::DataOrder::Shuffled;
    const int64_t micro = s.batch / (s.accumulation * s.dp);

    // The training step's plan.
    ModelShapeOptions shape;
    shape.build = {micro, s.seq, s.precision == "bf16" ? "bf16" : "f32", true};
    shape.givenByUser = true;
    // Ulysses needs the sequence in sp equal blocks: pad it at the end.
    llvm::Expected<int64_t> paddedOrError = padForSequenceParallel(shape, s.sp);
    if (!paddedOrError)
      return fail(llvm::toString(paddedOrError.takeError()));
    const int64_t padded = *paddedOrError;
    ModelLoader loader;
    auto module = loader.load(model, shape);
    if (!module)
      return fail(llvm::toString(module.takeError()));
    CompileOptions options;
    options.model = model;
    options.threads = static_cast<int>(s.threads);
    options.train = true;
    options.device = *device;
    if (llvm::Error error = readRematOptions(parsed, options)) {
      llvm::errs() << "weft train: " << llvm::toString(std::move(error))
                   << "\n";
      return 2;
    }
    options.offloadActivations |= s.offloadActivations;
    for (const std::string &pattern : s.frozen)
      options.frozen += (options.frozen.empty() ? "" : ",") + pattern;
    options.optimizer = adamwPassOptions(s.optimizer, s.accumulation);
    options.dp = s.dp;
    options.sp = s.sp;
    options.tp = s.tp;
    options.zero = s.zero;
    auto compiled = compilePlan(**module, options);
    if (!compiled)
      return fail(llvm::toString(compiled.takeError()));
    const weft::plan::Plan plan = std::move(*compiled);
    std::unique_ptr<rt::Executor> executorOwner;
    if (*device == weft::codegen::Device::Cuda) {
#ifdef WEFT_HAVE_CUDA_RUNTIME
      executorOwner = std::make_unique<rt::CudaExecutor>(plan, model);
#else
      return fail("--device cuda: this weft was built without the CUDA "
                  "runtime (-DWEFT_ENABLE_CUDA=ON)");
#endif
    } else {
      executorOwner = std::make_unique<rt::CpuExecutor>(
          plan, model, static_cast<int>(s.threads));
    }
    rt::Executor &executor = *executorOwner;

    // The model's config.json, read once: compared on resume, copied into
    // each checkpoint.
    const std::string modelConfig = configText(model);
    // Weights: a checkpoint, the model's safetensors, or the seed.
    std::string resumeFrom, weights = weightsOf(model);
    json resumed;
    if (!s.resume.empty()) {
      resumeFrom = rt::findCheckpoint(s.resume);
      std::ifstream stateFile(resumeFrom + "/trainer_state.json");
      try {
        resumed = json::parse(stateFile);
      } catch (const json::exception &e) {
        return fail(resumeFrom + "/trainer_state.json: not JSON: " + e.what());
      }
      std::string savedConfig = configText(resumeFrom);
      if (!savedConfig.empty() && !modelConfig.empty() &&
          json::parse(savedConfig) != json::parse(modelConfig))
        return fail(resumeFrom +
                    " is a checkpoint of another model: its "
                    "config.json differs from " +
                    model + "'s");
      executor.loadParameters(rt::SafetensorsCheckpoint(resumeFrom));
    } else if (!weights.empty()) {
      executor.loadParameters(rt::SafetensorsCheckpoint(weights));
    } else {
      executor.initializeParameters(s.seed);
    }
    rt::Trainer trainer(executor, model, s.optimizer);
    int64_t firstStep = 0;
    if (!resumeFrom.empty()) {
      const std::string stateFile = resumeFrom + "/optimizer.safetensors";
      trainer.loadState(stateFile, rt::SafetensorsCheckpoint(stateFile),
                        resumed.at("step").get<int64_t>());
      firstStep = trainer.steps();
      if (resumed.contains("settings") &&
          resumed["settings"] != settingsJson(s))
        llvm::errs() << "weft train: warning: " << resumeFrom
                     << " was saved with other settings ("
                     << resumed["settings"].dump()
                     << "); the run continues with these\n";
    }

    const int64_t stateBytes = plan.memory().state();
    const int64_t peak = plan.memory().peak();
    llvm::outs() << "weft train: " << model << ", " << plan.parameters_size()
                 << " parameters, " << s.precision << ", batch " << s.batch
                 << " × " << s.seq << " tokens"
                 << (s.accumulation > 1
                         ? " in " + std::to_string(s.accumulation) +
                               " micro-batches"
                         : "")
                 << "\nplanned memory: " << binary(peak) << " (parameters "
                 << binary(plan.memory().parameters()) << ", training state "
                 << binary(stateBytes) << ", activations and gradients "
                 << binary(plan.memory().activations()) << ", workspace "
                 << binary(plan.memory().workspace()) << ")"
                 << (plan.memory().host() > 0
                         ? "; host memory " + binary(plan.memory().host()) +
                               " of offloaded activations"
                         : std::string())
                 << deviceMemoryNote(plan, model) << "\n";
    llvm::outs().flush();

    std::unique_ptr<std::ofstream> log;
    std::vector<double> losses;
    if (!s.log.empty()) {
      // A resumed run continues the log of the run it resumes: the lines of
      // the steps before the checkpoint are kept, later ones dropped.
      if (firstStep > 0) {
        std::ifstream previous(s.log);
        std::string kept;
        for (std::string line; std::getline(previous, line);) {
          json entry = json::parse(line, nullptr, false);
          if (entry.is_discarded() || !entry.contains("step") ||
              entry["step"].get<int64_t>() > firstStep)
            continue;
          losses.push_back(entry.at("loss").get<double>());
          kept += line + "\n";
        }
        rt::writeAtomically(s.log, kept);
      }
      log = std::make_unique<std::ofstream>(
          s.log, firstStep > 0 ? std::ios::app : std::ios::trunc);
      if (!*log)
        return fail(s.log + ": cannot write");
    }
    // What the checkpoints' gathers sent, kept apart from the training's
    // collectives in the run summary.
    std::map<std::pair<std::string, std::string>, int64_t> checkpointBytes;
    auto save = [&](int64_t step) {
      // Every rank: ZeRO blocks are gathered (collectives).
      const auto before =
          comm ? comm->bytesSent()
               : std::map<std::pair<std::string, std::string>, int64_t>{};
      std::vector<rt::TensorView> modelTensors = trainer.parameters();
      std::vector<rt::TensorView> optimizerTensors = trainer.state();
      if (comm)
        for (const auto &[what, bytes] : comm->bytesSent())
          checkpointBytes[what] +=
              bytes - (before.count(what) ? before.at(what) : 0);
      if (rank != 0)
        return std::string();
      json state = {{"format", 1},
                    {"step", step},
                    {"samples_seen", step * s.batch},
                    {"settings", settingsJson(s)}};
      std::string dir = rt::saveCheckpoint(
          s.saveDir, step,
          {modelTensors, optimizerTensors, modelConfig, state.dump(1)});
      return dir;
    };

    const bool terminal = ::isatty(STDOUT_FILENO);
    std::vector<int64_t> ids(s.batch * s.seq);
    for (int64_t step = firstStep; step < s.steps; ++step) {
      auto start = std::chrono::steady_clock::now();
      data.batch(step, s.batch, order, s.seed, vocab, ids.data());
      std::vector<rt::HostTensor> parts;
      for (int64_t a = 0; a < s.accumulation; ++a) {
        rt::HostTensor part{weft::plan::I64, {micro, padded}, {}};
        part.bytes.assign(micro * padded * sizeof(int64_t), 0);
        // This rank's contiguous share of the step's samples, then its
        // micro-batches in order. The sp (or tp) ranks of a dp group
        // (adjacent on the mesh [dp, sp] or [dp, tp]) take the same
        // samples; sp ranks split their sequence, padded with token 0,
        // which no real token attends to and no target reads.
        const int64_t first =
            (rank / (s.sp * s.tp) * s.accumulation + a) * micro;
        for (int64_t row = 0; row < micro; ++row)
          std::memcpy(part.bytes.data() + row * padded * sizeof(int64_t),
                      ids.data() + (first + row) * s.seq,
                      s.seq * sizeof(int64_t));
        parts.push_back(std::move(part));
      }
      // The first step of the run, traced (rank 0 writes it).
      std::unique_ptr<rt::TraceWriter> trace;
      if (!s.trace.empty() && step == firstStep)
        trace = std::make_unique<rt::TraceWriter>();
      rt::StepStats stats = trainer.step(parts, trace.get());
      if (trace && rank == 0) {
        trace->write(s.trace);
        llvm::outs() << "wrote trace " << s.trace << "\n";
      }
      const double seconds = std::chrono::duration<double>(
                                 std::chrono::steady_clock::now() - start)
                                 .count();
      const double tokensPerSecond = s.batch * s.seq / seconds;
      losses.push_back(stats.loss);
      if (!std::isfinite(stats.loss))
        return fail("the loss is " + std::to_string(stats.loss) + " at step " +
                    std::to_string(step + 1) +
                    "; stopping (lower --lr or set --grad-clip)");
      if (log)
        *log << json{{"step", step + 1},
                     {"loss", stats.loss},
                     {"lr", stats.lr},
                     {"grad_norm", stats.gradNorm},
                     {"tokens_per_s", tokensPerSecond},
                     {"peak_bytes", peak}}
                    .dump()
             << "\n"
             << std::flush;
      std::string line =
          llvm::formatv("step {0}/{1}  loss {2:f4}  lr {3:e2}  grad norm "
                        "{4:f3}  {5:f0} tok/s  {6}",
                        step + 1, s.steps, stats.loss, stats.lr, stats.gradNorm,
                        tokensPerSecond, binary(peak))
              .str();
      if (terminal) {
        const int width = 24;
        const int filled = static_cast<int>(width * (step + 1) / s.steps);
        llvm::outs() << "\r[" << std::string(filled, '#')
                     << std::string(width - filled, '.') << "] " << line
                     << "\x1b[K";
      } else {
        llvm::outs() << line << "\n";
      }
      llvm::outs().flush();
      if (s.saveEvery > 0 && (step + 1) % s.saveEvery == 0) {
        std::string dir = save(step + 1);
        llvm::outs() << (terminal ? "\n" : "") << "saved " << dir << "\n";
      }
    }
    if (terminal)
      llvm::outs() << "\n";
    if (!s.saveDir.empty() && (s.saveEvery == 0 || s.steps % s.saveEvery != 0))
      llvm::outs() << "saved " << save(s.steps) << "\n";
    if (log && !losses.empty()) {
      llvm::SmallString<256> svg(s.log);
      llvm::sys::path::replace_extension(svg, "svg");
      rt::writeAtomically(
          std::string(svg),
          lossCurveSvg(losses, "weft train " + model + ": loss per step"));
      llvm::outs() << "wrote " << s.log << " and the loss curve " << svg
                   << "\n";
    }
    if (!losses.empty())
      llvm::outs() << "loss " << llvm::format("%.4f", losses.front()) << " -> "
                   << llvm::format("%.4f", losses.back()) << "\n";
    if (comm) {
      int64_t saving = 0;
      for (const auto &[what, bytes] : comm->bytesSent()) {
        const int64_t kept =
            checkpointBytes.count(what) ? checkpointBytes.at(what) : 0;
        saving += kept;
        if (bytes > kept)
          llvm::outs() << "sent " << what.first << " over " << what.second
                       << ": " << binary(static_cast<double>(bytes - kept))
                       << " per rank\n";
      }
      if (saving > 0)
        llvm::outs() << "checkpoints gathered their sharded tensors: "
                     << binary(static_cast<double>(saving))
                     << " sent per rank besides\n";
    }
  } catch (const rt::Error &error) {
    return failAll(error.what());
  } catch (const std::exception &error) {
    return failAll(std::string("unexpected error: ") + error.what());
  }
  return 0;
}
