// Training plans on the CPU against Hugging Face and PyTorch: each tiny
// fixture's loss and the gradient of every parameter equal those of the HF
// model in fp32 (tests/fixtures/make_grads.py), and 30
// AdamW steps follow torch.optim.AdamW's loss curve
// (tests/fixtures/make_train_reference.py).
#include "CompileModel.h"
#include "runtime/TokenData.h"
#include "runtime/Trainer.h"
#include "runtime/cpu/CpuExecutor.h"

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

using namespace weft;
namespace rt = weft::runtime;
using weft::testing::compileModel;

namespace {
const std::string kFixture = WEFT_SOURCE_DIR "/tests/fixtures/tiny-llama";

std::vector<float> floatsOf(const rt::HostTensor &t) {
  std::vector<float> v(t.numElements());
  std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

/// The one f32 value of checkpoint tensor `name`, or all of them.
std::vector<float> readFloats(const rt::SafetensorsCheckpoint &file,
                              const std::string &name) {
  const auto *tensor = file.find(name);
  EXPECT_TRUE(tensor) << name;
  if (!tensor)
    return {};
  std::vector<float> v(tensor->bytes / 4);
  file.read(name, tensor->shape, plan::F32, v.data());
  return v;
}
} // namespace

// Relative to each gradient's largest element: the sampled elements, its L2
// norm and the loss within 1e-4, for each architecture's fixture (Llama,
// Mistral's sliding window, Qwen2's biases, Mixtral's experts, BLOOM's ALiBi
// and LayerNorm).
class HuggingFaceGradients : public ::testing::TestWithParam<const char *> {};

TEST_P(HuggingFaceGradients, EqualTheModelsOwn) {
  const std::string dir =
      WEFT_SOURCE_DIR "/tests/fixtures/" + std::string(GetParam());
  rt::HostTensor ids = rt::readNpy(dir + "/input_ids.npy");
  plan::Plan plan = compileModel(dir, {ids.shape[0], ids.shape[1], "f32", true},
                                 codegen::Device::Cpu, /*train=*/true);
  rt::CpuExecutor executor(plan, "train");
  executor.loadParameters(rt::SafetensorsCheckpoint(dir));
  executor.setInput("input_ids", ids);
  executor.setInput("labels", ids);
  executor.run();

  rt::SafetensorsCheckpoint expected(dir + "/grads.safetensors");
  const float loss = floatsOf(executor.output("loss"))[0];
  EXPECT_NEAR(loss, readFloats(expected, "loss")[0], 1e-4 * loss);
  int checked = 0;
  double worstElement = 0, worstNorm = 0;
  for (const plan::Binding &parameter : plan.parameters()) {
    const std::string &name = parameter.name();
    std::vector<float> grad = floatsOf(executor.output("grad." + name));
    std::vector<float> samples = readFloats(expected, name);
    // An expert no token chose has a zero gradient: compare absolutely.
    const double largest =
        std::max<double>(readFloats(expected, "max." + name)[0], 1e-6);
    const size_t n = grad.size(), count = samples.size();
    for (size_t k = 0; k < count; ++k) {
      ASSERT_NEAR(grad[k * n / count], samples[k], 1e-4 * largest)
          << name << "[" << k * n / count << "]";
      worstElement = std::max(
          worstElement, std::abs(grad[k * n / count] - samples[k]) / largest);
    }
    double norm = 0;
    for (float g : grad)
      norm += double(g) * g;
    const double expectedNorm =
        std::max<double>(readFloats(expected, "norm." + name)[0], 1e-6);
    EXPECT_NEAR(std::sqrt(norm), expectedNorm, 1e-4 * expectedNorm) << name;
    worstNorm = std::max(worstNorm, std::abs(std::sqrt(norm) - expectedNorm) /
                                        expectedNorm);
    ++checked;
  }
  EXPECT_EQ(checked * 3 + 1, static_cast<int>(expected.tensors().size()));
  std::printf("%s: loss %.7f vs %.7f; worst element error %.2e of the "
              "largest, worst norm error %.2e\n",
              GetParam(), loss, readFloats(expected, "loss")[0], worstElement,
              worstNorm);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HuggingFaceGradients,
                         ::testing::Values("tiny-llama", "tiny-mistral",
                                           "tiny-qwen2", "tiny-mixtral",
                                           "tiny-bloom"));

namespace {
const std::string kCorpus = WEFT_SOURCE_DIR "/examples/corpus/gpl-3.txt";

/// The corpus as a u16 token file (once per process).
const std::string &corpusTokens() {
  static const std::string path = [] {
    std::ifstream file(kCorpus, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(file)),
                     std::istreambuf_iterator<char>());
    std::string out = ::testing::TempDir() + "/weft_corpus.bin";
    rt::writeTokens(out, rt::tokenizeBytes(text), rt::TokenWidth::U16);
    return out;
  }();
  return path;
}

struct TrainPlan {
  std::string dtype = "f32", remat = "none";
  int64_t rematBudget = 0;
  int64_t *peak = nullptr; // receives the plan's planned peak
  bool offload = false;    // weft-offload-activations
  int64_t *host = nullptr; // receives the plan's host memory
  int64_t lossTiles = 1;   // weft-tile-loss
};

/// Losses of `steps` optimizer steps of the fixture as `run` configures them
/// (the keys of train_reference.json), compiled as `how` says.
std::vector<double> trainFixture(const nlohmann::json &run, int steps,
                                 const TrainPlan &how = {}) {
  const int64_t batch = run["batch"], seq = run["seq"];
  const int64_t accumulation = run["accumulation"];
  const int64_t micro = batch / accumulation;
  rt::OptimizerOptions options;
  options.lr = run["lr"];
  options.weightDecay = run["weight_decay"];
  options.maxGradNorm = run["clip"];
  if (!run["no_decay"].get<std::string>().empty())
    options.noDecay = {run["no_decay"]};
  if (run["warmup"] > 0)
    options.schedule = {rt::LearningRateSchedule::Kind::WarmupCosine,
                        run["warmup"], steps, 0.0};
  weft::OptimizerOptions adamw; // AdamW's defaults but these
  adamw.weightDecay = options.weightDecay;
  adamw.maxGradNorm = options.maxGradNorm;
  adamw.noDecay = run["no_decay"];
  adamw.accumulation = accumulation;
  PipelineOptions pipeline{"", 2, true, "", how.remat, how.rematBudget, adamw};
  pipeline.offloadActivations = how.offload;
  pipeline.lossTiles = how.lossTiles;
  plan::Plan plan = compileModel(kFixture, {micro, seq, how.dtype, true},
                                 codegen::Device::Cpu, pipeline);
  if (how.peak)
    *how.peak = plan.memory().peak();
  if (how.host)
    *how.host = plan.memory().host();
  rt::CpuExecutor executor(plan, "train");
  executor.loadParameters(rt::SafetensorsCheckpoint(kFixture));
  rt::Trainer trainer(executor, "train", options);
  rt::TokenData data(corpusTokens(), rt::TokenWidth::U16, seq);
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    std::vector<int64_t> ids(batch * seq);
    data.batch(s, batch, rt::DataOrder::Sequential, 0, 512, ids.data());
    std::vector<rt::HostTensor> parts;
    for (int64_t a = 0; a < accumulation; ++a) {
      rt::HostTensor part{plan::I64, {micro, seq}, {}};
      part.bytes.resize(micro * seq * sizeof(int64_t));
      std::memcpy(part.bytes.data(), ids.data() + a * micro * seq,
                  part.bytes.size());
      parts.push_back(std::move(part));
    }
    losses.push_back(trainer.step(parts).loss);
  }
  return losses;
}

