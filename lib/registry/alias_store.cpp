#include "registry/alias_store.hpp"

#include <random>
#include <thread>

#include "core/error.hpp"

namespace dsk::registry {

ObjectAddress registry_object(const std::string& root, const std::string& name,
                              const std::string& file) {
  ObjectAddress base = parse_s3_url(root);
  std::string prefix = base.key;
  if (!prefix.empty() && !prefix.ends_with('/')) prefix += '/';
  return {base.bucket, prefix + name + "/" + file};
}

AliasTable read_aliases(S3Client& client, const std::string& root, const std::string& name) {
  ObjectAddress object = registry_object(root, name, "aliases.yaml");
  auto text = client.get(object);
  return text ? parse_aliases(*text, str("s3://", object.bucket, "/", object.key)) : AliasTable{};
}

void set_alias(S3Client& client, const std::string& root, const std::string& name,
               const std::string& alias, const std::vector<WeightedVersion>& versions,
               const AliasWriteOptions& options) {
  for (const auto& weighted : versions)
    if (!client.head(registry_object(root, name, weighted.version + "/manifest.yaml")))
      throw UsageError(str(name, " has no version ", weighted.version, " to point '", alias,
                           "' at"));
  ObjectAddress object = registry_object(root, name, "aliases.yaml");
  std::mt19937 random(std::random_device{}());
  for (int attempt = 1; attempt <= options.attempts; ++attempt) {
    AliasTable table = read_aliases(client, root, name);
    table[alias] = versions;
    client.put(object, aliases_to_yaml(table), {{"content-type", "application/yaml"}});
    std::this_thread::sleep_for(options.settle);
    if (read_aliases(client, root, name)[alias] == versions) return;
    // Another writer replaced our table: back off a random while, then redo the update.
    std::uniform_int_distribution<int> jitter(0, 50 << std::min(attempt, 5));
    std::this_thread::sleep_for(std::chrono::milliseconds(jitter(random)));
  }
  throw RemoteError(str("s3://", object.bucket, "/", object.key, ": alias '", alias,
                        "' did not stay written after ", options.attempts,
                        " attempts (other writers keep replacing it)"));
}

std::string resolve_version(S3Client& client, const std::string& root, const std::string& name,
                            const std::string& ref, double u) {
  AliasTable table = read_aliases(client, root, name);
  if (auto alias = table.find(ref); alias != table.end()) return pick_version(alias->second, u);
  if (client.head(registry_object(root, name, ref + "/manifest.yaml"))) return ref;
  ObjectAddress base = registry_object(root, name, "");
  throw UsageError(str(name, "@", ref, ": no such alias in s3://", base.bucket, "/", base.key,
                       "aliases.yaml and no such version (no ", ref, "/manifest.yaml)"));
}

}  // namespace dsk::registry
