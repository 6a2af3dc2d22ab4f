// End to end on the CPU: the tiny Llama fixture made with Hugging Face's own
// LlamaForCausalLM (tests/fixtures/make_llama_fixture.py) compiles to a plan,
// round-trips through a plan file, loads its bf16 safetensors and reproduces
// HF's fp32 logits (and, stored in bf16, its bf16 logits); the arena the
// runtime allocates is the planned peak; bad
// plans, inputs and weights are rejected with messages naming them.
#include "CompileModel.h"
#include "RelativeError.h"
#include "runtime/Error.h"
#include "runtime/PlanFile.h"
#include "runtime/cpu/CpuExecutor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

using namespace weft;
namespace rt = weft::runtime;
using weft::testing::compileModel;
using weft::testing::relativeError;

namespace {
const std::string kFixture = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama";

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/weft_" + name;
}

plan::Plan compileFixture(const std::string &dtype) {
  return compileModel(kFixture, {2, 64, dtype});
}

/// The fixture's config compiled for batch 2 × seq 64 (once per process).
const plan::Plan &fixturePlan() {
  static const plan::Plan compiled = compileFixture("f32");
  return compiled;
}

/// Runs `plan` on the weights and inputs of fixture folder `dir`; the
/// relative error of its logits against the folder's `expectedFile`.
double relativeErrorAgainst(const plan::Plan &plan,
                            const std::string &expectedFile,
                            const std::string &dir = kFixture) {
  rt::CpuExecutor executor(plan, "fixture");
  executor.loadParameters(rt::SafetensorsCheckpoint(dir));
  executor.setInput("input_ids", rt::readNpy(dir + "/input_ids.npy"));
  executor.run();
  return relativeError(rt::widenBf16(executor.output("logits")),
                       rt::readNpy(dir + "/" + expectedFile));
}

std::string readFile(const std::string &path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream s;
  s << file.rdbuf();
  return s.str();
}

void writeFile(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

template <typename Fn> std::string errorOf(Fn fn) {
  try {
    fn();
  } catch (const rt::Error &error) {
    return error.what();
  }
  return "(no error)";
}
} // namespace

TEST(CpuForward, TinyLlamaMatchesHuggingFace) {
  // Through a plan file, as `weft compile` and `weft run` use it.
  const std::string path = tempPath("tiny.plan");
  rt::writePlan(fixturePlan(), path);
  const double error = relativeErrorAgainst(rt::readPlan(path), "logits.npy");
  EXPECT_LT(error, 1e-4);
  RecordProperty("max_relative_error", std::to_string(error));
  std::printf("fixture: max |weft - HF| relative to max |logit| %.3g\n", error);
}

TEST(CpuForward, Bf16StorageComputesInF32) {
  const plan::Plan bf16 = compileFixture("bf16");
  // Parameters and activations are stored in half the bytes...
  EXPECT_EQ(2 * bf16.memory().parameters(),
            fixturePlan().memory().parameters());
  EXPECT_LT(bf16.memory().activations(), fixturePlan().memory().activations());
  for (const auto &param : bf16.parameters())
    EXPECT_EQ(bf16.buffers(param.buffer()).dtype(), plan::BF16) << param.name();
  // ...and computed in f32, rounding where HF's bf16 model rounds or less
  // often: near HF's bf16 logits, and closer to the f32 logits than HF's
  // own bf16 run is.
  const double againstHfBf16 = relativeErrorAgainst(bf16, "logits_bf16.npy");
  const double againstF32 = relativeErrorAgainst(bf16, "logits.npy");
  const double hfBf16AgainstF32 =
      relativeError(rt::readNpy(kFixture + "/logits_bf16.npy"),
                    rt::readNpy(kFixture + "/logits.npy"));
  EXPECT_LT(againstHfBf16, 2e-2);
  EXPECT_LT(againstF32, hfBf16AgainstF32);
  std::printf("bf16: max |weft - HF bf16| %.3g, |weft - HF f32| %.3g "
              "(relative to max |logit|)\n",
              againstHfBf16, againstF32);
}

