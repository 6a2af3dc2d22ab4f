// The verbs of the weft CLI. Each takes the arguments after its name and
// returns the process exit code (0 ok, 1 failed, 2 bad usage).
#ifndef WEFT_TOOLS_WEFT_COMMANDS_H
#define WEFT_TOOLS_WEFT_COMMANDS_H

#include "CommandLine.h"

namespace weft::cli {

const VerbSpec &importSpec();
int runImport(llvm::ArrayRef<std::string> args);

const VerbSpec &compileSpec();
int runCompile(llvm::ArrayRef<std::string> args);

const VerbSpec &inspectSpec();
int runInspect(llvm::ArrayRef<std::string> args);

/// `weft inspect` of a .plan file.
int inspectPlan(const std::string &path, bool json);

const VerbSpec &runSpec();
int runRun(llvm::ArrayRef<std::string> args);

const VerbSpec &trainSpec();
int runTrain(llvm::ArrayRef<std::string> args);

const VerbSpec &dataSpec();
int runData(llvm::ArrayRef<std::string> args);

/// Parses `args` for `spec` into `out` and returns -1 when the verb should go
/// on; otherwise returns the exit code after printing the usage (0 for
/// --help) or the error and the usage (2).
int parseOrReport(llvm::ArrayRef<std::string> args, const VerbSpec &spec,
                  ParsedArgs &out);

} // namespace weft::cli

#endif // WEFT_TOOLS_WEFT_COMMANDS_H
