// Training plans on the CPU against Hugging Face and PyTorch: the tiny Llama
// fixture's loss and the gradient of every parameter equal those of HF's
// LlamaForCausalLM in fp32 (tests/fixtures/make_llama_grads.py).
#include "CompileModel.h"
#include "runtime/cpu/CpuExecutor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

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
// norm and the loss within 1e-4.
TEST(Train, TinyLlamaGradientsEqualHuggingFace) {
  plan::Plan plan = compileModel(kFixture, {2, 64, "f32", true},
                                 codegen::Device::Cpu, /*train=*/true);
  rt::CpuExecutor executor(plan, "train");
  executor.loadParameters(rt::SafetensorsCheckpoint(kFixture));
  rt::HostTensor ids = rt::readNpy(kFixture + "/input_ids.npy");
  executor.setInput("input_ids", ids);
  executor.setInput("labels", ids);
  executor.run();

  rt::SafetensorsCheckpoint expected(kFixture + "/grads.safetensors");
  const float loss = floatsOf(executor.output("loss"))[0];
  EXPECT_NEAR(loss, readFloats(expected, "loss")[0], 1e-4 * loss);
  int checked = 0;
  double worstElement = 0, worstNorm = 0;
  for (const plan::Binding &parameter : plan.parameters()) {
    const std::string &name = parameter.name();
    std::vector<float> grad = floatsOf(executor.output("grad." + name));
    std::vector<float> samples = readFloats(expected, name);
    const double largest = readFloats(expected, "max." + name)[0];
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
    const double expectedNorm = readFloats(expected, "norm." + name)[0];
    EXPECT_NEAR(std::sqrt(norm), expectedNorm, 1e-4 * expectedNorm) << name;
    worstNorm = std::max(worstNorm, std::abs(std::sqrt(norm) - expectedNorm) /
                                        expectedNorm);
    ++checked;
  }
  EXPECT_EQ(checked, 39);
  std::printf("loss %.7f vs %.7f; worst element error %.2e of the largest, "
              "worst norm error %.2e\n",
              loss, readFloats(expected, "loss")[0], worstElement, worstNorm);
}
