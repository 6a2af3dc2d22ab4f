// A small parser for the options of one `weft` verb, so that every verb
// reports unknown or malformed options the same way and prints its usage.
#ifndef WEFT_TOOLS_WEFT_COMMANDLINE_H
#define WEFT_TOOLS_WEFT_COMMANDLINE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>
#include <vector>

namespace weft::cli {

struct OptionSpec {
  std::string name;      // "seq" for --seq
  std::string shortName; // "o" for -o, or empty
  std::string valueName; // "N"; empty for a flag without a value
  std::string help;
};

struct VerbSpec {
  std::string name;      // "inspect"
  std::string arguments; // "MODEL"
  std::string summary;   // one line
  std::string details;   // paragraphs after the usage line
  std::vector<OptionSpec> options;
  size_t minPositional = 0, maxPositional = 0;
};

class ParsedArgs {
public:
  std::vector<std::string> positional;

  bool has(llvm::StringRef name) const { return values.count(name) != 0; }
  /// The last value given for --name.
  std::optional<std::string> get(llvm::StringRef name) const;
  /// Every value given for --name, in order (options may repeat).
  std::vector<std::string> getAll(llvm::StringRef name) const;
  /// The value of --name as a positive integer, `fallback` when absent.
  llvm::Expected<int64_t> getPositiveInt(llvm::StringRef name,
                                         int64_t fallback) const;

  llvm::StringMap<std::vector<std::string>> values;
};

/// Parses `args` (after the verb) against `spec`. The error message names the
/// offending argument; `--help` yields an empty ParsedArgs with "help" set.
llvm::Expected<ParsedArgs> parseArgs(llvm::ArrayRef<std::string> args,
                                     const VerbSpec &spec);

/// The verb's usage text: usage line, summary, details and options.
std::string usage(const VerbSpec &spec);

} // namespace weft::cli

#endif // WEFT_TOOLS_WEFT_COMMANDLINE_H
