// A scaling policy (the YAML that dsk-scale reads with -c) and the decision it makes from one
// observation.
//
// Two rules give a raw recommendation:
//   threshold     (the default) scale out when <metric> is above scale_out_above with jobs pending,
//                 scale in when it is below scale_in_below with running work under
//                 running_fraction of the capacity: "GPU utilization above 85% with jobs pending:
//                 scale out; below 30% with running jobs under half the capacity: scale in".
//   proportional  Kubernetes HPA's rule: desired = ceil(current * metric / target), unchanged while
//                 metric / target is within 1 +- tolerance. With per_unit the metric is a total
//                 over the fleet and is divided by current first (HPA's AverageValue target).
// The recommendation then passes, in this order, the stabilization windows (scale in to the
// highest recommendation of the last stabilization.in seconds, scale out to the lowest of the last
// stabilization.out seconds), the step limits, min/max capacity, and the cooldowns since the last
// action. Scale-in waits longer than scale-out by default.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "scale/observation.hpp"

namespace dsk::scale {

enum class Rule { threshold, proportional };

// A named pool of nodes in one cluster (pools.<name> in the policy): Slurm runs one ResumeProgram
// for every partition, so the policy says which nodes are pre-emptible and at what price cap.
struct PoolSpec {
  std::string name;
  std::string nodes;  // a Slurm hostlist expression, "gpu[5-8]"
  bool preemptible = false;
  double spot_price_cap = 0;
};

struct Policy {
  int64_t min_capacity = 1;
  int64_t max_capacity = 8;
  Rule rule = Rule::threshold;
  std::string metric = "gpu_util";
  // threshold rule
  double scale_out_above = 85;
  double scale_in_below = 30;
  std::string pending_metric = "pending";
  std::string running_metric = "running";
  double running_fraction = 0.5;
  // proportional rule
  double target = 70;
  double tolerance = 0.1;
  bool per_unit = false;  // the metric is a total (queue depth): compare metric / current to the target
  // limits and timing (seconds)
  int64_t max_step_out = 4;
  int64_t max_step_in = 1;
  double cooldown_out = 60;
  double cooldown_in = 300;
  double stabilization_out = 0;
  double stabilization_in = 300;
  // CPUs to ask for per unit of capacity, by training phase
  std::map<std::string, double> cpus_per_unit;
  // pricing, per unit of capacity per hour
  double on_demand_price = 0;
  double spot_price = 0;
  bool preemptible = false;
  double spot_price_cap = 0;
  std::string spot_price_metric = "spot_price";
  std::vector<PoolSpec> pools;  // for --slurm-resume/--slurm-suspend; empty: one pool, priced above
};

// The keys of the policy YAML, with the defaults above.
const Schema& policy_schema();
Policy policy_from_config(const Config& config);
// A duration key ("30s", "5m") in seconds; a malformed one is a UsageError naming where it was set.
double config_duration(const Config& config, const std::string& key);

// What a controller remembers between decisions (in --watch, in --simulate, or in --state FILE).
struct ControllerState {
  std::optional<double> last_scale_out;
  std::optional<double> last_scale_in;
  std::deque<std::pair<double, int64_t>> recommendations;  // (time, raw desired), oldest first
  std::optional<int64_t> last_current;  // the capacity last seen, to report while holding
};

struct Decision {
  double time = 0;
  std::map<std::string, double> metrics;
  int64_t current = 0;
  int64_t desired = 0;
  std::string action = "hold";  // "scale-out", "scale-in" or "hold"
  std::string reason;
  std::optional<double> cpus;  // desired * cpus_per_unit of the phase, when the policy has one
  std::string pool;            // "spot" or "on-demand" for a pre-emptible pool; empty otherwise

  int64_t delta() const { return desired - current; }
};

// Decides from one observation and updates state (as though the action were carried out).
// Holds, with the reason, when the observation lacks the capacity or the policy's metric.
Decision decide(const Policy& policy, const Observation& observation, ControllerState& state);

// A hold decision for when no observation could be made (a failing metric source).
Decision hold_decision(double time, std::optional<int64_t> current, const std::string& reason);

// One line: time=... <metric>=... current=N desired=N action=... reason="...".
std::string format_decision(const Decision& decision);

}  // namespace dsk::scale
