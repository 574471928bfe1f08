// Which versions `prune --keep N --older-than D` deletes: a version goes only when it is not
// among the N newest, is older than D, and no alias points to it (all three).
#pragma once

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "registry/s3_client.hpp"

namespace dsk::registry {

struct VersionAge {
  std::string version;
  std::chrono::system_clock::time_point created;  // the manifest's creation time
};

struct PrunePolicy {
  size_t keep = 0;                    // the newest N always stay
  std::chrono::seconds older_than{0};  // only versions older than this may go
};

// Returns the versions to delete, oldest first.
std::vector<std::string> versions_to_prune(std::vector<VersionAge> versions,
                                           const std::set<std::string>& aliased,
                                           const PrunePolicy& policy,
                                           std::chrono::system_clock::time_point now);

// "2026-11-22T18:40:00Z" (a manifest's creation time); DataError naming source otherwise.
std::chrono::system_clock::time_point parse_utc_time(const std::string& text,
                                                     const std::string& source);

// Prunes name under root: reads its whole versions and aliases, deletes (unless dry_run) the
// versions versions_to_prune selects, each manifest first, and returns them, oldest first.
std::vector<std::string> prune_versions(S3Client& client, const std::string& root,
                                        const std::string& name, const PrunePolicy& policy,
                                        bool dry_run);

}  // namespace dsk::registry
