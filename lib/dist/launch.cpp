#include "dist/launch.hpp"

#include <cstdlib>

#include "core/error.hpp"

namespace dsk::dist {

namespace {

int env_int(const EnvLookup& env, const std::string& name, int fallback) {
  std::optional<std::string> text = env(name);
  if (!text || text->empty()) return fallback;
  char* end = nullptr;
  long value = std::strtol(text->c_str(), &end, 10);
  if (*end != '\0' && *end != '(') throw UsageError(str(name, "='", *text, "': expected an integer"));
  return static_cast<int>(value);
}

// "4(x2),3" (SLURM_STEP_TASKS_PER_NODE): the first node's count.
int first_task_count(const EnvLookup& env) { return env_int(env, "SLURM_STEP_TASKS_PER_NODE", 1); }

void check(const LaunchInfo& info) {
  if (info.world_size < 1) throw UsageError(str(info.launcher, " launch: world size ", info.world_size, " < 1"));
  if (info.rank < 0 || info.rank >= info.world_size)
    throw UsageError(str(info.launcher, " launch: rank ", info.rank, " is outside 0..", info.world_size - 1));
  if (info.master_port < 1 || info.master_port > 65535)
    throw UsageError(str("MASTER_PORT=", info.master_port, ": expected a TCP port 1..65535"));
}

}  // namespace

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    return value ? std::optional<std::string>(value) : std::nullopt;
  };
}

std::string first_host(const std::string& hostlist) {
  size_t end = hostlist.find_first_of(",[");
  if (end == std::string::npos || hostlist[end] == ',') return hostlist.substr(0, end);
  std::string prefix = hostlist.substr(0, end);
  size_t range_end = hostlist.find_first_of(",-]", end + 1);
  if (range_end == std::string::npos) throw UsageError(str("SLURM_STEP_NODELIST='", hostlist, "': unbalanced '['"));
  return prefix + hostlist.substr(end + 1, range_end - end - 1);
}

LaunchInfo detect_launch(const EnvLookup& env) {
  LaunchInfo info;
  if (env("RANK") && env("WORLD_SIZE")) {
    info.launcher = "env";
    info.rank = env_int(env, "RANK", 0);
    info.world_size = env_int(env, "WORLD_SIZE", 1);
    info.local_rank = env_int(env, "LOCAL_RANK", info.rank);
    info.local_size = env_int(env, "LOCAL_WORLD_SIZE", info.world_size);
  } else if (env("OMPI_COMM_WORLD_RANK")) {
    info.launcher = "mpi";
    info.rank = env_int(env, "OMPI_COMM_WORLD_RANK", 0);
    info.world_size = env_int(env, "OMPI_COMM_WORLD_SIZE", 1);
    info.local_rank = env_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0);
    info.local_size = env_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    if (info.local_size != info.world_size && !env("MASTER_ADDR"))
      info.master_addr = "";  // several hosts: the address must come from MPI itself or MASTER_ADDR
  } else if (env("SLURM_PROCID") && env("SLURM_STEP_NUM_TASKS")) {
    info.launcher = "slurm";
    info.rank = env_int(env, "SLURM_PROCID", 0);
    info.world_size = env_int(env, "SLURM_STEP_NUM_TASKS", 1);
    info.local_rank = env_int(env, "SLURM_LOCALID", 0);
    info.local_size = first_task_count(env);
    if (auto nodes = env("SLURM_STEP_NODELIST")) info.master_addr = first_host(*nodes);
    // One port per job, so that two jobs sharing a node do not collide.
    info.master_port = 20000 + env_int(env, "SLURM_JOB_ID", 0) % 20000;
  }
  if (auto addr = env("MASTER_ADDR"); addr && !addr->empty()) info.master_addr = *addr;
  info.master_port = env_int(env, "MASTER_PORT", info.master_port);
  check(info);
  return info;
}

}  // namespace dsk::dist
