#include "scale/simulate.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/log.hpp"

namespace dsk::scale {
namespace {

// The metrics a sample with "demand" would show at this capacity.
void apply_demand(const Policy& policy, Observation& sample, int64_t capacity) {
  std::optional<double> demand = sample.metric("demand");
  if (!demand) return;
  double fitted = std::min(*demand, static_cast<double>(capacity));
  sample.metrics[policy.metric] = capacity == 0 ? (*demand > 0 ? 100.0 : 0.0) : 100.0 * fitted / capacity;
  sample.metrics[policy.pending_metric] = std::max(0.0, std::ceil(*demand - capacity - 1e-9));
  sample.metrics[policy.running_metric] = std::ceil(fitted - 1e-9);
}

double over_target_level(const Policy& policy) {
  return policy.rule == Rule::threshold ? policy.scale_out_above : policy.target * (1 + policy.tolerance);
}

}  // namespace

SimulationResult simulate(const Policy& policy, const std::vector<Observation>& trace, int64_t start_capacity) {
  if (trace.empty()) throw DataError("simulate: the trace has no samples");
  SimulationResult result;
  ControllerState state;
  int64_t capacity = trace.front().current.value_or(start_capacity);
  for (size_t i = 0; i < trace.size(); ++i) {
    Observation sample = trace[i];
    bool modeled = sample.metric("demand").has_value();
    if (modeled || !sample.current) sample.current = capacity;
    apply_demand(policy, sample, *sample.current);
    double interval = i + 1 < trace.size() ? trace[i + 1].time - sample.time : 0;
    double load = sample.metric(policy.metric).value_or(0);

    // The interval from this sample to the next runs at the capacity the trace had before acting.
    result.capacity_hours += static_cast<double>(*sample.current) * interval / 3600;
    if (load > over_target_level(policy)) result.seconds_over_target += interval;
    if (modeled) result.unserved_unit_hours += std::max(0.0, sample.metrics["demand"] - *sample.current) * interval / 3600;
    result.peak_capacity = std::max(result.peak_capacity, *sample.current);

    Decision decision = decide(policy, sample, state);
    result.steps.push_back({sample.time, load, sample.metric("demand"), *sample.current, decision.action});
    if (decision.action != "hold") {
      ++result.actions;
      ++(decision.action == "scale-out" ? result.scale_outs : result.scale_ins);
      log_debug(format_decision(decision));
    }
    capacity = decision.desired;
  }
  result.duration_hours = (trace.back().time - trace.front().time) / 3600;
  result.cost_on_demand = result.capacity_hours * policy.on_demand_price;
  result.cost_spot = result.capacity_hours * policy.spot_price;
  return result;
}

}  // namespace dsk::scale
