// Errors and exit codes shared by every tool (../shared/DESIGN.md, "Errors, signals, exit codes").
// Library code throws one of the typed errors below; the tool's main (core/cli.hpp) prints
// "<tool>: error: <message>" once on stderr and exits with the error's code. Messages name the
// file, the place and what was expected, and never carry secrets.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace dsk {

enum class ExitCode : int {
  ok = 0,
  internal = 1,     // a bug in dsk
  usage = 2,        // bad flags or config
  data = 3,         // bad input data (truncated file, bad header, invalid text)
  resource = 4,     // no GPU, out of memory, disk full, missing library
  remote = 5,       // S3, HTTP, Slurm: a remote service failed or refused
  interrupted = 130,  // SIGINT, after a clean save
  terminated = 143,   // SIGTERM or SIGUSR1, after a clean save
};

// str(a, b, c) concatenates anything that has operator<< (gcc 12 has no std::format).
template <typename... Parts>
std::string str(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

class Error : public std::runtime_error {
 public:
  Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ExitCode code() const { return code_; }

 private:
  ExitCode code_;
};

struct InternalError : Error {
  explicit InternalError(const std::string& m) : Error(ExitCode::internal, m) {}
};
struct UsageError : Error {
  explicit UsageError(const std::string& m) : Error(ExitCode::usage, m) {}
};
struct DataError : Error {
  explicit DataError(const std::string& m) : Error(ExitCode::data, m) {}
};
struct ResourceError : Error {
  explicit ResourceError(const std::string& m) : Error(ExitCode::resource, m) {}
};
struct RemoteError : Error {
  explicit RemoteError(const std::string& m) : Error(ExitCode::remote, m) {}
};
// Thrown by a tool's work loop once a stop signal was handled cleanly (state saved).
struct Interrupted : Error {
  explicit Interrupted(ExitCode code, const std::string& m = "interrupted") : Error(code, m) {}
};

}  // namespace dsk
