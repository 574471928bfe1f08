// Running the commands that dsk-scale reads metrics from and acts through (sinfo, squeue,
// scontrol, nvidia-smi, kubectl, a user's script): no shell unless asked, output captured, a time
// limit so that a hung command cannot hang the control loop.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace dsk::scale {

struct CommandResult {
  int exit_code = 0;   // 127 when the program was not found, 124 when it ran past the limit
  std::string output;  // stdout
  std::string errors;  // stderr
};

// Runs argv[0] (searched on PATH) with extra environment variables added.
CommandResult run_command(const std::vector<std::string>& argv, const std::map<std::string, std::string>& environment = {},
                          double timeout_seconds = 30);

// RemoteError "<what>: `cmd` exited N: <stderr>" unless it exited 0; the stdout otherwise.
std::string run_checked(const std::vector<std::string>& argv, const std::string& what, double timeout_seconds = 30);

std::string join_command(const std::vector<std::string>& argv);

}  // namespace dsk::scale
