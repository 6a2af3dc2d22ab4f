// Files written so that a crash never leaves half of one: each is written,
// fsynced and renamed into place; a checkpoint folder is filled under a
// temporary name and renamed whole.
#ifndef WEFT_RUNTIME_ATOMICFILE_H
#define WEFT_RUNTIME_ATOMICFILE_H

#include <string>
#include <string_view>

namespace weft::runtime {

/// Writes `bytes` to `path` and fsyncs it. Throws Error naming the path.
void writeSynced(const std::string &path, std::string_view bytes);

/// Writes `bytes` to a temporary name beside `path`, fsyncs it and renames it
/// to `path`. Throws Error naming the path; nothing is left behind then.
void writeAtomically(const std::string &path, std::string_view bytes);

/// Fsyncs a directory, so that the renames inside it are durable.
void syncDirectory(const std::string &path);

} // namespace weft::runtime

#endif // WEFT_RUNTIME_ATOMICFILE_H
