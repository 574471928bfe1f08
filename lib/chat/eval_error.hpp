// A failure while rendering (a type error, an undefined variable used, raise_exception): thrown
// by values and builtins that do not know where they are, caught by the renderer and turned into
// a DataError naming the template, line and column.
#pragma once

#include <stdexcept>
#include <string>

namespace dsk::chat {

struct EvalError : std::runtime_error {
  explicit EvalError(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace dsk::chat
