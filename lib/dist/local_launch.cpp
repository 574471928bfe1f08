#include "dist/local_launch.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <cstring>

#include "core/error.hpp"
#include "core/log.hpp"

namespace dsk::dist {

int free_tcp_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    throw ResourceError(str("--nproc-per-node: no free TCP port on loopback: ", std::strerror(errno)));
  }
  close(fd);
  return ntohs(address.sin_port);
}

namespace {

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// The first rank to fail is named (its own message, if any, says why); a stop after a signal,
// 130 or 143 with a checkpoint written, is no failure to report.
void report_failed_rank(int rank, int status) {
  if (WIFSIGNALED(status))
    log_warn(str("rank ", rank, " was killed by signal ", WTERMSIG(status), ": stopping the other ranks"));
  else if (int code = exit_code_of(status); code != 130 && code != 143)
    log_warn(str("rank ", rank, " exited with status ", code, ": stopping the other ranks"));
}

[[noreturn]] void exec_child(int rank, int process_count, int port, const std::vector<std::string>& arguments) {
  setenv("RANK", std::to_string(rank).c_str(), 1);
  setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  setenv("WORLD_SIZE", std::to_string(process_count).c_str(), 1);
  setenv("LOCAL_WORLD_SIZE", std::to_string(process_count).c_str(), 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  std::vector<char*> argv;
  for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
  argv.push_back(nullptr);
  execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "%s: error: cannot start rank %d: %s\n", arguments[0].c_str(), rank, std::strerror(errno));
  _exit(1);
}

}  // namespace

int run_local_processes(int process_count, const std::vector<std::string>& arguments) {
  if (process_count < 1) throw UsageError("--nproc-per-node: must be at least 1");
  int port = free_tcp_port();
  std::fflush(stdout);
  std::fflush(stderr);
  std::vector<pid_t> children;
  for (int rank = 0; rank < process_count; ++rank) {
    pid_t pid = fork();
    if (pid < 0) throw ResourceError(str("--nproc-per-node: fork: ", std::strerror(errno)));
    if (pid == 0) exec_child(rank, process_count, port, arguments);
    children.push_back(pid);
  }
  // After a failure the others usually stop on their own within moments (their rendezvous peer
  // is gone) and say why; the ones still running after the grace period are sent SIGTERM, and
  // SIGKILL one more grace period later (a rank blocked in a collective never acts on SIGTERM).
  constexpr auto grace = std::chrono::seconds(10);
  int first_failure = 0;
  auto failed_at = std::chrono::steady_clock::time_point::max();
  for (size_t running = children.size(); running > 0;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, first_failure ? WNOHANG : 0);
    if (pid < 0 && errno == EINTR) continue;
    if (pid < 0) break;
    if (pid == 0) {  // still running after a failure
      const auto waited = std::chrono::steady_clock::now() - failed_at;
      if (waited > grace)
        for (pid_t child : children)
          if (child > 0) kill(child, waited > 2 * grace ? SIGKILL : SIGTERM);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    --running;
    int rank = 0;
    for (size_t i = 0; i < children.size(); ++i)
      if (children[i] == pid) children[i] = 0, rank = int(i);
    int code = exit_code_of(status);
    if (code != 0 && first_failure == 0) {
      first_failure = code, failed_at = std::chrono::steady_clock::now();
      report_failed_rank(rank, status);
    }
  }
  return first_failure;
}

std::vector<std::string> child_arguments(int argc, char** argv) {
  std::vector<std::string> arguments;
  for (int i = 0; i < argc; ++i) {
    std::string argument = argv[i];
    if (argument == "--nproc-per-node") {
      ++i;
      continue;
    }
    if (argument.rfind("--nproc-per-node=", 0) == 0) continue;
    arguments.push_back(argument);
  }
  return arguments;
}

}  // namespace dsk::dist
