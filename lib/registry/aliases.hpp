// <name>/aliases.yaml: each alias (prod, canary, ...) maps to one or more versions with integer
// traffic weights for A/B tests, e.g.
//   aliases:
//     prod: {"1.0": 90, "1.1": 10}
//     canary: {"1.1": 100}
// A reader of "registry://name@prod" picks a version with probability weight / total.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace dsk::registry {

struct WeightedVersion {
  std::string version;
  int weight = 0;  // > 0
  bool operator==(const WeightedVersion&) const = default;
};

using AliasTable = std::map<std::string, std::vector<WeightedVersion>>;

// Parses aliases.yaml text; source names it in errors (DataError with file:line).
AliasTable parse_aliases(const std::string& yaml, const std::string& source);
std::string aliases_to_yaml(const AliasTable& table);

// "1.0" (weight 100) or "1.0=90,1.1=10" as given on the command line; UsageError otherwise.
std::vector<WeightedVersion> parse_weight_spec(const std::string& spec);

// The version that a draw u in [0, 1) lands on, walking the versions in order.
const std::string& pick_version(const std::vector<WeightedVersion>& versions, double u);

// Every version that some alias points to (prune spares these).
std::set<std::string> aliased_versions(const AliasTable& table);

}  // namespace dsk::registry
