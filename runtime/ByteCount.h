// A count of bytes as users write it: "4096", "64K", "512M", "2G" (binary
// multiples) — the compiler's --remat-budget and the runtime's
// WEFT_CUDNN_WORKSPACE read it the same way.
#ifndef WEFT_RUNTIME_BYTECOUNT_H
#define WEFT_RUNTIME_BYTECOUNT_H

#include <cstdint>
#include <optional>
#include <string_view>

namespace weft::runtime {

/// The bytes `text` names, or nothing when it is not digits with an
/// optional K, M or G suffix, or names more than 2^62 bytes.
inline std::optional<int64_t> parseByteCount(std::string_view text) {
  int shift = 0;
  if (!text.empty() &&
      (text.back() == 'K' || text.back() == 'M' || text.back() == 'G')) {
    shift = text.back() == 'K' ? 10 : text.back() == 'M' ? 20 : 30;
    text.remove_suffix(1);
  }
  if (text.empty())
    return std::nullopt;
  int64_t count = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || count > ((int64_t{1} << 62) >> shift) / 10)
      return std::nullopt;
    count = count * 10 + (c - '0');
  }
  if (count > ((int64_t{1} << 62) >> shift))
    return std::nullopt;
  return count << shift;
}

} // namespace weft::runtime

#endif // WEFT_RUNTIME_BYTECOUNT_H
