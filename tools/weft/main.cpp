// weft: the command-line interface. `weft <verb> --help` documents each verb.
#include "Commands.h"

#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

using namespace weft::cli;

namespace {
struct Verb {
  const VerbSpec &(*spec)();
  int (*run)(llvm::ArrayRef<std::string>);
};

const Verb kVerbs[] = {
    {importSpec, runImport},   {compileSpec, runCompile},
    {inspectSpec, runInspect}, {runSpec, runRun},
    {trainSpec, runTrain},     {dataSpec, runData},
};

void printUsage(llvm::raw_ostream &os) {
  os << "usage: weft <command> [arguments] [options]\n\n"
        "weft compiles language-model training and inference into static, "
        "inspectable\nper-rank plans. Commands:\n";
  for (const Verb &verb : kVerbs)
    os << "  " << llvm::left_justify(verb.spec().name, 10)
       << verb.spec().summary << "\n";
  os << "\nRun 'weft <command> --help' for a command's arguments and "
        "options.\n";
}
} // namespace

int weft::cli::parseOrReport(llvm::ArrayRef<std::string> args,
                             const VerbSpec &spec, ParsedArgs &out) {
  llvm::Expected<ParsedArgs> parsed = parseArgs(args, spec);
  if (!parsed) {
    llvm::errs() << "weft " << spec.name << ": "
                 << llvm::toString(parsed.takeError()) << "\n\n"
                 << usage(spec);
    return 2;
  }
  if (parsed->has("help")) {
    llvm::outs() << usage(spec);
    return 0;
  }
  out = std::move(*parsed);
  return -1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  if (argc < 2) {
    printUsage(llvm::errs());
    return 2;
  }
  llvm::StringRef command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    printUsage(llvm::outs());
    return 0;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  for (const Verb &verb : kVerbs)
    if (verb.spec().name == command)
      return verb.run(args);
  llvm::errs() << "weft: unknown command '" << command << "'\n\n";
  printUsage(llvm::errs());
  return 2;
}
