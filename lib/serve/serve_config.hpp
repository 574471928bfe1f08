// dsk-serve's config file (-c serve.yaml) and what it becomes. Every key can be set with --set;
// the flags of tools/dsk-serve.cpp stand for keys. The format is in man/dsk-serve.1 and
// configs/serve.example.yaml.
//
//   host: 127.0.0.1
//   port: 8080                     # 0: any free port (printed on stderr)
//   api_key_file: keys.txt         # unset: no keys, unless DSK_SERVE_API_KEY is set
//   drain_grace: 30s
//   models:
//     - name: big
//       source: registry://big@prod          # or a checkpoint directory
//       fallback: small
//       max_queue_wait: 2s
//       max_time_to_first_token: 1s
//       recover: 0.5
//       min_engaged: 10s
//     - {name: small, source: runs/small/checkpoints/step-002000}
//   engine: {device: auto, precision: bf16, max_batch: 64, ...}   # engine.hpp's EngineOptions
//   http: {threads: 512, max_body: 8MiB, read_timeout: 30s, write_timeout: 30s, keep_alive_timeout: 5s, retry_after: 1}
//   registry: {root: s3://models, refresh: 30s, cache_dir: ...}
//   s3: {endpoint_url: ..., region: ..., profile: ...}
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "serve/engine.hpp"
#include "serve/http_server.hpp"
#include "serve/router.hpp"

namespace dsk::serve {

struct ModelSpec {
  std::string name;
  std::string source;  // a directory (absolute), or registry://name[@ref] / s3://...
  FallbackPolicy fallback;
};

struct RegistrySettings {
  std::string root;  // empty: $DSK_REGISTRY
  std::chrono::milliseconds refresh{30000};
  std::filesystem::path cache_dir;  // empty: the registry's default
  std::string endpoint_url, region, profile;
};

struct ServeSettings {
  std::vector<ModelSpec> models;
  EngineOptions engine;
  HttpOptions http;
  RegistrySettings registry;
  std::optional<std::filesystem::path> api_key_file;
  std::chrono::milliseconds drain_grace{30000};
};

const Schema& serve_schema();
// UsageError naming the file, line and key for a malformed models list or value.
ServeSettings serve_settings(const Config& config);

// The models list as YAML for --model flags: "[NAME=]SOURCE" each. The name defaults to the
// registry model's name, or the directory's last component.
std::string models_yaml_from_flags(const std::vector<std::string>& models);

}  // namespace dsk::serve
