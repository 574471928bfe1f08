// dsk-scale as Slurm's power-saving ResumeProgram and SuspendProgram. slurmctld runs the
// program with one argument, a hostlist expression ("gpu[3-5]"); dsk-scale expands it with
// `scontrol show hostnames` and runs the policy's actuator.command once per node, with
//   DSK_SCALE_ACTION  resume | suspend
//   DSK_SCALE_NODE    the node;  DSK_SCALE_NODES  all nodes of this call, space-separated
//   DSK_SCALE_POOL    spot | on-demand, on resume in a pre-emptible pool (pricing.spot against
//                     the pool's cap); empty otherwise
//   DSK_SCALE_POOL_NAME  the node's pool (pools.<name>), empty when the policy names none
// so that a site's start/stop command gets the pool choice and one node at a time. Slurm runs one
// ResumeProgram for every partition, so a cluster with pre-emptible and reserved nodes lists them
// under pools (nodes: hostlist, preemptible, spot_price_cap); without pools the policy's pricing
// is the one pool.
// slurm.conf then names a two-line wrapper (Slurm passes no extra arguments):
//   #!/bin/sh
//   exec dsk-scale -c /etc/dsk/scale-slurm.yaml --slurm-resume "$1"
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "scale/policy.hpp"

namespace dsk::scale {

// Every node is tried; RemoteError naming the nodes whose command failed.
void run_power_program(const Policy& policy, const std::string& command, bool resume, const std::string& hostlist);

struct NodePool {
  std::string name;      // pools.<name>, or "" for the policy's own pool
  std::string capacity;  // what a resume starts: "spot", "on-demand", or "" (not pre-emptible)
};

// `scontrol show hostnames`, or a stand-in in tests.
using HostlistExpander = std::function<std::vector<std::string>(const std::string& hostlist)>;

// Each node's pool: the first of policy.pools whose hostlist holds it (a node in none has no pool
// and no capacity choice); without pools, the policy's pricing for every node.
std::map<std::string, NodePool> pools_for_nodes(const Policy& policy, const std::vector<std::string>& nodes,
                                                const HostlistExpander& expand);

}  // namespace dsk::scale
