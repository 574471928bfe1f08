#include "registry/prune.hpp"

#include <algorithm>
#include <ctime>

#include "core/error.hpp"
#include "core/log.hpp"
#include "registry/alias_store.hpp"
#include "registry/version_store.hpp"

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

std::chrono::system_clock::time_point parse_utc_time(const std::string& text,
                                                     const std::string& source) {
  std::tm utc{};
  char rest = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &utc.tm_year, &utc.tm_mon,
                  &utc.tm_mday, &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &rest) != 7 ||
      rest != 'Z')
    throw DataError(str(source, ": created '", text, "' is not a UTC time like 2026-11-22T18:40:00Z"));
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&utc));
}

std::vector<std::string> prune_versions(S3Client& client, const std::string& root,
                                        const std::string& name, const PrunePolicy& policy,
                                        bool dry_run) {
  std::vector<VersionAge> ages;
  for (const auto& summary : list_versions(client, root, name))
    ages.push_back({summary.version, parse_utc_time(summary.created, name + "/" + summary.version)});
  std::set<std::string> aliased = aliased_versions(read_aliases(client, root, name));
  std::vector<std::string> doomed =
      versions_to_prune(ages, aliased, policy, std::chrono::system_clock::now());
  for (const auto& version : doomed) {
    log_info(dry_run ? "would delete " : "deleting ", name, " version ", version);
    if (!dry_run) delete_version(client, root, name, version);
  }
  return doomed;
}

}  // namespace dsk::registry
