#include "core/signals.hpp"

#include <csignal>

namespace dsk {
namespace {
volatile std::sig_atomic_t g_signal = 0;

extern "C" void remember_signal(int signal_number) {
  if (g_signal == 0) g_signal = signal_number;
}
}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = remember_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: blocking reads return EINTR so loops notice
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool stop_requested() { return g_signal != 0; }
int stop_signal() { return g_signal; }
void clear_stop_request() { g_signal = 0; }

ExitCode stop_exit_code() { return g_signal == SIGINT ? ExitCode::interrupted : ExitCode::terminated; }

}  // namespace dsk
