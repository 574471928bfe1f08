// Opening a model from the registry for other tools (dsk-serve, dsk-finetune, dsk-distill):
//   registry://name@version-or-alias   under the registry root (DSK_REGISTRY, or the caller's flag)
//   registry://name                    the alias "prod" if there is one, else the newest version
//   s3://bucket/prefix/name/version    a version directory (manifest.yaml may be named too)
// into a local cache keyed by the manifest's sha256:
//   <cache>/<sha256 of manifest.yaml>/{manifest.yaml, files...}
// A cached directory is complete (it is downloaded under a temporary name, verified file by file
// against the manifest, and renamed into place), so a second open of the same version costs one
// GET of the manifest. An alias is resolved on every open (a version drawn by the weights).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "registry/credentials.hpp"
#include "registry/version_store.hpp"

namespace dsk::registry {

struct ModelRef {
  std::string root;     // s3://bucket[/prefix]
  std::string name;
  std::string ref;      // a version or an alias; "" for registry://name
};

// Parses a registry:// or s3:// model URL; registry:// needs registry_root (UsageError naming
// DSK_REGISTRY otherwise).
ModelRef parse_model_url(const std::string& url, const std::string& registry_root);

// True for the URLs open_model accepts (so a tool can tell them from local paths).
bool is_model_url(const std::string& text);

// The cache directory: $DSK_CACHE_DIR, else $XDG_CACHE_HOME/dsk/registry, else
// ~/.cache/dsk/registry.
std::filesystem::path default_cache_dir();

struct OpenOptions {
  std::string registry_root;  // for registry://; empty: $DSK_REGISTRY
  std::filesystem::path cache_dir;  // empty: default_cache_dir()
  std::optional<double> draw;       // u in [0, 1) for an alias's weighted pick; empty: random
  FetchOptions fetch;
};

struct OpenedModel {
  std::filesystem::path directory;  // the local copy
  std::string name, version;
  std::string manifest_url, manifest_sha256;
  bool cached = false;  // true when nothing was downloaded
};

OpenedModel open_model(const Connection& connection, const std::string& url,
                       const OpenOptions& options = {});

}  // namespace dsk::registry
