#include "scale/slurm_power.hpp"

#include <sstream>

#include "core/error.hpp"
#include "core/log.hpp"
#include "scale/process.hpp"

namespace dsk::scale {

std::string pool_for_new_capacity(const Policy& policy) {
  if (!policy.preemptible) return "";
  return policy.spot_price <= policy.spot_price_cap ? "spot" : "on-demand";
}

void run_power_program(const Policy& policy, const std::string& command, bool resume, const std::string& hostlist) {
  if (command.empty()) throw UsageError("--slurm-resume/--slurm-suspend run actuator.command per node: set it in the policy");
  std::istringstream expanded(run_checked({"scontrol", "show", "hostnames", hostlist}, "Slurm hostlist " + hostlist));
  std::vector<std::string> nodes;
  for (std::string node; expanded >> node;) nodes.push_back(node);
  if (nodes.empty()) throw UsageError(str("hostlist '", hostlist, "' names no node"));
  std::string all_nodes;
  for (const auto& node : nodes) all_nodes += (all_nodes.empty() ? "" : " ") + node;
  std::string action = resume ? "resume" : "suspend";
  std::string failed;
  for (const auto& node : nodes) {
    CommandResult result = run_command({"/bin/sh", "-c", command},
                                       {{"DSK_SCALE_ACTION", action},
                                        {"DSK_SCALE_NODE", node},
                                        {"DSK_SCALE_NODES", all_nodes},
                                        {"DSK_SCALE_POOL", resume ? pool_for_new_capacity(policy) : ""}},
                                       600);
    log_info(action, " ", node, ": `", command, "` exited ", result.exit_code);
    if (!result.errors.empty()) log_info(result.errors);
    if (result.exit_code != 0) failed += (failed.empty() ? "" : " ") + node;
  }
  if (!failed.empty()) throw RemoteError(str(action, " failed for ", failed, " (`", command, "`)"));
}

}  // namespace dsk::scale
