// Token files: samples, the order steps read them in (sequential, and a
// shuffle that is a permutation per epoch, fixed by the seed), and bad files.
#include "runtime/TokenData.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <vector>

namespace rt = weft::runtime;

namespace {
std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/weft_tokens_" + name;
}

/// A u16 file of the ids 0, 1, …, n−1.
std::string countingFile(const std::string &name, int n) {
  std::vector<uint32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0u);
  const std::string path = tempPath(name);
  rt::writeTokens(path, ids, rt::TokenWidth::U16);
  return path;
}

template <typename Fn> std::string errorOf(Fn fn) {
  try {
    fn();
  } catch (const rt::Error &e) {
    return e.what();
  }
  return "(no error)";
}
} // namespace

TEST(TokenData, SequentialStepsReadConsecutiveSamplesAndWrap) {
  // 42 tokens, T = 4: 10 samples (the 2-token tail unused); B = 3.
  rt::TokenData data(countingFile("seq", 42), rt::TokenWidth::U16, 4);
  EXPECT_EQ(data.tokens(), 42);
  EXPECT_EQ(data.samples(), 10);
  std::vector<int64_t> out(12, -1);
  data.batch(0, 3, rt::DataOrder::Sequential, 0, 1000, out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  // Step 3 reads positions 9, 10, 11: sample 9, then samples 0 and 1 again.
  data.batch(3, 3, rt::DataOrder::Sequential, 0, 1000, out.data());
  EXPECT_EQ(out,
            (std::vector<int64_t>{36, 37, 38, 39, 0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(TokenData, ShuffleIsAPermutationPerEpochFixedBySeed) {
  rt::TokenData data(countingFile("shuffle", 1000), rt::TokenWidth::U16, 10);
  const int64_t n = data.samples();
  auto epoch = [&](int64_t e, uint64_t seed) {
    std::vector<int64_t> order;
    for (int64_t p = e * n; p < (e + 1) * n; ++p)
      order.push_back(data.sampleAt(p, rt::DataOrder::Shuffled, seed));
    return order;
  };
  const std::vector<int64_t> first = epoch(0, 1);
  std::set<int64_t> seen(first.begin(), first.end());
  EXPECT_EQ(seen.size(), static_cast<size_t>(n)); // every sample once
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), n - 1);
  EXPECT_EQ(epoch(0, 1), first); // the same seed, the same order
  EXPECT_NE(epoch(0, 2), first); // another seed, another
  EXPECT_NE(epoch(1, 1), first); // each epoch its own
  // Pinned: a resumed run of another build must read the same samples.
  EXPECT_EQ(std::vector<int64_t>(first.begin(), first.begin() + 8),
            (std::vector<int64_t>{10, 76, 66, 54, 47, 91, 73, 63}));
  std::vector<int64_t> out(20);
  data.batch(0, 2, rt::DataOrder::Shuffled, 1, 1000, out.data());
  EXPECT_EQ(out[0], first[0] * 10);
  EXPECT_EQ(out[10], first[1] * 10);
}

TEST(TokenData, ReadsU32AndChecksTheVocabulary) {
  const std::string path = tempPath("u32");
  rt::writeTokens(path, {7, 70000, 3, 5}, rt::TokenWidth::U32);
  rt::TokenData data(path, rt::TokenWidth::U32, 2);
  std::vector<int64_t> out(2);
  data.batch(1, 1, rt::DataOrder::Sequential, 0, 100, out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(errorOf([&] {
              data.batch(0, 1, rt::DataOrder::Sequential, 0, 100, out.data());
            }),
            path + ": token 1 is 70000, outside the model's vocabulary of 100");
}

TEST(TokenData, RefusesBadFiles) {
  EXPECT_EQ(errorOf([] {
              rt::TokenData(tempPath("absent"), rt::TokenWidth::U16, 4);
            }),
            tempPath("absent") + ": cannot open: No such file or directory");
  std::ofstream(tempPath("odd"), std::ios::binary) << "abc";
  EXPECT_EQ(
      errorOf([] { rt::TokenData(tempPath("odd"), rt::TokenWidth::U16, 1); }),
      tempPath("odd") + ": 3 bytes is not a whole number of u16 tokens");
  const std::string shortFile = countingFile("short", 3);
  EXPECT_EQ(errorOf([&] { rt::TokenData(shortFile, rt::TokenWidth::U16, 4); }),
            shortFile + ": 3 tokens, fewer than one sample of 4");
  EXPECT_EQ(
      errorOf([] {
        rt::writeTokens(tempPath("wide"), {1, 65536}, rt::TokenWidth::U16);
      }),
      tempPath("wide") + ": token 1 is 65536, too large for u16");
}

TEST(TokenData, ByteTokenizerMapsEachByte) {
  EXPECT_EQ(rt::tokenizeBytes("hé"), (std::vector<uint32_t>{104, 195, 169}));
}
