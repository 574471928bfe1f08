#include "serve/model_set.hpp"

#include <cstdlib>
#include <set>

#include "core/error.hpp"
#include "core/log.hpp"
#include "registry/alias_store.hpp"
#include "registry/fetch_cache.hpp"
#include "registry/s3_client.hpp"

namespace dsk::serve {
namespace {

std::optional<std::string> environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::optional<std::string>(value) : std::nullopt;
}

registry::Connection connect(const RegistrySettings& settings) {
  registry::ConnectionFlags flags;
  flags.endpoint_url = settings.endpoint_url;
  flags.region = settings.region;
  flags.profile = settings.profile;
  return registry::resolve_connection(flags, environment);
}

std::string registry_root(const RegistrySettings& settings) {
  return settings.root.empty() ? environment("DSK_REGISTRY").value_or("") : settings.root;
}

registry::OpenOptions open_options(const RegistrySettings& settings) {
  registry::OpenOptions options;
  options.registry_root = registry_root(settings);
  options.cache_dir = settings.cache_dir;
  return options;
}

}  // namespace

std::vector<VersionSource> resolve_versions(const ModelSpec& spec, const RegistrySettings& settings) {
  if (!registry::is_model_url(spec.source)) {
    if (!std::filesystem::is_directory(spec.source))
      throw UsageError(str("model '", spec.name, "': ", spec.source, " is not a directory"));
    return {{"local", spec.source, 100}};
  }
  registry::Connection connection = connect(settings);
  registry::OpenOptions options = open_options(settings);
  if (spec.source.rfind("registry://", 0) == 0) {
    registry::ModelRef ref = registry::parse_model_url(spec.source, options.registry_root);
    registry::S3Client client(connection);
    registry::AliasTable aliases = registry::read_aliases(client, ref.root, ref.name);
    std::string alias = ref.ref.empty() && aliases.count("prod") ? "prod" : ref.ref;
    if (auto it = aliases.find(alias); it != aliases.end()) {
      // Every version of the alias, each with its weight: the router splits the traffic.
      std::vector<VersionSource> versions;
      for (const registry::WeightedVersion& weighted : it->second) {
        registry::OpenedModel opened =
            registry::open_model(connection, str("registry://", ref.name, "@", weighted.version), options);
        versions.push_back({opened.version, opened.directory, weighted.weight});
      }
      return versions;
    }
  }
  registry::OpenedModel opened = registry::open_model(connection, spec.source, options);
  return {{opened.version, opened.directory, 100}};
}

ModelSet::ModelSet(Router& router, EngineFactory factory, EngineOptions engine, RegistrySettings registry)
    : router_(router), factory_(std::move(factory)), engine_(std::move(engine)), registry_(std::move(registry)) {}

ModelSet::~ModelSet() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  if (refresher_.joinable()) refresher_.join();
}

void ModelSet::set_engine_options(const EngineOptions& engine) {
  std::lock_guard lock(mutex_);
  engine_ = engine;
}

void ModelSet::apply_one(const ModelSpec& spec) {
  std::vector<WeightedModel> versions;
  for (const VersionSource& source : resolve_versions(spec, registry_)) {
    std::string key = str(spec.name, "\n", source.version, "\n", source.directory.string());
    auto it = loaded_.find(key);
    if (it == loaded_.end()) {
      log_info("loading ", spec.name, " version ", source.version, " from ", source.directory.string());
      it = loaded_.emplace(key, load_served_model(spec.name, source.version, source.directory, factory_, engine_)).first;
    }
    versions.push_back({it->second, source.weight});
  }
  std::string weights;
  for (const auto& version : versions) weights += str(weights.empty() ? "" : ", ", version.model->version, ": ", version.weight);
  router_.set_model(spec.name, std::move(versions), spec.fallback);
  log_info("serving ", spec.name, " {", weights, "}");
}

void ModelSet::apply(const std::vector<ModelSpec>& specs) {
  std::lock_guard lock(mutex_);
  for (const ModelSpec& spec : specs) apply_one(spec);
  std::set<std::string> names;
  for (const ModelSpec& spec : specs) names.insert(spec.name);
  for (const std::string& name : router_.model_names())
    if (!names.count(name)) {
      log_info("no longer serving ", name, " (its running requests finish)");
      router_.remove_model(name);
    }
  specs_ = specs;
  forget_unrouted();
}

void ModelSet::forget_unrouted() {
  // Versions the router no longer names live on only in the requests that still hold them.
  std::set<const ServedModel*> routed;
  for (const auto& model : router_.all_versions()) routed.insert(model.get());
  for (auto it = loaded_.begin(); it != loaded_.end();)
    it = routed.count(it->second.get()) ? std::next(it) : loaded_.erase(it);
}

void ModelSet::refresh() {
  std::vector<ModelSpec> specs;
  {
    std::lock_guard lock(mutex_);
    specs = specs_;
  }
  for (const ModelSpec& spec : specs) {
    if (!registry::is_model_url(spec.source)) continue;
    try {
      std::lock_guard lock(mutex_);
      apply_one(spec);
    } catch (const std::exception& error) {
      log_warn("cannot refresh ", spec.name, " from ", spec.source, " (it keeps its versions): ", error.what());
    }
  }
  std::lock_guard lock(mutex_);
  forget_unrouted();
}

void ModelSet::start_refreshing() {
  refresher_ = std::thread([this] {
    std::unique_lock lock(stop_mutex_);
    while (!stop_.wait_for(lock, registry_.refresh, [&] { return stopping_; })) {
      lock.unlock();
      refresh();
      lock.lock();
    }
  });
}

}  // namespace dsk::serve
