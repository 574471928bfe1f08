// Stop requests for long-running tools. SIGINT, SIGTERM and SIGUSR1 (Slurm's pre-emption
// warning) only set a flag; the work loop checks stop_requested() at a safe point, saves its
// state, and exits with stop_exit_code() (130 for SIGINT, 143 for SIGTERM and SIGUSR1).
// A second SIGINT while saving is ignored, so a save is never cut in half.
#pragma once

#include "core/error.hpp"

namespace dsk {

void install_stop_signal_handlers();
bool stop_requested();
int stop_signal();  // 0 when none arrived
ExitCode stop_exit_code();
// For tests: forget a received signal.
void clear_stop_request();

}  // namespace dsk
