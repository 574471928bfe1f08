// --nproc-per-node N: start N copies of this program on this host, as torchrun would, each with
// RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT in
// its environment (launch.hpp reads them back). Waits for all of them and returns the first failure's exit
// code; ranks still running 10 s after a failure are stopped (SIGTERM, by their pids).
#pragma once

#include <string>
#include <vector>

namespace dsk::dist {

// arguments: argv of the children (argv[0] first), without --nproc-per-node.
int run_local_processes(int process_count, const std::vector<std::string>& arguments);

// argv without --nproc-per-node and its value: what each local child runs.
std::vector<std::string> child_arguments(int argc, char** argv);

// A TCP port that was free a moment ago (bind to port 0, read it back, close).
int free_tcp_port();

}  // namespace dsk::dist
