// Aliases on S3: <root>/<name>/aliases.yaml (format in aliases.hpp).
//
// Two writers must not lose each other's change. s3rver 3.7.1 has no conditional PUT
// (If-Match / If-None-Match are honoured only on GET), and neither had S3 before 2024, so the
// update is read-modify-write-verify: write the merged table, wait a settle time, read it back,
// and redo the whole update (with backoff) when our change is not there because another
// writer's table replaced ours. What this guarantees: a writer returns only after it saw its
// change stored; a change can still be lost if another writer's read-modify-write spans more
// than the settle time and lands after the verify (the server offers nothing stronger).
#pragma once

#include <chrono>
#include <string>

#include "registry/aliases.hpp"
#include "registry/s3_client.hpp"

namespace dsk::registry {

struct AliasWriteOptions {
  int attempts = 8;
  std::chrono::milliseconds settle{200};
};

AliasTable read_aliases(S3Client& client, const std::string& root, const std::string& name);

// Points alias at versions (every version must have a manifest: UsageError otherwise).
void set_alias(S3Client& client, const std::string& root, const std::string& name,
               const std::string& alias, const std::vector<WeightedVersion>& versions,
               const AliasWriteOptions& options = {});

// The version that ref names: an alias of name (a version drawn by its weights with u in
// [0, 1)) or else a version. UsageError when it is neither (naming both places looked at).
std::string resolve_version(S3Client& client, const std::string& root, const std::string& name,
                            const std::string& ref, double u);

// Where <root>/<name>/<file> lives ("s3://bucket/prefix" root).
ObjectAddress registry_object(const std::string& root, const std::string& name,
                              const std::string& file);

}  // namespace dsk::registry
