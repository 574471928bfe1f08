// dsk-scale as Slurm's power-saving ResumeProgram and SuspendProgram. slurmctld runs the
// program with one argument, a hostlist expression ("gpu[3-5]"); dsk-scale expands it with
// `scontrol show hostnames` and runs the policy's actuator.command once per node, with
//   DSK_SCALE_ACTION  resume | suspend
//   DSK_SCALE_NODE    the node;  DSK_SCALE_NODES  all nodes of this call, space-separated
//   DSK_SCALE_POOL    spot | on-demand, for a pre-emptible pool (pricing.spot against the cap)
// so that a site's start/stop command gets the pool choice and one node at a time.
// slurm.conf then names a two-line wrapper (Slurm passes no extra arguments):
//   #!/bin/sh
//   exec dsk-scale -c /etc/dsk/scale-slurm.yaml --slurm-resume "$1"
#pragma once

#include <string>
#include <vector>

#include "scale/policy.hpp"

namespace dsk::scale {

// Every node is tried; RemoteError naming the nodes whose command failed.
void run_power_program(const Policy& policy, const std::string& command, bool resume, const std::string& hostlist);

// The pool a pre-emptible policy starts new capacity in ("" when the pool is not pre-emptible).
std::string pool_for_new_capacity(const Policy& policy);

}  // namespace dsk::scale
