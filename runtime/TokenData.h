// Training data: a flat binary file of token ids (u16 or u32, little endian,
// as Megatron's and nanoGPT's .bin files hold them), memory-mapped and cut
// into samples of T tokens. Which samples a step reads depends only on the
// step, the batch, the order and the seed, so a resumed run reads what an
// uninterrupted one would.
#ifndef WEFT_RUNTIME_TOKENDATA_H
#define WEFT_RUNTIME_TOKENDATA_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace weft::runtime {

class MappedFile;

enum class TokenWidth { U16, U32 };
enum class DataOrder { Sequential, Shuffled };

class TokenData {
public:
  /// Maps `path`. Throws Error naming the file: it cannot be opened, its
  /// size is not a whole number of tokens, or it holds less than one sample.
  TokenData(const std::string &path, TokenWidth width, int64_t sequence);
  ~TokenData();
  TokenData(const TokenData &) = delete;
  TokenData &operator=(const TokenData &) = delete;

  int64_t tokens() const { return count; }
  /// Whole samples of `sequence` tokens: sample i is tokens
  /// [i·T, (i+1)·T); a tail shorter than T is not used.
  int64_t samples() const { return count / sequence; }

  /// The `batch` samples of optimizer step `step` (from 0) as int64 ids,
  /// [batch, T] row-major into `out`. Step s reads positions s·B … s·B+B−1
  /// of the sample order, which runs through every sample once per epoch
  /// and starts again: in file order (Sequential), or in a permutation of
  /// each epoch drawn from `seed` and the epoch (Shuffled; the same on
  /// every machine). A token ≥ `vocab` is an Error naming the file, the
  /// position and the value.
  void batch(int64_t step, int64_t batch, DataOrder order, uint64_t seed,
             int64_t vocab, int64_t *out) const;

  /// The sample at `position` of the order (the permutation of its epoch).
  int64_t sampleAt(int64_t position, DataOrder order, uint64_t seed) const;

private:
  std::string path;
  TokenWidth width;
  int64_t sequence, count = 0;
  std::unique_ptr<MappedFile> mapping;
  /// The permutation of one (seed, epoch), drawn once and kept.
  mutable int64_t permutedEpoch = -1;
  mutable uint64_t permutedSeed = 0;
  mutable std::vector<int64_t> permutation;
};

/// A byte-level tokenizer: each byte of `text` is its own id (0–255), the
/// vocabulary any model with at least 256 ids can train on.
std::vector<uint32_t> tokenizeBytes(const std::string &text);

/// Writes `ids` as a flat token file. Throws Error naming the file when it
/// cannot be written or an id does not fit `width`.
void writeTokens(const std::string &path, const std::vector<uint32_t> &ids,
                 TokenWidth width);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_TOKENDATA_H
