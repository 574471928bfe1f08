// Simulation totals on a small hand-checked trace.
#include <doctest/doctest.h>

#include "scale/simulate.hpp"

using namespace dsk::scale;

namespace {
Observation demand_at(double time, double demand) {
  Observation sample;
  sample.time = time;
  sample.metrics["demand"] = demand;
  return sample;
}
}  // namespace

TEST_CASE("simulate: capacity follows demand, totals are capacity-hours, cost, time over target") {
  Policy policy;
  policy.cooldown_out = policy.cooldown_in = 0;
  policy.stabilization_in = 0;
  policy.max_step_in = 8;
  policy.on_demand_price = 3;
  policy.spot_price = 1;
  // One hour at demand 3 (one unit up: 100% busy, 2 pending), then one hour at demand 0.
  std::vector<Observation> trace = {demand_at(0, 3), demand_at(3600, 3), demand_at(7200, 0), demand_at(10800, 0)};
  SimulationResult result = simulate(policy, trace, 1);
  // A decision takes effect from the next sample (capacity takes time to come and go): hour 1
  // runs on 1 unit, hour 2 on 3, and hour 3 still on 3 (the scale-in decided at t=7200).
  CHECK(result.capacity_hours == doctest::Approx(7));
  CHECK(result.cost_on_demand == doctest::Approx(21));
  CHECK(result.cost_spot == doctest::Approx(7));
  CHECK(result.seconds_over_target == doctest::Approx(3600 * 2));  // 100% busy in hours 1 and 2
  CHECK(result.unserved_unit_hours == doctest::Approx(2));
  CHECK(result.scale_outs == 1);
  CHECK(result.scale_ins == 1);
  CHECK(result.peak_capacity == 3);
  REQUIRE(result.steps.size() == 4);
  // What --plot draws: demand beside the capacity of each interval, and where the policy acted.
  CHECK(result.steps[0].demand == 3);
  CHECK(result.steps[1].capacity == 3);
  CHECK(result.steps[0].action == "scale-out");
  CHECK(result.steps[2].action == "scale-in");
}

TEST_CASE("simulate: a trace without demand is replayed as recorded, with no demand to plot") {
  Policy policy;
  Observation sample;
  sample.time = 0;
  sample.current = 2;
  sample.metrics["gpu_util"] = 50;
  SimulationResult result = simulate(policy, {sample}, 1);
  REQUIRE(result.steps.size() == 1);
  CHECK_FALSE(result.steps[0].demand.has_value());
  CHECK(result.steps[0].capacity == 2);
  CHECK(result.steps[0].load == 50);
}
