// Who am I in a multi-process job: rank, world size, local rank, and where rank 0 listens for the
// rendezvous. Read from whichever launcher started the process, first match wins:
//   torchrun-style env (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
//       which is also what --nproc-per-node gives its children;
//   OpenMPI's mpirun (OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE);
//   Slurm's srun (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE,
//       rank 0 on the first host of SLURM_STEP_NODELIST);
//   otherwise one process, rank 0 of 1.
// MASTER_ADDR / MASTER_PORT override the rendezvous address under every launcher.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace dsk::dist {

struct LaunchInfo {
  std::string launcher = "single";  // "single", "env", "mpi", "slurm"
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_environment();

// UsageError naming the variable when a value is malformed or out of range.
LaunchInfo detect_launch(const EnvLookup& env);

// The first host of a Slurm hostlist: "gpu[03-05,07],cpu1" -> "gpu03".
std::string first_host(const std::string& hostlist);

}  // namespace dsk::dist
