#include "scale/slurm_power.hpp"

#include <set>
#include <sstream>

#include "core/error.hpp"
#include "core/log.hpp"
#include "scale/process.hpp"

namespace dsk::scale {

namespace {

std::string capacity_kind(const Policy& policy, bool preemptible, double cap) {
  if (!preemptible) return "";
  return policy.spot_price <= cap ? "spot" : "on-demand";
}

std::vector<std::string> expand_with_scontrol(const std::string& hostlist) {
  std::istringstream expanded(run_checked({"scontrol", "show", "hostnames", hostlist}, "Slurm hostlist " + hostlist));
  std::vector<std::string> nodes;
  for (std::string node; expanded >> node;) nodes.push_back(node);
  return nodes;
}

}  // namespace

std::map<std::string, NodePool> pools_for_nodes(const Policy& policy, const std::vector<std::string>& nodes,
                                                const HostlistExpander& expand) {
  std::map<std::string, NodePool> result;
  if (policy.pools.empty()) {
    for (const auto& node : nodes) result[node] = {"", capacity_kind(policy, policy.preemptible, policy.spot_price_cap)};
    return result;
  }
  for (const auto& node : nodes) result[node] = {};
  std::set<std::string> placed;
  for (const auto& pool : policy.pools) {
    for (const auto& member : expand(pool.nodes)) {
      auto found = result.find(member);
      if (found == result.end() || !placed.insert(member).second) continue;  // not asked for, or in an earlier pool
      found->second = {pool.name, capacity_kind(policy, pool.preemptible, pool.spot_price_cap)};
    }
  }
  for (const auto& node : nodes)
    if (!placed.count(node)) log_warn("Slurm: node ", node, " is in none of the policy's pools");
  return result;
}

void run_power_program(const Policy& policy, const std::string& command, bool resume, const std::string& hostlist) {
  if (command.empty()) throw UsageError("--slurm-resume/--slurm-suspend run actuator.command per node: set it in the policy");
  std::vector<std::string> nodes = expand_with_scontrol(hostlist);
  if (nodes.empty()) throw UsageError(str("hostlist '", hostlist, "' names no node"));
  std::map<std::string, NodePool> pools = pools_for_nodes(policy, nodes, expand_with_scontrol);
  std::string all_nodes;
  for (const auto& node : nodes) all_nodes += (all_nodes.empty() ? "" : " ") + node;
  std::string action = resume ? "resume" : "suspend";
  std::string failed;
  for (const auto& node : nodes) {
    CommandResult result = run_command({"/bin/sh", "-c", command},
                                       {{"DSK_SCALE_ACTION", action},
                                        {"DSK_SCALE_NODE", node},
                                        {"DSK_SCALE_NODES", all_nodes},
                                        {"DSK_SCALE_POOL", resume ? pools[node].capacity : ""},
                                        {"DSK_SCALE_POOL_NAME", pools[node].name}},
                                       600);
    log_info(action, " ", node, ": `", command, "` exited ", result.exit_code);
    if (!result.errors.empty()) log_info(result.errors);
    if (result.exit_code != 0) failed += (failed.empty() ? "" : " ") + node;
  }
  if (!failed.empty()) throw RemoteError(str(action, " failed for ", failed, " (`", command, "`)"));
}

}  // namespace dsk::scale
