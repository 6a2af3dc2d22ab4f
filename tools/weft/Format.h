// Number formatting for what the CLI prints.
#ifndef WEFT_TOOLS_WEFT_FORMAT_H
#define WEFT_TOOLS_WEFT_FORMAT_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>

namespace weft::cli {

/// 3164416 -> "3,164,416".
std::string withCommas(int64_t n);
/// 1.61e9, "FLOP" -> "1.61 GFLOP" (powers of 1000).
std::string decimal(double value, llvm::StringRef unit);
/// 12681216 -> "12.1 MiB" (powers of 1024).
std::string binary(double bytes);

} // namespace weft::cli

#endif // WEFT_TOOLS_WEFT_FORMAT_H
