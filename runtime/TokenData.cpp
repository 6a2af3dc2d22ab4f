// Memory-mapped token files and the order samples are read in.
#include "runtime/TokenData.h"

#include "runtime/Error.h"
#include "runtime/MappedFile.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <numeric>

namespace weft::runtime {

namespace {
int64_t bytesPerToken(TokenWidth width) {
  return width == TokenWidth::U16 ? 2 : 4;
}

/// SplitMix64: a generator fully specified here, so that a permutation is
/// the same with every standard library.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, bound) without modulo bias (Lemire's method).
  uint64_t below(uint64_t bound) {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < bound) {
      const uint64_t threshold = -bound % bound;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * bound;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }
};
} // namespace

TokenData::TokenData(const std::string &path, TokenWidth width,
                     int64_t sequence)
    : path(path), width(width), sequence(sequence) {
  if (sequence < 1)
    throw Error(path + ": a sample needs at least one token");
  mapping = std::make_unique<MappedFile>(path);
  const int64_t bytes = bytesPerToken(width);
  if (mapping->size() % bytes)
    throw Error(path + ": " + std::to_string(mapping->size()) +
                " bytes is not a whole number of " +
                (width == TokenWidth::U16 ? "u16" : "u32") + " tokens");
  count = static_cast<int64_t>(mapping->size()) / bytes;
  if (count < sequence)
    throw Error(path + ": " + std::to_string(count) +
                " tokens, fewer than one sample of " +
                std::to_string(sequence));
}

TokenData::~TokenData() = default;

int64_t TokenData::sampleAt(int64_t position, DataOrder order,
                            uint64_t seed) const {
  const int64_t n = samples();
  const int64_t epoch = position / n, index = position % n;
  if (order == DataOrder::Sequential)
    return index;
  if (permutedEpoch != epoch || permutedSeed != seed) {
    // Fisher–Yates from a generator seeded by (seed, epoch).
    permutation.resize(n);
    std::iota(permutation.begin(), permutation.end(), int64_t{0});
    SplitMix64 rng{seed * 0x100000001b3ull + static_cast<uint64_t>(epoch)};
    for (int64_t i = n - 1; i > 0; --i)
      std::swap(permutation[i],
                permutation[rng.below(static_cast<uint64_t>(i) + 1)]);
    permutedEpoch = epoch;
    permutedSeed = seed;
  }
  return permutation[index];
}

void TokenData::batch(int64_t step, int64_t batch, DataOrder order,
                      uint64_t seed, int64_t vocab, int64_t *out) const {
  const auto *base = reinterpret_cast<const unsigned char *>(mapping->data());
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t sample = sampleAt(step * batch + b, order, seed);
    for (int64_t t = 0; t < sequence; ++t) {
      const int64_t at = sample * sequence + t;
      uint32_t id;
      if (width == TokenWidth::U16) {
        uint16_t v;
        std::memcpy(&v, base + 2 * at, 2);
        id = v;
      } else {
        std::memcpy(&id, base + 4 * at, 4);
      }
      if (static_cast<int64_t>(id) >= vocab)
        throw Error(path + ": token " + std::to_string(at) + " is " +
                    std::to_string(id) +
                    ", outside the model's vocabulary of " +
                    std::to_string(vocab));
      out[b * sequence + t] = id;
    }
  }
}

std::vector<uint32_t> tokenizeBytes(const std::string &text) {
  return {reinterpret_cast<const unsigned char *>(text.data()),
          reinterpret_cast<const unsigned char *>(text.data()) + text.size()};
}

void writeTokens(const std::string &path, const std::vector<uint32_t> &ids,
                 TokenWidth width) {
  std::string bytes;
  bytes.reserve(ids.size() * bytesPerToken(width));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (width == TokenWidth::U16) {
      if (ids[i] > 0xffff)
        throw Error(path + ": token " + std::to_string(i) + " is " +
                    std::to_string(ids[i]) + ", too large for u16");
      const uint16_t v = static_cast<uint16_t>(ids[i]);
      bytes.append(reinterpret_cast<const char *>(&v), 2);
    } else {
      bytes.append(reinterpret_cast<const char *>(&ids[i]), 4);
    }
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out.flush())
    throw Error(path + ": cannot write: " + std::strerror(errno));
}

} // namespace weft::runtime
