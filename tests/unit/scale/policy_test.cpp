// The policy's decisions: the default rule, the proportional rule and its tolerance, hysteresis
// between the two thresholds, stabilization windows, step limits, min/max and cooldowns.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "scale/policy.hpp"

using namespace dsk;
using namespace dsk::scale;

namespace {

// A policy with no cooldowns or windows unless a test sets them.
Policy quick_policy() {
  Policy policy;
  policy.cooldown_out = policy.cooldown_in = 0;
  policy.stabilization_out = policy.stabilization_in = 0;
  policy.max_step_out = 100;
  policy.max_step_in = 100;
  return policy;
}

Observation look(double time, int64_t current, double gpu_util, double pending = 0, double running = 0) {
  Observation observation;
  observation.time = time;
  observation.current = current;
  observation.metrics = {{"gpu_util", gpu_util}, {"pending", pending}, {"running", running}};
  return observation;
}

Decision decide_fresh(const Policy& policy, const Observation& observation) {
  ControllerState state;
  return decide(policy, observation, state);
}

}  // namespace

TEST_CASE("the default rule: above 85% with jobs pending scales out, below 30% with little running scales in") {
  Policy policy = quick_policy();
  Decision out = decide_fresh(policy, look(0, 2, 90, 3, 2));
  CHECK(out.action == "scale-out");
  CHECK(out.desired == 5);  // one unit per pending job
  Decision busy = decide_fresh(policy, look(0, 2, 90, 0, 2));  // busy, nothing waiting
  CHECK(busy.action == "hold");
  CHECK(busy.reason == "gpu_util 90 > 85 with nothing pending");
  Decision in = decide_fresh(policy, look(0, 6, 20, 0, 2));
  CHECK(in.action == "scale-in");
  CHECK(in.desired == 2);
  Decision working = decide_fresh(policy, look(0, 6, 20, 0, 3));  // 3 running is not under half of 6
  CHECK(working.action == "hold");
  CHECK(working.reason == "gpu_util 20 < 30 but 3 running >= 0.5 x 6");
  CHECK(decide_fresh(policy, look(0, 6, 50, 0, 3)).reason == "gpu_util 50 in [30, 85]");
}

TEST_CASE("hysteresis: nothing changes between the two thresholds") {
  Policy policy = quick_policy();
  for (double util : {30.0, 50.0, 85.0}) {
    Decision decision = decide_fresh(policy, look(0, 4, util, 5, 0));
    CHECK_MESSAGE(decision.action == "hold", "util " << util);
  }
  CHECK(decide_fresh(policy, look(0, 4, 85.01, 1, 4)).action == "scale-out");
  CHECK(decide_fresh(policy, look(0, 4, 29.99, 0, 1)).action == "scale-in");
}

TEST_CASE("the proportional rule is ceil(current x metric / target) outside the tolerance band") {
  Policy policy = quick_policy();
  policy.rule = Rule::proportional;
  policy.target = 50;
  policy.tolerance = 0.1;
  CHECK(decide_fresh(policy, look(0, 4, 80)).desired == 7);   // ceil(4 * 1.6) = 7
  CHECK(decide_fresh(policy, look(0, 4, 20)).desired == 2);   // ceil(4 * 0.4) = 2
  CHECK(decide_fresh(policy, look(0, 4, 54.9)).action == "hold");  // ratio 1.098: within 10%
  CHECK(decide_fresh(policy, look(0, 4, 45.1)).action == "hold");
  CHECK(decide_fresh(policy, look(0, 4, 55.5)).desired == 5);  // ratio 1.11: ceil(4.44)
  CHECK(decide_fresh(policy, look(0, 3, 50.0)).desired == 3);
}

TEST_CASE("min and max bound the result; step limits cap one action") {
  Policy policy = quick_policy();
  policy.min_capacity = 2;
  policy.max_capacity = 6;
  CHECK(decide_fresh(policy, look(0, 4, 95, 50, 4)).desired == 6);
  CHECK(decide_fresh(policy, look(0, 4, 5, 0, 0)).desired == 2);
  policy.max_step_out = 1;
  policy.max_step_in = 1;
  CHECK(decide_fresh(policy, look(0, 3, 95, 50, 3)).desired == 4);
  CHECK(decide_fresh(policy, look(0, 5, 5, 0, 0)).desired == 4);
  // Below the minimum (a node failed): back to the minimum, cooldown or not.
  policy.cooldown_out = 1000;
  ControllerState state;
  state.last_scale_out = 0;
  CHECK(decide(policy, look(10, 1, 50), state).desired == 2);
}

TEST_CASE("cooldowns: no scale-out right after one, scale-in waits longer after any action") {
  Policy policy = quick_policy();
  policy.cooldown_out = 60;
  policy.cooldown_in = 300;
  ControllerState state;
  CHECK(decide(policy, look(0, 2, 95, 2, 2), state).action == "scale-out");
  Decision soon = decide(policy, look(30, 4, 95, 2, 4), state);
  CHECK(soon.action == "hold");
  CHECK(soon.reason.find("cooldown 30s left") != std::string::npos);
  CHECK(decide(policy, look(61, 4, 95, 2, 4), state).action == "scale-out");
  CHECK(decide(policy, look(200, 6, 5, 0, 0), state).action == "hold");  // 139s after scale-out
  CHECK(decide(policy, look(362, 6, 5, 0, 0), state).action == "scale-in");
  CHECK(decide(policy, look(400, 5, 5, 0, 0), state).action == "hold");  // 38s after scale-in
}

