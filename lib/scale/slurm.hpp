// Slurm as a metric source and as an actuator, through its own commands (sinfo, squeue,
// scontrol), so that dsk-scale needs no Slurm library and works against any controller that the
// client's slurm.conf (or $SLURM_CONF) points at.
//
// Capacity is counted in nodes: a node is up unless it is powered down or powering down (the ~,
// % and ! state flags of sinfo) or down. Scale-out powers nodes up (scontrol ... state=POWER_UP,
// which runs the cluster's ResumeProgram) and returns them to service; scale-in powers idle nodes
// down (state=POWER_DOWN, which runs SuspendProgram) and drains them so that Slurm's own power
// saving does not wake them for queued jobs: from then on dsk-scale's policy decides capacity.
// Slurm 22.05 clears a drain when a power-down completes, so scale_in waits for the nodes to be
// down (about SuspendTimeout) and drains them again.
#pragma once

#include <string>
#include <vector>

#include "scale/observation.hpp"

namespace dsk::scale {

struct SlurmNode {
  std::string name;
  std::string state;  // base state, lower case: idle, allocated, mixed, drained, down...
  std::string flags;  // sinfo's suffix characters: ~ powered down, # powering up, % powering down...

  bool powered_down() const { return flags.find_first_of("~%!") != std::string::npos; }
  bool up() const { return !powered_down() && state != "down" && state != "fail"; }
  bool busy() const { return state == "allocated" || state == "mixed" || state == "completing"; }
  bool idle() const { return state == "idle" && flags.empty(); }
};

// Lines of `sinfo -h -N -o "%N %T"`; a node listed once per partition is kept once.
std::vector<SlurmNode> parse_sinfo_nodes(const std::string& text);

// Metrics from the node list and `squeue -h -o "%T %D"` (job state, node count):
// current = nodes up; node_util = busy nodes / nodes up x 100; pending and running = nodes asked
// for by pending and running jobs.
Observation slurm_observation(const std::vector<SlurmNode>& nodes, const std::string& squeue_text, double now);

class SlurmCluster {
 public:
  // power_down_wait_seconds: how long scale_in waits for powered-down nodes to settle (SuspendTimeout).
  explicit SlurmCluster(std::string partition, double power_down_wait_seconds = 120)
      : partition_(std::move(partition)), power_down_wait_seconds_(power_down_wait_seconds) {}

  std::vector<SlurmNode> nodes() const;  // RemoteError when the controller does not answer
  Observation observe(double now) const;
  // Powers up to `count` powered-down nodes up (or idle nodes down); returns the nodes acted on.
  std::vector<std::string> scale_out(int64_t count, bool apply) const;
  std::vector<std::string> scale_in(int64_t count, bool apply) const;

 private:
  void scontrol_update(const std::vector<std::string>& nodes, const std::vector<std::string>& settings, bool apply) const;
  bool wait_powered_down(const std::vector<std::string>& names) const;
  std::string partition_;
  double power_down_wait_seconds_;
};

}  // namespace dsk::scale