nlohmann::json referenceRun(const std::string &name) {
  std::ifstream file(kFixture + "/train_reference.json");
  nlohmann::json reference = nlohmann::json::parse(file);
  for (const nlohmann::json &run : reference["runs"])
    if (run["name"] == name)
      return run;
  ADD_FAILURE() << "no run " << name;
  return {};
}

void expectLossCurve(const std::string &name) {
  nlohmann::json run = referenceRun(name);
  std::vector<double> expected = run["losses"];
  std::vector<double> losses = trainFixture(run, expected.size());
  double worst = 0;
  for (size_t s = 0; s < expected.size(); ++s) {
    EXPECT_NEAR(losses[s], expected[s], 1e-4 * expected[s]) << "step " << s;
    worst = std::max(worst, std::abs(losses[s] - expected[s]) / expected[s]);
  }
  std::printf("%s: loss %.5f -> %.5f (torch %.5f -> %.5f), worst relative "
              "error %.2e\n",
              name.c_str(), losses.front(), losses.back(), expected.front(),
              expected.back(), worst);
}
} // namespace

// AdamW's defaults but the learning rate, weight decay on every parameter.
TEST(Train, ThirtyAdamWStepsFollowTorch) { expectLossCurve("plain"); }

// Global-norm clipping, warm-up then cosine, two micro-batches per step,
// norm weights without weight decay.
TEST(Train, ClippingScheduleAndAccumulationFollowTorch) {
  expectLossCurve("clipped");
}

// bf16 parameters and activations with fp32 master weights and moments: the
// loss stays within 2e-3 (relative) of fp32 training's over 30 steps — the
// fixture's fp32 curve, which weft's fp32 training follows within 1e-4
// (ThirtyAdamWStepsFollowTorch).
TEST(Train, Bf16TracksFp32) {
  nlohmann::json run = referenceRun("plain");
  std::vector<double> fp32 = run["losses"];
  ASSERT_EQ(fp32.size(), 30u);
  std::vector<double> bf16 = trainFixture(run, 30, {"bf16"});
  double worst = 0;
  for (size_t s = 0; s < fp32.size(); ++s) {
    EXPECT_NEAR(bf16[s], fp32[s], 2e-3 * fp32[s]) << "step " << s;
    worst = std::max(worst, std::abs(bf16[s] - fp32[s]) / fp32[s]);
  }
  std::printf("bf16: loss %.5f -> %.5f, worst relative distance to fp32 "
              "%.2e\n",
              bf16.front(), bf16.back(), worst);
}

