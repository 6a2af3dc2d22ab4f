// The runtime reports bad input and failures by throwing weft::runtime::Error
// at its boundary, with the file, tensor or step in the message.
#ifndef WEFT_RUNTIME_ERROR_H
#define WEFT_RUNTIME_ERROR_H

#include <stdexcept>
#include <string>

namespace weft::runtime {

class Error : public std::runtime_error {
public:
  explicit Error(const std::string &message) : std::runtime_error(message) {}
};

} // namespace weft::runtime

#endif // WEFT_RUNTIME_ERROR_H
