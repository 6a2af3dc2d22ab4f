// The plan weft-cuda-check --collectives runs on GPUs against the CPU, here
// on the CPU runtime alone: on one rank (ctest) and under mpirun -np 2
// (ctest collectives_plan_mpi). Every rank gives the same x, so the result is
// known: the sums make P·x, the reduce-scatter P²·x's blocks, and the gather,
// slice, exchange and gather put them back in place: y = P²·x to the bit
// (P a power of two), which checks where every block lands.
#include "../../../tools/weft-cuda-check/CollectivesPlan.h"

#include "runtime/Communicator.h"
#include "runtime/cpu/CpuExecutor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

namespace rt = weft::runtime;
namespace plan = weft::plan;

TEST(CollectivesPlan, EveryBlockLandsInPlace) {
  const int64_t p = rt::Communicator::launchedRanks();
  const plan::Plan collectives = weft::cudacheck::collectivesPlan(p, "cpu");
  rt::CpuExecutor cpu(collectives, "collectives", 1);
  const int64_t count = 2 * p * 3 * p * 4 * p;
  rt::HostTensor x{
      plan::F32, {2 * p, 3 * p, 4 * p}, std::vector<char>(count * 4)};
  rt::HostTensor ids{plan::I64, {4 * p}, std::vector<char>(4 * p * 8)};
  std::mt19937 rng(7); // the same on every rank
  std::normal_distribution<float> normal;
  std::vector<float> want(count);
  double squares = 0; // of 0.5 · mean (P·x) and 0.5 · y (P²·x), every rank's
  for (int64_t i = 0; i < count; ++i) {
    const float v = normal(rng);
    std::memcpy(x.bytes.data() + i * 4, &v, 4);
    want[i] = static_cast<float>(p * p) * v;
    const double a = 0.5 * p * v, b = 0.5 * p * p * v;
    squares += p * (a * a + b * b);
  }
  const int rank = p > 1 ? rt::Communicator::world().rank() : 0;
  for (int64_t i = 0; i < 4 * p; ++i) {
    const int64_t id = (i * 7 + rank) % 11; // differs by rank: max over them
    std::memcpy(ids.bytes.data() + i * 8, &id, 8);
  }
  cpu.setInput("x", x);
  cpu.setInput("ids", ids);
  cpu.run();
  const rt::HostTensor y = cpu.output("y");
  ASSERT_EQ(y.bytes.size(), want.size() * 4);
  EXPECT_EQ(std::memcmp(y.bytes.data(), want.data(), y.bytes.size()), 0);
  const rt::HostTensor idsMax = cpu.output("ids_max");
  for (int64_t i = 0; i < 4 * p; ++i) {
    int64_t got;
    std::memcpy(&got, idsMax.bytes.data() + i * 8, 8);
    int64_t expected = 0;
    for (int r = 0; r < p; ++r)
      expected = std::max(expected, (i * 7 + r) % 11);
    EXPECT_EQ(got, expected) << "ids_max[" << i << "]";
  }
  float norm;
  std::memcpy(&norm, cpu.output("norm").bytes.data(), 4);
  EXPECT_NEAR(norm, std::sqrt(squares), 1e-5 * std::sqrt(squares));
}