// Recomputing activations in the backward changes no number: every policy
// gives the losses of keeping them, bit for bit, with a lower planned peak;
// auto, keeping more than mincut within its budget, plans a peak between the
// two (here mincut's: both peak at the lm_head's weight gradient).
TEST(Train, RematerialisationKeepsTheLossesAndLowersThePeak) {
  // Long enough sequences that the saved activations, not the gradients at
  // the end of the backward, make the peak.
  nlohmann::json run = referenceRun("plain");
  run["seq"] = 256;
  int64_t basePeak = 0;
  std::vector<double> base =
      trainFixture(run, 3, {"f32", "none", 0, &basePeak});
  std::map<std::string, int64_t> peaks;
  for (const char *policy : {"full", "selective", "mincut"}) {
    std::vector<double> losses =
        trainFixture(run, 3, {"f32", policy, 0, &peaks[policy]});
    EXPECT_EQ(losses, base) << policy;
    EXPECT_LT(peaks[policy], basePeak) << policy;
  }
  EXPECT_LT(peaks["full"], peaks["mincut"]);
  EXPECT_EQ(peaks["selective"], peaks["mincut"]); // the same cut here
  int64_t autoPeak = 0;
  std::vector<double> losses =
      trainFixture(run, 3, {"f32", "auto", 30 << 20, &autoPeak});
  EXPECT_EQ(losses, base);
  EXPECT_LT(autoPeak, basePeak);
  EXPECT_GE(autoPeak, peaks["mincut"]);
  std::printf("planned peak: none %lld, full %lld, selective %lld, mincut "
              "%lld, auto (30 MiB saved) %lld bytes\n",
              (long long)basePeak, (long long)peaks["full"],
              (long long)peaks["selective"], (long long)peaks["mincut"],
              (long long)autoPeak);
}

// ALST's tiled logits and loss: the same losses (each tile's summed, the
// total over the count, against the mean over every token: within rounding)
// in fp32 and bf16, with two micro-batches a step and tiles of unequal size.
// Where the logits make the peak (4 × 256 tokens in one micro-batch), the
// planned peak drops: only one tile's logits and gradient are alive at a
// time.
TEST(Train, TiledLossKeepsTheLossesAndLowersThePeak) {
  for (const char *name : {"plain", "clipped"})
    for (const char *dtype : {"f32", "bf16"}) {
      SCOPED_TRACE(std::string(name) + " " + dtype);
      nlohmann::json run = referenceRun(name);
      run["seq"] = 256;
      run["batch"] = 4;
      int64_t wholePeak = 0, tiledPeak = 0;
      std::vector<double> whole =
          trainFixture(run, 3, {dtype, "none", 0, &wholePeak});
      TrainPlan tiled{dtype, "none", 0, &tiledPeak};
      tiled.lossTiles = 3;
      std::vector<double> losses = trainFixture(run, 3, tiled);
      ASSERT_EQ(losses.size(), whole.size());
      for (size_t s = 0; s < whole.size(); ++s)
        EXPECT_NEAR(losses[s], whole[s],
                    (std::string(dtype) == "bf16" ? 2e-3 : 1e-5) * whole[s])
            << "step " << s;
      if (run["accumulation"] == 1)
        EXPECT_LT(tiledPeak, wholePeak);
      std::printf("%s %s: planned peak %lld bytes whole, %lld in 3 tiles; "
                  "loss %.6f -> %.6f (whole %.6f -> %.6f)\n",
                  name, dtype, (long long)wholePeak, (long long)tiledPeak,
                  losses.front(), losses.back(), whole.front(), whole.back());
    }
}

// ALST's activation offload: what the backward reads waits in host memory —
// the same losses to the bit, alone and on full rematerialisation's layer
// inputs. Alone, the device peak drops by most of the saved activations;
// after full rematerialisation the peak is the first layer's backward, where
// only its own (reloaded) input is saved anyway: no higher.
TEST(Train, ActivationOffloadKeepsTheLossesAndLowersTheDevicePeak) {
  nlohmann::json run = referenceRun("plain");
  run["seq"] = 256;
  for (const char *remat : {"none", "full"}) {
    SCOPED_TRACE(remat);
    int64_t keptPeak = 0, peak = 0, host = 0;
    std::vector<double> kept =
        trainFixture(run, 3, {"f32", remat, 0, &keptPeak});
    std::vector<double> offloaded =
        trainFixture(run, 3, {"f32", remat, 0, &peak, true, &host});
    EXPECT_EQ(offloaded, kept);
    if (std::string(remat) == "none")
      EXPECT_LT(peak, keptPeak);
    else
      EXPECT_LE(peak, keptPeak);
    EXPECT_GT(host, 0);
    std::printf("remat %s: device peak %lld bytes kept, %lld offloaded (host "
                "%lld)\n",
                remat, (long long)keptPeak, (long long)peak, (long long)host);
  }
}
