// Named pools for Slurm's power programs: parsing pools.<name> from the policy, and which pool
// (and spot or on-demand) each node of a ResumeProgram call gets.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "scale/slurm_power.hpp"

using namespace dsk;
using namespace dsk::scale;

namespace {
Policy policy_of(const std::string& yaml) { return policy_from_config(Config::from_text(policy_schema(), yaml, "p.yaml")); }

std::string error_of(const std::string& yaml) {
  try {
    policy_of(yaml);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

// A stand-in for `scontrol show hostnames`, for the two hostlists used below.
std::vector<std::string> expand(const std::string& hostlist) {
  if (hostlist == "gpu[1-2]") return {"gpu1", "gpu2"};
  if (hostlist == "gpu[2-4]") return {"gpu2", "gpu3", "gpu4"};
  return {};
}
}  // namespace

TEST_CASE("pools: a reserved pool and a pre-emptible one with a price cap") {
  Policy policy = policy_of(
      "pricing: {spot: 1.5}\n"
      "pools:\n"
      "  reserved: {nodes: 'gpu[1-2]'}\n"
      "  spot: {nodes: 'gpu[2-4]', preemptible: true, spot_price_cap: 2}\n");
  REQUIRE(policy.pools.size() == 2);
  CHECK(policy.pools[1].name == "spot");
  CHECK(policy.pools[1].preemptible);
  CHECK(policy.pools[1].spot_price_cap == 2);

  auto pools = pools_for_nodes(policy, {"gpu1", "gpu2", "gpu3", "gpu9"}, expand);
  CHECK(pools["gpu1"].name == "reserved");
  CHECK(pools["gpu1"].capacity.empty());
  CHECK(pools["gpu2"].name == "reserved");  // the first pool that lists a node wins
  CHECK(pools["gpu3"].name == "spot");
  CHECK(pools["gpu3"].capacity == "spot");  // 1.5 under the cap of 2
  CHECK(pools["gpu9"].name.empty());        // in no pool: no pool, no choice

  policy.spot_price = 2.5;  // above the cap: the pre-emptible pool starts on-demand capacity
  CHECK(pools_for_nodes(policy, {"gpu4"}, expand)["gpu4"].capacity == "on-demand");
}

TEST_CASE("pools: without any, the policy's pricing is the one pool") {
  Policy policy = policy_of("pricing: {preemptible: true, spot: 1.2, spot_price_cap: 2}\n");
  auto pools = pools_for_nodes(policy, {"n1"}, expand);
  CHECK(pools["n1"].name.empty());
  CHECK(pools["n1"].capacity == "spot");
  CHECK(pools_for_nodes(policy_of(""), {"n1"}, expand)["n1"].capacity.empty());
}

TEST_CASE("pools: errors name the file, the line of pools and the key") {
  CHECK(error_of("pools:\n  spot: {nodes: 'g[1-2]', cap: 2}\n") ==
        "p.yaml:1: unknown key 'pools.spot.cap' (a pool has nodes, preemptible, spot_price_cap)");
  CHECK(error_of("pools:\n  spot: {preemptible: true}\n") == "p.yaml:1: pools.spot.nodes is required (a hostlist such as gpu[1-4])");
  CHECK(error_of("pools:\n  spot: {nodes: 'g1', preemptible: maybe}\n") == "p.yaml:1: pools.spot.preemptible: expected true or false");
  CHECK(error_of("pools:\n  spot: {nodes: 'g1', spot_price_cap: -1}\n") == "p.yaml:1: pools.spot.spot_price_cap: expected a number >= 0");
  CHECK(error_of("pools: [a, b]\n").find("p.yaml:1: pools: expected a mapping") == 0);
}