TEST_CASE("stabilization: scale in to the highest recommendation of the window") {
  Policy policy = quick_policy();
  policy.rule = Rule::proportional;
  policy.target = 50;
  policy.stabilization_in = 120;
  ControllerState state;
  CHECK(decide(policy, look(0, 4, 50), state).desired == 4);
  // A dip: the raw recommendation is 2, but 4 was recommended 60s ago.
  Decision dip = decide(policy, look(60, 4, 25), state);
  CHECK(dip.desired == 4);
  CHECK(dip.reason.find("stabilized") != std::string::npos);
  CHECK(decide(policy, look(100, 4, 30), state).desired == 4);
  // 130s: the 4 of t=0 has left the window; the highest since is 3 (from t=100: ceil(2.4)).
  CHECK(decide(policy, look(130, 4, 25), state).desired == 3);
}

TEST_CASE("a missing metric or capacity holds and says why") {
  Policy policy = quick_policy();
  Observation blind = look(0, 3, 50);
  blind.metrics.erase("gpu_util");
  Decision decision = decide_fresh(policy, blind);
  CHECK(decision.action == "hold");
  CHECK(decision.reason.find("gpu_util unavailable") != std::string::npos);
  Observation unknown = look(0, 3, 99, 5);
  unknown.current.reset();
  CHECK(decide_fresh(policy, unknown).action == "hold");
}

TEST_CASE("phases set CPUs per unit; a pre-emptible pool uses spot only under the price cap") {
  Policy policy = quick_policy();
  policy.cpus_per_unit = {{"warmup", 16}, {"steady", 8}};
  policy.preemptible = true;
  policy.spot_price = 1.5;
  policy.spot_price_cap = 2;
  Observation warmup = look(0, 2, 90, 2, 2);
  warmup.phase = "warmup";
  Decision decision = decide_fresh(policy, warmup);
  REQUIRE(decision.cpus);
  CHECK(*decision.cpus == 4 * 16);
  CHECK(decision.pool == "spot");
  warmup.metrics["spot_price"] = 2.5;
  CHECK(decide_fresh(policy, warmup).pool == "on-demand");
}

TEST_CASE("policy YAML: defaults are the quoted rule; contradictions are usage errors") {
  Config defaults = Config::from_text(policy_schema(), "", "<none>");
  Policy policy = policy_from_config(defaults);
  CHECK(policy.rule == Rule::threshold);
  CHECK(policy.scale_out_above == 85);
  CHECK(policy.scale_in_below == 30);
  CHECK(policy.running_fraction == 0.5);
  CHECK(policy.cooldown_in > policy.cooldown_out);
  Config inverted = Config::from_text(policy_schema(), "capacity: {min: 5, max: 2}\n", "p.yaml");
  CHECK_THROWS_AS(policy_from_config(inverted), UsageError);
  Config phases = Config::from_text(policy_schema(), "phases: {warmup: {cpus_per_gpu: fast}}\n", "p.yaml");
  CHECK_THROWS_AS(policy_from_config(phases), UsageError);
  CHECK_THROWS_AS(Config::from_text(policy_schema(), "rule: magic\n", "p.yaml"), UsageError);
}

TEST_CASE("policy YAML: a bad duration or phase names the file and line where it was set") {
  auto error_of = [](const std::string& text, std::vector<std::string> overrides = {}) {
    try {
      policy_from_config(Config::from_text(policy_schema(), text, "p.yaml", overrides));
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("capacity: {max: 4}\ncooldown:\n  in: soon\n") ==
        "p.yaml:3: cooldown.in: expected a duration like 30s, 5m or 7d, got 'soon'");
  CHECK(error_of("", {"stabilization.out=2x"}).find("--set stabilization.out=2x: stabilization.out: unknown duration unit") == 0);
  CHECK(error_of("rule: threshold\nphases:\n  warmup: {cpus: 3}\n") ==
        "p.yaml:2: unknown key 'phases.warmup.cpus' (a phase has cpus_per_gpu)");
  CHECK(error_of("phases:\n  warmup: {cpus_per_gpu: lots}\n") == "p.yaml:1: phases.warmup.cpus_per_gpu: expected a number >= 0");
  CHECK(error_of("phases: [warmup]\n").find("p.yaml:1: phases: expected a mapping") == 0);
  CHECK(error_of("phases:\n  warmup: {cpus_per_gpu: 16}\n  steady: {cpus_per_gpu: 8}\n").empty());
}

TEST_CASE("a decision is one line") {
  Policy policy = quick_policy();
  Decision decision = decide_fresh(policy, look(1795000000, 2, 90, 3, 2));
  std::string line = format_decision(decision);
  CHECK(line == "time=2026-11-18T11:06:40Z gpu_util=90 pending=3 running=2 current=2 desired=5 action=scale-out "
                "reason=\"gpu_util 90 > 85 with 3 pending\"");
  CHECK(line.find('\n') == std::string::npos);
}

TEST_CASE("the proportional rule on a fleet total divides by the capacity first (HPA AverageValue)") {
  Policy policy = quick_policy();
  policy.rule = Rule::proportional;
  policy.metric = "queue_depth";
  policy.target = 8;
  policy.per_unit = true;
  Observation observation;
  observation.current = 2;
  observation.metrics["queue_depth"] = 32;  // 16 per replica
  CHECK(decide_fresh(policy, observation).desired == 4);
  observation.current = 4;  // 8 per replica: on target
  CHECK(decide_fresh(policy, observation).action == "hold");
}
