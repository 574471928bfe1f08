#include "scale/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/error.hpp"

namespace dsk::scale {
namespace {

// slurmctld starts ResumeProgram/SuspendProgram with fds 0-2 closed; pipes would then take those
// numbers and collide with the child's stdout. Occupy any closed one with /dev/null first.
void ensure_standard_fds_open() {
  for (int fd = 0; fd <= 2; ++fd)
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int null_fd = open("/dev/null", O_RDWR);
      if (null_fd >= 0 && null_fd != fd) {
        dup2(null_fd, fd);
        close(null_fd);
      }
    }
}

// dup2 onto the same number keeps O_CLOEXEC; clear it so the descriptor survives exec.
void move_fd(int from, int to) {
  if (from == to) fcntl(to, F_SETFD, 0);
  else dup2(from, to);
}

[[noreturn]] void exec_child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
                             int out_fd, int err_fd) {
  move_fd(out_fd, STDOUT_FILENO);
  move_fd(err_fd, STDERR_FILENO);
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
  for (const auto& [name, value] : environment) setenv(name.c_str(), value.c_str(), 1);
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  dprintf(STDERR_FILENO, "%s: %s\n", args[0], std::strerror(errno));
  _exit(127);
}

// Reads both pipes until they close or the deadline passes; false on timeout.
bool drain(int out_fd, int err_fd, CommandResult& result, double timeout_seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds);
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&result.output, &result.errors};
  int open_count = 2;
  char buffer[4096];
  while (open_count > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    int ready = poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = read(fds[i].fd, buffer, sizeof buffer);
      if (got > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  return true;
}

}  // namespace

std::string join_command(const std::vector<std::string>& argv) {
  std::string joined;
  for (const auto& arg : argv) joined += (joined.empty() ? "" : " ") + arg;
  return joined;
}

CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment,
                          double timeout_seconds) {
  if (argv.empty()) throw InternalError("run_command: empty command");
  ensure_standard_fds_open();
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
    throw ResourceError(str("cannot create a pipe for ", argv[0], ": ", std::strerror(errno)));
  pid_t child = fork();
  if (child < 0) throw ResourceError(str("cannot start ", argv[0], ": ", std::strerror(errno)));
  if (child == 0) exec_child(argv, environment, out_pipe[1], err_pipe[1]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandResult result;
  bool finished = drain(out_pipe[0], err_pipe[0], result, timeout_seconds);
  close(out_pipe[0]);
  close(err_pipe[0]);
  if (!finished) kill(child, SIGKILL);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!finished) {
    result.exit_code = 124;
    result.errors += str("timed out after ", timeout_seconds, "s");
  } else {
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return result;
}

std::string run_checked(const std::vector<std::string>& argv, const std::string& what, double timeout_seconds) {
  CommandResult result = run_command(argv, {}, timeout_seconds);
  if (result.exit_code != 0) {
    std::string errors = result.errors;
    while (!errors.empty() && errors.back() == '\n') errors.pop_back();
    std::string why = result.exit_code == 127 ? str(argv[0], " not found on PATH") : str("exited ", result.exit_code);
    throw RemoteError(str(what, ": `", join_command(argv), "` ", why, errors.empty() ? "" : ": ", errors));
  }
  return result.output;
}

}  // namespace dsk::scale