/// Each architecture's fixture (tests/fixtures/make_hf_fixtures.py) against
/// the logits of Hugging Face's own model class.
class HuggingFaceFixture : public ::testing::TestWithParam<const char *> {};

TEST_P(HuggingFaceFixture, MatchesHuggingFace) {
  const std::string dir =
      std::string(WEFT_SOURCE_DIR "/tests/fixtures/") + GetParam();
  const double error = relativeErrorAgainst(compileModel(dir, {2, 32, "f32"}),
                                            "logits.npy", dir);
  EXPECT_LT(error, 1e-4);
  RecordProperty("max_relative_error", std::to_string(error));
  std::printf("%s: max |weft - HF| relative to max |logit| %.3g\n", GetParam(),
              error);
}

INSTANTIATE_TEST_SUITE_P(Architectures, HuggingFaceFixture,
                         ::testing::Values("tiny-llama3", "tiny-mistral",
                                           "tiny-qwen2", "tiny-llama-fp16",
                                           "tiny-mixtral", "tiny-bloom"),
                         [](const auto &info) {
                           std::string name = info.param;
                           name.erase(0, 5); // "tiny-"
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST(CpuForward, ArenaIsThePlannedPeak) {
  const plan::Plan &plan = fixturePlan();
  rt::CpuExecutor executor(plan, "fixture");
  EXPECT_EQ(executor.arenaBytes(), plan.memory().arena());
  EXPECT_EQ(plan.memory().arena(),
            plan.memory().activations() + plan.memory().workspace());
  EXPECT_EQ(plan.memory().peak(), plan.memory().parameters() +
                                      plan.memory().arena() +
                                      plan.memory().constants());
  // Every arena buffer lies inside the arena, and the largest live set the
  // planner reports fits in the activations.
  int64_t maxLive = 0;
  for (const auto &step : plan.streams(0).steps())
    maxLive = std::max(maxLive, step.live_bytes());
  EXPECT_LE(maxLive, plan.memory().activations());
  for (const auto &buffer : plan.buffers())
    if (buffer.region() == plan::ARENA)
      EXPECT_LE(buffer.offset() + buffer.bytes(), plan.memory().arena())
          << buffer.name();
  // Fusion: one kernel per distinct group, shared by the four layers.
  EXPECT_LE(plan.kernels_size(), 5);
  int launches = 0;
  for (const auto &step : plan.streams(0).steps())
    launches += step.has_launch();
  EXPECT_EQ(launches, 1 + 4 * 3);
}

TEST(CpuForward, RejectsBadPlanFiles) {
  const std::string good = tempPath("good.plan");
  rt::writePlan(fixturePlan(), good);
  const std::string bytes = readFile(good);

  const std::string truncated = tempPath("truncated.plan");
  writeFile(truncated, bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(errorOf([&] { rt::readPlan(truncated); }),
            truncated + ": truncated or corrupted plan (it does not parse)");

  const std::string corrupted = tempPath("corrupted.plan");
  std::string flipped = bytes;
  flipped[flipped.size() - 1000] ^= 0x5a; // inside a kernel image
  writeFile(corrupted, flipped);
  EXPECT_EQ(errorOf([&] { rt::readPlan(corrupted); }),
            corrupted + ": corrupted plan (checksum mismatch)");

  const std::string notPlan = tempPath("not.plan");
  writeFile(notPlan, "hello");
  EXPECT_EQ(errorOf([&] { rt::readPlan(notPlan); }),
            notPlan + ": not a weft plan (no WEFTPLAN header)");

  plan::Plan future = fixturePlan();
  const std::string versioned = tempPath("future.plan");
  rt::writePlan(future, versioned);
  plan::Plan read = rt::readPlan(versioned);
  read.set_format_version(rt::kPlanFormatVersion + 1);
  read.set_checksum(rt::planChecksum(read));
  std::string serialized;
  read.SerializeToString(&serialized);
  writeFile(versioned, "WEFTPLAN" + serialized);
  EXPECT_EQ(errorOf([&] { rt::readPlan(versioned); }),
            versioned + ": plan format version " +
                std::to_string(rt::kPlanFormatVersion + 1) +
                ", this runtime reads version " +
                std::to_string(rt::kPlanFormatVersion) +
                "; recompile the plan");
}

TEST(CpuForward, RejectsBadInputs) {
  rt::CpuExecutor executor(fixturePlan(), "fixture");
  EXPECT_EQ(errorOf([&] { executor.run(); }),
            "input 'input_ids' was not given");
  rt::HostTensor wrong = rt::readNpy(kFixture + "/input_ids.npy");
  wrong.shape = {1, 128};
  EXPECT_EQ(errorOf([&] { executor.setInput("input_ids", wrong); }),
            "input 'input_ids' is 1x128xi64, the plan expects 2x64xi64");
  EXPECT_EQ(errorOf([&] { executor.setInput("tokens", wrong); }),
            "fixture has no input 'tokens'; its inputs are input_ids");
  rt::HostTensor ids = rt::readNpy(kFixture + "/input_ids.npy");
  reinterpret_cast<int64_t *>(ids.bytes.data())[5] = 512;
  executor.setInput("input_ids", ids);
  EXPECT_EQ(errorOf([&] { executor.run(); }),
            "fixture: step 'model.embed_tokens': index 512 at position 5 is "
            "outside [0, 512)");
}

TEST(CpuForward, RejectsWeightsOfTheWrongShape) {
  // A checkpoint whose embedding has one row too few.
  const std::string path = tempPath("wrong.safetensors");
  std::string header =
      R"({"model.embed_tokens.weight":{"dtype":"F32","shape":[511,256],"data_offsets":[0,523264]}})";
  uint64_t size = header.size();
  std::string bytes(reinterpret_cast<const char *>(&size), 8);
  bytes += header + std::string(523264, '\0');
  writeFile(path, bytes);
  rt::CpuExecutor executor(fixturePlan(), "fixture");
  EXPECT_EQ(errorOf([&] {
              executor.loadParameters(rt::SafetensorsCheckpoint(path));
            }),
            path + ": tensor 'model.embed_tokens.weight' has shape [511, 256], "
                   "the model expects [512, 256]");
  writeFile(path, bytes.substr(0, 50));
  EXPECT_EQ(errorOf([&] { rt::SafetensorsCheckpoint checkpoint(path); }),
            path + ": header of " + std::to_string(size) +
                " bytes runs past the end of the file");
}

namespace {
/// Writes `names` of `from` into one safetensors file at `path`.
void writeShard(const rt::SafetensorsCheckpoint &from,
                const std::vector<std::string> &names,
                const std::string &path) {
  std::string header = "{", data;
  for (const std::string &name : names) {
    const auto *t = from.find(name);
    std::string shape;
    for (int64_t d : t->shape)
      shape += (shape.empty() ? "" : ",") + std::to_string(d);
    header += (header.size() > 1 ? "," : "") + std::string("\"") + name +
              "\":{\"dtype\":\"" + t->dtype + "\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(data.size()) + "," +
              std::to_string(data.size() + t->bytes) + "]}";
    data.append(t->data, t->bytes);
  }
  header += "}";
  uint64_t size = header.size();
  writeFile(path, std::string(reinterpret_cast<const char *>(&size), 8) +
                      header + data);
}

rt::HostTensor runFixture(const rt::SafetensorsCheckpoint &weights) {
  rt::CpuExecutor executor(fixturePlan(), "fixture");
  executor.loadParameters(weights);
  executor.setInput("input_ids", rt::readNpy(kFixture + "/input_ids.npy"));
  executor.run();
  return executor.output("logits");
}
} // namespace

TEST(CpuForward, ShardedCheckpointGivesTheSameLogits) {
  rt::SafetensorsCheckpoint single(kFixture);
  std::vector<std::string> names;
  for (const auto &[name, tensor] : single.tensors())
    names.push_back(name);
  const std::string dir = tempPath("sharded");
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  std::vector<std::string> first(names.begin(),
                                 names.begin() + names.size() / 2),
      second(names.begin() + names.size() / 2, names.end());
  writeShard(single, first, dir + "/model-00001-of-00002.safetensors");
  writeShard(single, second, dir + "/model-00002-of-00002.safetensors");
  std::string index = "{\"metadata\":{},\"weight_map\":{";
  for (size_t i = 0; i < names.size(); ++i)
    index += (i ? "," : "") + std::string("\"") + names[i] + "\":\"model-0000" +
             (i < first.size() ? "1" : "2") + "-of-00002.safetensors\"";
  writeFile(dir + "/model.safetensors.index.json", index + "}}");

  rt::HostTensor fromSingle = runFixture(single);
  rt::HostTensor fromShards = runFixture(rt::SafetensorsCheckpoint(dir));
  EXPECT_EQ(fromSingle.bytes, fromShards.bytes);

  // An index that names a tensor its shard does not hold.
  writeFile(dir + "/model.safetensors.index.json",
            "{\"weight_map\":{\"model.norm.weight\":\"model-00001-of-00002."
            "safetensors\"}}");
  EXPECT_EQ(
      errorOf([&] { rt::SafetensorsCheckpoint checkpoint(dir); }),
      dir +
          "/model.safetensors.index.json: tensor 'model.norm.weight' is not in "
          "model-00001-of-00002.safetensors");
}

// The causal-LM loss (labels = input_ids with some positions -100) against
// the shifted cross-entropy of HF's logits, computed here in double.
TEST(CpuForward, LossMatchesTheShiftedCrossEntropyOfHfLogits) {
  const std::string dir = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama3";
  frontend::BuildOptions options{2, 32, "f32"};
  options.loss = true;
  const plan::Plan plan = compileModel(dir, options);

  rt::HostTensor ids = rt::readNpy(dir + "/input_ids.npy");
  rt::HostTensor labels = ids;
  auto *label = reinterpret_cast<int64_t *>(labels.bytes.data());
  for (int64_t i = 0; i < labels.numElements(); i += 5)
    label[i] = -100; // ignored
  rt::CpuExecutor executor(plan, "loss");
  executor.loadParameters(rt::SafetensorsCheckpoint(dir));
  executor.setInput("input_ids", ids);
  executor.setInput("labels", labels);
  executor.run();
  rt::HostTensor loss = executor.output("loss");
  ASSERT_EQ(loss.numElements(), 1);
  const float actual = reinterpret_cast<const float *>(loss.bytes.data())[0];

  rt::HostTensor logits = rt::readNpy(dir + "/logits.npy");
  const auto *z = reinterpret_cast<const float *>(logits.bytes.data());
  const int64_t b = 2, s = 32, v = logits.shape[2];
  double sum = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < b; ++r)
    for (int64_t t = 0; t + 1 < s; ++t) {
      const int64_t y = label[r * s + t + 1];
      if (y == -100)
        continue;
      const float *row = z + (r * s + t) * v;
      double max = row[0], total = 0;
      for (int64_t j = 0; j < v; ++j)
        max = std::max<double>(max, row[j]);
      for (int64_t j = 0; j < v; ++j)
        total += std::exp(row[j] - max);
      sum += max + std::log(total) - row[y];
      ++counted;
    }
  const double expected = sum / counted;
  EXPECT_NEAR(actual, expected, 1e-5 * expected);
  std::printf("loss %.7f, HF logits' shifted cross-entropy %.7f\n", actual,
              expected);
}
