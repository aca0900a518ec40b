#pragma once
// Native failures never exit(): they throw rt::Error, which the binding turns into a JS Error that names
// the op, the shapes and the cause.
#include <sstream>
#include <stdexcept>
#include <string>

namespace rt {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(const char* op, const Args&... parts) {
  std::ostringstream s;
  s << op << ": ";
  (s << ... << parts);
  throw Error(s.str());
}

}  // namespace rt
