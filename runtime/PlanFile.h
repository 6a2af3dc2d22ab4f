// Reading and writing Plan files: "WEFTPLAN", then the serialized Plan whose
// checksum field holds the FNV-1a 64 of the plan serialized with it zero.
#ifndef WEFT_RUNTIME_PLANFILE_H
#define WEFT_RUNTIME_PLANFILE_H

#include "runtime/plan.pb.h"

#include <string>

namespace weft::runtime {

/// The Plan format this runtime reads and the compiler writes.
constexpr uint32_t kPlanFormatVersion = 1;

/// Checksum of `plan` as stored in its checksum field.
uint64_t planChecksum(const plan::Plan &plan);

/// Sets the version and checksum and writes `plan` to `path` atomically
/// (temporary file, fsync, rename). Throws Error.
void writePlan(plan::Plan plan, const std::string &path);

/// Reads and checks a plan: magic, parse, version, checksum, and that every
/// buffer and kernel reference is in range. Throws Error naming the file.
plan::Plan readPlan(const std::string &path);

/// Short name of a dtype ("f32") and its element size in bytes.
const char *dtypeName(plan::DType dtype);
int64_t dtypeBytes(plan::DType dtype);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_PLANFILE_H
