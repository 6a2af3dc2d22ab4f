// weft data: training-data utilities. `weft data tokenize` turns text into a
// flat token file with the built-in byte-level tokenizer.
#include "Commands.h"

#include "runtime/Error.h"
#include "runtime/TokenData.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

using namespace weft::cli;
namespace rt = weft::runtime;

const VerbSpec &weft::cli::dataSpec() {
  static const VerbSpec spec = [] {
    VerbSpec s;
    s.name = "data";
    s.arguments = "tokenize TEXT";
    s.summary = "Make training data: tokenize a text file.";
    s.details =
        "'weft data tokenize TEXT -o OUT' writes the bytes of TEXT as token\n"
        "ids 0-255 (the built-in byte-level tokenizer; any model with a\n"
        "vocabulary of at least 256 trains on them) to OUT, a flat file of\n"
        "little-endian u16 (or u32) ids as Megatron's and nanoGPT's .bin\n"
        "files hold them.";
    s.options.push_back({"output", "o", "OUT", "the token file to write"});
    s.options.push_back(
        {"token-dtype", "", "u16|u32", "width of each id (default u16)"});
    s.minPositional = s.maxPositional = 2;
    return s;
  }();
  return spec;
}

int weft::cli::runData(llvm::ArrayRef<std::string> args) {
  ParsedArgs parsed;
  if (int code = parseOrReport(args, dataSpec(), parsed); code >= 0)
    return code;
  auto usageError = [](const std::string &message) {
    llvm::errs() << "weft data: " << message << "\n\n" << usage(dataSpec());
    return 2;
  };
  if (parsed.positional[0] != "tokenize")
    return usageError("unknown action '" + parsed.positional[0] +
                      "'; expected 'tokenize'");
  std::optional<std::string> output = parsed.get("output");
  if (!output)
    return usageError("tokenize needs -o OUT");
  const std::string dtype = parsed.get("token-dtype").value_or("u16");
  if (dtype != "u16" && dtype != "u32")
    return usageError("--token-dtype is '" + dtype + "'; expected u16 or u32");
  const std::string &input = parsed.positional[1];
  auto text = llvm::MemoryBuffer::getFile(input, /*IsText=*/false);
  if (!text) {
    llvm::errs() << "weft data: " << input << ": " << text.getError().message()
                 << "\n";
    return 1;
  }
  try {
    std::vector<uint32_t> ids = rt::tokenizeBytes((*text)->getBuffer().str());
    rt::writeTokens(*output, ids,
                    dtype == "u16" ? rt::TokenWidth::U16 : rt::TokenWidth::U32);
    llvm::outs() << "wrote " << *output << ": " << ids.size() << " " << dtype
                 << " tokens from " << input << "\n";
  } catch (const rt::Error &e) {
    llvm::errs() << "weft data: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
