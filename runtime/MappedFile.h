// A file mapped read-only into memory for as long as the object lives: how
// checkpoints and token files are read without copying them.
#ifndef WEFT_RUNTIME_MAPPEDFILE_H
#define WEFT_RUNTIME_MAPPEDFILE_H

#include <cstddef>
#include <string>

namespace weft::runtime {

class MappedFile {
public:
  /// Maps `path` (an empty file maps to no bytes). Throws Error naming the
  /// file when it cannot be opened or mapped.
  explicit MappedFile(const std::string &path);
  ~MappedFile();
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;

  const char *data() const { return static_cast<const char *>(address); }
  size_t size() const { return bytes; }

private:
  void *address;
  size_t bytes = 0;
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_MAPPEDFILE_H
