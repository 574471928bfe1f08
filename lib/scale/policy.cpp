#include "scale/policy.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <sstream>

#include "core/error.hpp"
#include "core/units.hpp"

namespace dsk::scale {
namespace {

Schema build_schema() {
  Schema schema;
  schema.integer("capacity.min", 1, "fewest units (nodes, replicas) to keep up").minimum = 0;
  schema.integer("capacity.max", 8, "most units to run").minimum = 1;
  schema.choice("rule", "threshold", {"threshold", "proportional"}, "how the raw recommendation is made");
  schema.string("metric", "gpu_util", "the metric the rule reads (percent for gpu_util)");
  schema.number("threshold.scale_out_above", 85, "scale out above this with work pending");
  schema.number("threshold.scale_in_below", 30, "scale in below this with little running");
  schema.string("threshold.pending_metric", "pending", "metric counting pending work");
  schema.string("threshold.running_metric", "running", "metric counting running work");
  schema.number("threshold.running_fraction", 0.5, "scale in only when running < this x capacity").minimum = 0;
  schema.number("proportional.target", 70, "the metric's target value").minimum = 1e-9;
  schema.number("proportional.tolerance", 0.1, "no change while metric/target is within 1 +- this").minimum = 0;
  schema.boolean("proportional.per_unit", false, "the metric is a fleet total: divide it by current first");
  schema.integer("step.max_out", 4, "most units added by one action").minimum = 1;
  schema.integer("step.max_in", 1, "most units removed by one action").minimum = 1;
  schema.string("cooldown.out", "60s", "no scale-out sooner than this after the last one");
  schema.string("cooldown.in", "5m", "no scale-in sooner than this after any action");
  schema.string("stabilization.out", "0s", "scale out to the lowest recommendation of this window");
  schema.string("stabilization.in", "5m", "scale in to the highest recommendation of this window");
  schema.tree("phases", "per training phase: {cpus_per_gpu: N}, the CPUs to ask for per unit");
  schema.number("pricing.on_demand", 0, "price per unit-hour on demand").minimum = 0;
  schema.number("pricing.spot", 0, "price per unit-hour on pre-emptible capacity").minimum = 0;
  schema.boolean("pricing.preemptible", false, "the pool may use pre-emptible (spot) capacity");
  schema.number("pricing.spot_price_cap", 0, "use spot only while its price is at most this").minimum = 0;
  schema.string("pricing.spot_price_metric", "spot_price", "metric with the current spot price, if any");
  schema.tree("pools", "named node pools for Slurm's power programs: {nodes: HOSTLIST, preemptible: B, spot_price_cap: N}");
  // Where metrics come from and what acts (controller.hpp reads these).
  schema.boolean("source.slurm", false, "read node states and the queue with sinfo and squeue");
  schema.string("source.partition", "", "the Slurm partition to watch and scale (all when empty)");
  schema.boolean("source.gpu", false, "read GPU utilization and memory (NVML, else nvidia-smi)");
  schema.string_list("source.prometheus", {}, "Prometheus text endpoints (dsk-serve's /metrics)");
  schema.path("source.samples", "", "a JSONL or CSV file of samples; its last row is read");
  schema.string("source.samples_max_age", "10m", "a last sample older than this (epoch times) holds capacity; 0s: no limit");
  schema.choice("actuator.kind", "none", {"none", "slurm", "kubernetes", "command"}, "what carries out a decision");
  schema.choice("actuator.kubernetes.kind", "deployment", {"deployment", "statefulset"}, "the workload kind");
  schema.string("actuator.kubernetes.name", "", "the Deployment or StatefulSet to scale");
  schema.string("actuator.kubernetes.namespace", "", "its namespace (kubectl's default when empty)");
  schema.string("actuator.command", "", "a shell command run with DSK_SCALE_* set, for actions");
  schema.string("interval", "30s", "time between decisions in --watch");
  return schema;
}

// A tree key (phases, pools) as a mapping of names to entries, empty when unset. Errors about it
// name where the key was set (file:line or --set): entries of a tree key carry no line of their
// own once stored.
YAML::Node named_entries(const Config& config, const std::string& key, const std::string& entry_shape) {
  YAML::Node tree = config.has(key) ? config.get_tree(key) : YAML::Node();
  if (!tree || tree.IsNull()) return YAML::Node(YAML::NodeType::Map);
  if (!tree.IsMap()) throw UsageError(str(config.where(key), ": ", key, ": expected a mapping of names to ", entry_shape));
  return tree;
}

std::map<std::string, double> phases_from(const Config& config) {
  std::map<std::string, double> ratios;
  const std::string where = config.where("phases");
  for (const auto& entry : named_entries(config, "phases", "{cpus_per_gpu: N}")) {
    std::string name = entry.first.as<std::string>();
    if (!entry.second.IsMap()) throw UsageError(str(where, ": phases.", name, ": expected {cpus_per_gpu: N}"));
    for (const auto& field : entry.second) {
      std::string key = field.first.as<std::string>();
      if (key != "cpus_per_gpu")
        throw UsageError(str(where, ": unknown key 'phases.", name, ".", key, "' (a phase has cpus_per_gpu)"));
    }
    YAML::Node ratio = entry.second["cpus_per_gpu"];
    double value = -1;
    try {
      if (ratio) value = ratio.as<double>();
    } catch (const YAML::Exception&) {
    }
    if (value < 0) throw UsageError(str(where, ": phases.", name, ".cpus_per_gpu: expected a number >= 0"));
    ratios[name] = value;
  }
  return ratios;
}

std::vector<PoolSpec> pools_from(const Config& config) {
  std::vector<PoolSpec> pools;
  const std::string where = config.where("pools");
  for (const auto& entry : named_entries(config, "pools", "{nodes: HOSTLIST, preemptible: B, spot_price_cap: N}")) {
    PoolSpec pool;
    pool.name = entry.first.as<std::string>();
    const std::string key = "pools." + pool.name;
    if (!entry.second.IsMap()) throw UsageError(str(where, ": ", key, ": expected {nodes: HOSTLIST, preemptible: B, spot_price_cap: N}"));
    for (const auto& field : entry.second) {
      std::string name = field.first.as<std::string>();
      const YAML::Node& value = field.second;
      auto expected = [&](const char* what) { return UsageError(str(where, ": ", key, ".", name, ": expected ", what)); };
      if (name == "nodes") {
        if (!value.IsScalar()) throw expected("a hostlist such as gpu[1-4]");
        pool.nodes = value.Scalar();
      } else if (name == "preemptible") {
        if (!value.IsScalar() || !YAML::convert<bool>::decode(value, pool.preemptible)) throw expected("true or false");
      } else if (name == "spot_price_cap") {
        if (!value.IsScalar() || !YAML::convert<double>::decode(value, pool.spot_price_cap) || pool.spot_price_cap < 0)
          throw expected("a number >= 0");
      } else {
        throw UsageError(str(where, ": unknown key '", key, ".", name, "' (a pool has nodes, preemptible, spot_price_cap)"));
      }
    }
    if (pool.nodes.empty()) throw UsageError(str(where, ": ", key, ".nodes is required (a hostlist such as gpu[1-4])"));
    pools.push_back(pool);
  }
  return pools;
}

std::string format_time(double time) {
  if (time < 1e9) return str(time, "s");  // a trace's own clock
  std::time_t seconds = static_cast<std::time_t>(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string format_number(double value) {
  std::ostringstream out;
  out.precision(value == std::floor(value) && std::fabs(value) < 1e15 ? 15 : 6);
  out << value;
  return out.str();
}

// The rule's recommendation before windows, steps, bounds and cooldowns.
int64_t raw_recommendation(const Policy& policy, double value, const Observation& observation, int64_t current,
                           std::string& reason) {
  if (policy.rule == Rule::proportional) {
    if (current == 0) {
      reason = value > 0 ? str(policy.metric, " ", format_number(value), " > 0 with no capacity") : "no load";
      return value > 0 ? 1 : 0;
    }
    double per_unit_value = policy.per_unit ? value / current : value;
    std::string shown = policy.per_unit ? str(format_number(value), "/", current) : format_number(value);
    double ratio = per_unit_value / policy.target;
    if (std::fabs(ratio - 1) <= policy.tolerance) {
      reason = str(policy.metric, " ", shown, " / target ", format_number(policy.target), " = ", format_number(ratio),
                   " within tolerance ", policy.tolerance);
      return current;
    }
    reason = str("ceil(", current, " x ", shown, " / ", format_number(policy.target), ")");
    return static_cast<int64_t>(std::ceil(current * ratio - 1e-9));
  }
  double pending = observation.metric(policy.pending_metric).value_or(0);
  double running = observation.metric(policy.running_metric).value_or(0);
  if (value > policy.scale_out_above && pending > 0) {
    reason = str(policy.metric, " ", format_number(value), " > ", format_number(policy.scale_out_above), " with ",
                 format_number(pending), " pending");
    return current + std::max<int64_t>(1, static_cast<int64_t>(std::ceil(pending)));
  }
  if (value < policy.scale_in_below && running < policy.running_fraction * current) {
    reason = str(policy.metric, " ", format_number(value), " < ", format_number(policy.scale_in_below), " with ",
                 format_number(running), " running < ", format_number(policy.running_fraction), " x ", current);
    return static_cast<int64_t>(std::ceil(running));
  }
  if (value > policy.scale_out_above)
    reason = str(policy.metric, " ", format_number(value), " > ", format_number(policy.scale_out_above),
                 " with nothing pending");
  else if (value < policy.scale_in_below)
    reason = str(policy.metric, " ", format_number(value), " < ", format_number(policy.scale_in_below), " but ",
                 format_number(running), " running >= ", format_number(policy.running_fraction), " x ", current);
  else
    reason = str(policy.metric, " ", format_number(value), " in [", format_number(policy.scale_in_below), ", ",
                 format_number(policy.scale_out_above), "]");
  return current;
}

// HPA's stabilization: scale in only as far as the highest recommendation of the in-window,
// out only as far as the lowest of the out-window.
int64_t stabilize(const Policy& policy, ControllerState& state, double now, int64_t current, int64_t raw,
                  std::string& reason) {
  double keep = std::max(policy.stabilization_in, policy.stabilization_out);
  state.recommendations.emplace_back(now, raw);
  while (!state.recommendations.empty() && state.recommendations.front().first < now - keep)
    state.recommendations.pop_front();
  int64_t desired = raw;
  for (const auto& [time, recommended] : state.recommendations) {
    if (raw < current && time >= now - policy.stabilization_in) desired = std::max(desired, recommended);
    if (raw > current && time >= now - policy.stabilization_out) desired = std::min(desired, recommended);
  }
  if (raw < current) desired = std::min(desired, current);
  if (raw > current) desired = std::max(desired, current);
  if (desired != raw) reason += str("; stabilized at ", desired, " (recommended ", raw, ")");
  return desired;
}

std::optional<double> cooldown_left(const Policy& policy, const ControllerState& state, double now, bool out) {
  auto left = [&](std::optional<double> since, double window) -> std::optional<double> {
    if (since && now - *since < window) return window - (now - *since);
    return std::nullopt;
  };
  if (out) return left(state.last_scale_out, policy.cooldown_out);
  auto after_out = left(state.last_scale_out, policy.cooldown_in);
  auto after_in = left(state.last_scale_in, policy.cooldown_in);
  if (after_out && after_in) return std::max(*after_out, *after_in);
  return after_out ? after_out : after_in;
}

void choose_pool(const Policy& policy, const Observation& observation, Decision& decision) {
  if (!policy.preemptible) return;
  double price = observation.metric(policy.spot_price_metric).value_or(policy.spot_price);
  decision.pool = price <= policy.spot_price_cap ? "spot" : "on-demand";
  if (decision.pool == "on-demand")
    decision.reason += str("; spot ", format_number(price), " above cap ", format_number(policy.spot_price_cap));
}

}  // namespace

double config_duration(const Config& config, const std::string& key) {
  try {
    return parse_duration(config.get_string(key), key);
  } catch (const UsageError& e) {
    throw UsageError(str(config.where(key), ": ", e.what()));
  }
}

const Schema& policy_schema() {
  static const Schema schema = build_schema();
  return schema;
}

Policy policy_from_config(const Config& config) {
  Policy policy;
  policy.min_capacity = config.get_int("capacity.min");
  policy.max_capacity = config.get_int("capacity.max");
  if (policy.min_capacity > policy.max_capacity)
    throw UsageError(str(config.source(), ": capacity.min ", policy.min_capacity, " is above capacity.max ", policy.max_capacity));
  policy.rule = config.get_string("rule") == "proportional" ? Rule::proportional : Rule::threshold;
  policy.metric = config.get_string("metric");
  policy.scale_out_above = config.get_double("threshold.scale_out_above");
  policy.scale_in_below = config.get_double("threshold.scale_in_below");
  if (policy.scale_in_below >= policy.scale_out_above)
    throw UsageError(str(config.source(), ": threshold.scale_in_below must be below threshold.scale_out_above"));
  policy.pending_metric = config.get_string("threshold.pending_metric");
  policy.running_metric = config.get_string("threshold.running_metric");
  policy.running_fraction = config.get_double("threshold.running_fraction");
  policy.target = config.get_double("proportional.target");
  policy.tolerance = config.get_double("proportional.tolerance");
  policy.per_unit = config.get_bool("proportional.per_unit");
  policy.max_step_out = config.get_int("step.max_out");
  policy.max_step_in = config.get_int("step.max_in");
  policy.cooldown_out = config_duration(config, "cooldown.out");
  policy.cooldown_in = config_duration(config, "cooldown.in");
  policy.stabilization_out = config_duration(config, "stabilization.out");
  policy.stabilization_in = config_duration(config, "stabilization.in");
  policy.cpus_per_unit = phases_from(config);
  policy.on_demand_price = config.get_double("pricing.on_demand");
  policy.spot_price = config.get_double("pricing.spot");
  policy.preemptible = config.get_bool("pricing.preemptible");
  policy.spot_price_cap = config.get_double("pricing.spot_price_cap");
  policy.spot_price_metric = config.get_string("pricing.spot_price_metric");
  policy.pools = pools_from(config);
  return policy;
}

Decision hold_decision(double time, std::optional<int64_t> current, const std::string& reason) {
  Decision decision;
  decision.time = time;
  decision.current = current.value_or(0);
  decision.desired = decision.current;
  decision.reason = reason;
  return decision;
}

Decision decide(const Policy& policy, const Observation& observation, ControllerState& state) {
  if (!observation.current) return hold_decision(observation.time, std::nullopt, "current capacity unknown: holding");
  std::optional<double> value = observation.metric(policy.metric);
  if (!value) return hold_decision(observation.time, observation.current, str("metric ", policy.metric, " unavailable: holding"));

  Decision decision;
  decision.time = observation.time;
  decision.metrics = observation.metrics;
  decision.current = *observation.current;
  int64_t current = decision.current;
  state.last_current = current;
  int64_t raw = raw_recommendation(policy, *value, observation, current, decision.reason);
  int64_t desired = stabilize(policy, state, observation.time, current, raw, decision.reason);
  if (desired > current + policy.max_step_out) {
    desired = current + policy.max_step_out;
    decision.reason += str("; step limited to +", policy.max_step_out);
  }
  if (desired < current - policy.max_step_in) {
    desired = current - policy.max_step_in;
    decision.reason += str("; step limited to -", policy.max_step_in);
  }
  int64_t bounded = std::clamp(desired, policy.min_capacity, policy.max_capacity);
  if (bounded != desired) decision.reason += str("; bounded to [", policy.min_capacity, ", ", policy.max_capacity, "]");
  desired = bounded;
  bool out_of_bounds = current < policy.min_capacity || current > policy.max_capacity;
  if (desired != current && !out_of_bounds) {
    if (auto left = cooldown_left(policy, state, observation.time, desired > current)) {
      decision.reason += str("; cooldown ", format_number(std::ceil(*left)), "s left");
      desired = current;
    }
  }
  decision.desired = desired;
  if (desired > current) {
    decision.action = "scale-out";
    state.last_scale_out = observation.time;
  } else if (desired < current) {
    decision.action = "scale-in";
    state.last_scale_in = observation.time;
  }
  if (!policy.cpus_per_unit.empty() && !observation.phase.empty()) {
    auto ratio = policy.cpus_per_unit.find(observation.phase);
    if (ratio == policy.cpus_per_unit.end())
      decision.reason += str("; phase ", observation.phase, " has no cpus_per_gpu");
    else
      decision.cpus = desired * ratio->second;
  }
  choose_pool(policy, observation, decision);
  return decision;
}

std::string format_decision(const Decision& decision) {
  std::string line = str("time=", format_time(decision.time));
  for (const auto& [name, value] : decision.metrics) line += str(" ", name, "=", format_number(value));
  line += str(" current=", decision.current, " desired=", decision.desired);
  if (decision.cpus) line += str(" cpus=", format_number(*decision.cpus));
  if (!decision.pool.empty()) line += str(" pool=", decision.pool);
  std::string reason = decision.reason;
  std::replace(reason.begin(), reason.end(), '"', '\'');
  line += str(" action=", decision.action, " reason=\"", reason, "\"");
  return line;
}

}  // namespace dsk::scale
