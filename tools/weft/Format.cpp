// Number formatting for what the CLI prints.
#include "Format.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

std::string weft::cli::withCommas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string weft::cli::decimal(double value, llvm::StringRef unit) {
  const char *prefixes[] = {"", "K", "M", "G", "T", "P"};
  int i = 0;
  while (value >= 1000 && i < 5) {
    value /= 1000;
    ++i;
  }
  std::string text;
  llvm::raw_string_ostream(text)
      << llvm::format(i ? "%.2f " : "%.0f ", value) << prefixes[i] << unit;
  return text;
}

std::string weft::cli::binary(double bytes) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (bytes >= 1024 && i < 4) {
    bytes /= 1024;
    ++i;
  }
  std::string text;
  llvm::raw_string_ostream(text)
      << llvm::format(i ? "%.1f " : "%.0f ", bytes) << units[i];
  return text;
}
