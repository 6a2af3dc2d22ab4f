// Read-only memory mappings of whole files.
#include "runtime/MappedFile.h"

#include "runtime/Error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace weft::runtime {

MappedFile::MappedFile(const std::string &path) : address(MAP_FAILED) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(error));
  }
  bytes = static_cast<size_t>(st.st_size);
  if (bytes > 0)
    address = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  const int error = errno;
  ::close(fd);
  if (bytes > 0 && address == MAP_FAILED)
    throw Error(path + ": cannot map: " + std::strerror(error));
}

MappedFile::~MappedFile() {
  if (address != MAP_FAILED)
    ::munmap(address, bytes);
}

} // namespace weft::runtime
