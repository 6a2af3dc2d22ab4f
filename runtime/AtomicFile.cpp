#include "runtime/AtomicFile.h"

#include "runtime/Error.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

using namespace weft::runtime;

void weft::runtime::writeSynced(const std::string &path,
                                std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    throw Error(path + ": cannot write: " + std::strerror(errno));
  size_t written = 0;
  while (written < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      int err = errno;
      ::close(fd);
      ::unlink(path.c_str());
      throw Error(path + ": cannot write: " + std::strerror(err));
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(path.c_str());
    throw Error(path + ": cannot write: " + std::strerror(err));
  }
}

void weft::runtime::writeAtomically(const std::string &path,
                                    std::string_view bytes) {
  std::string temporary = path + ".tmp." + std::to_string(getpid());
  writeSynced(temporary, bytes);
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(temporary.c_str());
    throw Error(path + ": cannot write: " + std::strerror(err));
  }
}

void weft::runtime::syncDirectory(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0 || ::fsync(fd) != 0) {
    int err = errno;
    if (fd >= 0)
      ::close(fd);
    throw Error(path + ": cannot sync: " + std::strerror(err));
  }
  ::close(fd);
}
