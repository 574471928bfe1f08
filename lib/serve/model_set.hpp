// The models a server runs, kept in step with its config and the registry: loads each model's
// versions (a directory, or what a registry alias points to, downloaded into the fetch cache),
// points the router at them with their weights, and re-reads registry aliases every refresh
// period, so that a weight change or a new version takes effect without a restart. A version
// that drops out is no longer routed to and is freed when its last request ends (requests in
// flight hold it): drained, not cut.
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/router.hpp"
#include "serve/serve_config.hpp"
#include "serve/served_model.hpp"

namespace dsk::serve {

// One version of a model to serve: where its files are and its traffic weight.
struct VersionSource {
  std::string version;
  std::filesystem::path directory;
  int weight = 100;
};

// The versions `spec.source` names now (a registry alias is read again on every call).
// UsageError / RemoteError / DataError naming the source.
std::vector<VersionSource> resolve_versions(const ModelSpec& spec, const RegistrySettings& registry);

class ModelSet {
 public:
  ModelSet(Router& router, EngineFactory factory, EngineOptions engine, RegistrySettings registry);
  ~ModelSet();

  // Serves exactly `specs`: loads what is new, re-reads registry aliases, drops models that are
  // no longer named. Throws on the first model that cannot be loaded; the router then still
  // serves what it served before.
  void apply(const std::vector<ModelSpec>& specs);
  // Re-reads every registry model's alias; a failure is logged and the model keeps its versions.
  void refresh();
  // refresh() every registry.refresh on a thread of its own, until destruction.
  void start_refreshing();
  void set_engine_options(const EngineOptions& engine);

 private:
  void apply_one(const ModelSpec& spec);
  void forget_unrouted();

  Router& router_;
  EngineFactory factory_;
  EngineOptions engine_;
  RegistrySettings registry_;
  std::mutex mutex_;  // one apply or refresh at a time
  std::vector<ModelSpec> specs_;
  std::map<std::string, std::shared_ptr<ServedModel>> loaded_;  // by name, version and directory
  std::mutex stop_mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::thread refresher_;
};

}  // namespace dsk::serve
