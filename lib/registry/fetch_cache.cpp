#include "registry/fetch_cache.hpp"

#include <cstdlib>
#include <random>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/sha256.hpp"
#include "registry/alias_store.hpp"

namespace dsk::registry {
namespace {

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace

bool is_model_url(const std::string& text) {
  return text.starts_with("registry://") || text.starts_with("s3://");
}

ModelRef parse_model_url(const std::string& url, const std::string& registry_root) {
  const std::string registry_scheme = "registry://";
  if (url.starts_with(registry_scheme)) {
    std::string rest = url.substr(registry_scheme.size());
    auto at = rest.find('@');
    ModelRef model{registry_root, rest.substr(0, at), at == std::string::npos ? "" : rest.substr(at + 1)};
    if (model.name.empty() || model.name.find('/') != std::string::npos ||
        (at != std::string::npos && model.ref.empty()))
      throw UsageError(str("'", url, "': expected registry://name or registry://name@version-or-alias"));
    if (model.root.empty())
      throw UsageError(str("'", url, "': no registry root: set DSK_REGISTRY=s3://bucket[/prefix]"));
    parse_s3_url(model.root);  // checks it
    return model;
  }
  ObjectAddress address = parse_s3_url(url);
  std::string key = address.key;
  if (key.ends_with("manifest.yaml")) key.resize(key.size() - std::string("manifest.yaml").size());
  while (key.ends_with('/')) key.pop_back();
  auto version_slash = key.rfind('/');
  if (version_slash == std::string::npos || version_slash == 0)
    throw UsageError(str("'", url, "': expected s3://bucket[/prefix]/name/version"));
  auto name_slash = key.rfind('/', version_slash - 1);
  std::string prefix = name_slash == std::string::npos ? "" : key.substr(0, name_slash);
  std::string name = key.substr(name_slash == std::string::npos ? 0 : name_slash + 1,
                                version_slash - (name_slash == std::string::npos ? 0 : name_slash + 1));
  return {"s3://" + address.bucket + (prefix.empty() ? "" : "/" + prefix), name,
          key.substr(version_slash + 1)};
}

std::filesystem::path default_cache_dir() {
  if (std::string dir = environment("DSK_CACHE_DIR"); !dir.empty()) return dir;
  if (std::string dir = environment("XDG_CACHE_HOME"); !dir.empty())
    return std::filesystem::path(dir) / "dsk/registry";
  std::string home = environment("HOME");
  return std::filesystem::path(home.empty() ? "/tmp" : home) / ".cache/dsk/registry";
}

OpenedModel open_model(const Connection& connection, const std::string& url,
                       const OpenOptions& options) {
  std::string registry_root =
      options.registry_root.empty() ? environment("DSK_REGISTRY") : options.registry_root;
  ModelRef model = parse_model_url(url, registry_root);
  S3Client client(connection);
  std::mt19937 random(std::random_device{}());
  double u = options.draw ? *options.draw : std::uniform_real_distribution<double>(0, 1)(random);
  std::string version;
  if (!model.ref.empty()) {
    version = resolve_version(client, model.root, model.name, model.ref, u);
  } else {
    AliasTable aliases = read_aliases(client, model.root, model.name);
    if (aliases.count("prod")) {
      version = pick_version(aliases["prod"], u);
    } else {
      auto versions = list_versions(client, model.root, model.name);
      if (versions.empty())
        throw UsageError(str(url, ": ", model.name, " has no versions under ", model.root));
      version = versions.back().version;
    }
  }
  auto text = read_manifest_text(client, model.root, model.name, version);
  if (!text) throw UsageError(str(url, ": ", model.name, " has no version ", version));
  ObjectAddress manifest_object = registry_object(model.root, model.name, version + "/manifest.yaml");
  OpenedModel opened{{}, model.name, version,
                     str("s3://", manifest_object.bucket, "/", manifest_object.key),
                     sha256_hex(*text), false};
  std::filesystem::path cache = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  opened.directory = cache / opened.manifest_sha256;
  if (std::filesystem::exists(opened.directory / "manifest.yaml")) {
    log_debug(url, ": ", model.name, "@", version, " is cached in ", opened.directory.string());
    opened.cached = true;
    return opened;
  }
  std::filesystem::create_directories(cache);
  AtomicDirectory download(opened.directory);
  fetch_manifest_files(connection, model.root, model.name, version, *text, download.path(), options.fetch);
  // Another process may have finished the same download meanwhile: its copy is as good.
  if (!std::filesystem::exists(opened.directory)) download.commit();
  return opened;
}

}  // namespace dsk::registry
