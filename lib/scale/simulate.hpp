// Replays a trace through the same policy code that --once and --watch use, and totals what the
// policy would have cost.
//
// A trace is a samples file (samples_file.hpp). When its rows carry "demand" (load in units of
// capacity: 2.5 = two and a half nodes' worth of work), the metrics respond to the simulated
// capacity: <policy metric> = min(100, demand / capacity x 100), pending = what does not fit,
// running = what does. Rows without demand are replayed as recorded. A decision made at a sample
// takes effect from the next one: capacity takes time to come and to go.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "scale/observation.hpp"
#include "scale/policy.hpp"

namespace dsk::scale {

struct SimulationStep {
  double time = 0;
  double load = 0;       // the policy metric as the policy saw it
  std::optional<double> demand;  // the trace's demand, in units of capacity, where it has one
  int64_t capacity = 0;  // capacity during the interval that starts here
  std::string action;    // "scale-out", "scale-in" or "hold"
};

struct SimulationResult {
  double duration_hours = 0;
  double capacity_hours = 0;
  double cost_on_demand = 0;
  double cost_spot = 0;
  double seconds_over_target = 0;  // policy metric above the scale-out threshold (or target band)
  double unserved_unit_hours = 0;  // demand above capacity, for traces with demand
  int64_t actions = 0;
  int64_t scale_outs = 0;
  int64_t scale_ins = 0;
  int64_t peak_capacity = 0;
  std::vector<SimulationStep> steps;
};

// start_capacity: the capacity at the first sample when the trace does not give "current".
SimulationResult simulate(const Policy& policy, const std::vector<Observation>& trace, int64_t start_capacity);

}  // namespace dsk::scale
