#include "registry/prune.hpp"

#include <algorithm>

namespace dsk::registry {

std::vector<std::string> versions_to_prune(std::vector<VersionAge> versions,
                                           const std::set<std::string>& aliased,
                                           const PrunePolicy& policy,
                                           std::chrono::system_clock::time_point now) {
  // Newest first; equal times fall back to the name so the choice is deterministic.
  std::sort(versions.begin(), versions.end(), [](const VersionAge& a, const VersionAge& b) {
    return a.created != b.created ? a.created > b.created : a.version > b.version;
  });
  std::vector<std::string> doomed;
  for (size_t i = policy.keep; i < versions.size(); ++i) {
    const VersionAge& candidate = versions[i];
    bool old_enough = now - candidate.created > policy.older_than;
    if (old_enough && !aliased.count(candidate.version)) doomed.push_back(candidate.version);
  }
  std::reverse(doomed.begin(), doomed.end());
  return doomed;
}

}  // namespace dsk::registry
