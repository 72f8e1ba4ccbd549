// The one exception type of the runtime and the layers above it. Its message is a single line that names what
// was wrong and where (file, JSON path or byte offset, expected vs found); the CLI prints it and exits
// non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace mighty {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace mighty
