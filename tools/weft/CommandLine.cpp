// Option parsing and usage text for the weft verbs.
#include "CommandLine.h"

#include "llvm/Support/raw_ostream.h"

using namespace weft::cli;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

const OptionSpec *findOption(const VerbSpec &spec, llvm::StringRef arg) {
  for (const OptionSpec &option : spec.options) {
    if (arg == "--" + option.name)
      return &option;
    if (!option.shortName.empty() && arg == "-" + option.shortName)
      return &option;
  }
  return nullptr;
}
} // namespace

std::optional<std::string> ParsedArgs::get(llvm::StringRef name) const {
  auto it = values.find(name);
  if (it == values.end())
    return std::nullopt;
  return it->second.back();
}

std::vector<std::string> ParsedArgs::getAll(llvm::StringRef name) const {
  auto it = values.find(name);
  return it == values.end() ? std::vector<std::string>() : it->second;
}

llvm::Expected<int64_t> ParsedArgs::getPositiveInt(llvm::StringRef name,
                                                   int64_t fallback) const {
  std::optional<std::string> text = get(name);
  if (!text)
    return fallback;
  int64_t value;
  if (llvm::StringRef(*text).getAsInteger(10, value) || value < 1)
    return makeError("--" + name + " expects a positive integer, found '" +
                     *text + "'");
  return value;
}

llvm::Expected<ParsedArgs>
weft::cli::parseArgs(llvm::ArrayRef<std::string> args, const VerbSpec &spec) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.values["help"].push_back("");
      return parsed;
    }
    if (!arg.starts_with("-") || arg == "-") {
      parsed.positional.push_back(arg.str());
      continue;
    }
    auto [flag, inlineValue] = arg.split('=');
    const OptionSpec *option = findOption(spec, flag);
    if (!option)
      return makeError("unknown option '" + flag + "'");
    if (option->valueName.empty()) {
      if (flag.size() != arg.size())
        return makeError("option '" + flag + "' takes no value");
      parsed.values[option->name].push_back("");
      continue;
    }
    if (flag.size() != arg.size()) {
      parsed.values[option->name].push_back(inlineValue.str());
    } else if (i + 1 < args.size()) {
      parsed.values[option->name].push_back(args[++i]);
    } else {
      return makeError("option '" + flag + "' needs a value (" +
                       option->valueName + ")");
    }
  }
  if (parsed.positional.size() < spec.minPositional)
    return makeError("missing " + spec.arguments);
  if (parsed.positional.size() > spec.maxPositional)
    return makeError("unexpected argument '" +
                     parsed.positional[spec.maxPositional] + "'");
  return parsed;
}

std::string weft::cli::usage(const VerbSpec &spec) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "usage: weft " << spec.name << " " << spec.arguments << " [options]\n\n"
     << spec.summary << "\n";
  if (!spec.details.empty())
    os << "\n" << spec.details << "\n";
  os << "\noptions:\n";
  for (const OptionSpec &option : spec.options) {
    std::string left = "  --" + option.name;
    if (!option.shortName.empty())
      left = "  -" + option.shortName + ", --" + option.name;
    if (!option.valueName.empty())
      left += " " + option.valueName;
    os << left;
    os.indent(left.size() < 26 ? 26 - left.size() : 1) << option.help << "\n";
  }
  os << "  -h, --help                show this help\n";
  return text;
}
