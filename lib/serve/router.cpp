#include "serve/router.hpp"

#include <random>

#include "core/error.hpp"
#include "serve/api_error.hpp"

namespace dsk::serve {
namespace {

constexpr int kMaxFallbackDepth = 4;  // a -> b -> c ...; a cycle in the config ends here

double random_draw() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 1)(rng);
}

}  // namespace

double user_draw(const std::string& user) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : user) hash = (hash ^ c) * 1099511628211ull;
  // FNV's low bits mix poorly for short keys: finish with splitmix64's mixer.
  hash ^= hash >> 30, hash *= 0xbf58476d1ce4e5b9ull, hash ^= hash >> 27, hash *= 0x94d049bb133111ebull, hash ^= hash >> 31;
  return static_cast<double>(hash >> 11) * 0x1.0p-53;
}

void Router::set_model(const std::string& name, std::vector<WeightedModel> versions, FallbackPolicy policy) {
  if (versions.empty()) throw InternalError(str("model ", name, " has no version to serve"));
  std::lock_guard lock(mutex_);
  Entry& entry = models_[name];
  entry.versions = std::move(versions);
  entry.policy = std::move(policy);
}

void Router::remove_model(const std::string& name) {
  std::lock_guard lock(mutex_);
  models_.erase(name);
}

std::shared_ptr<ServedModel> Router::pick(const Entry& entry, const std::string& user) const {
  int total = 0;
  for (const auto& version : entry.versions) total += version.weight;
  double u = user.empty() ? random_draw() : user_draw(user);
  double point = u * total;
  for (const auto& version : entry.versions) {
    if (point < version.weight) return version.model;
    point -= version.weight;
  }
  return entry.versions.back().model;
}

bool Router::overloaded(const std::string& name, Entry& entry) {
  const FallbackPolicy& policy = entry.policy;
  double wait = 0, ttft = 0;
  for (const auto& version : entry.versions) {
    wait = std::max(wait, version.model->engine->stats().oldest_wait_seconds);
    ttft = std::max(ttft, version.model->time_to_first_token.value(policy.latency_window));
  }
  auto above = [](double value, double bound, double factor) { return bound > 0 && value > bound * factor; };
  auto now = std::chrono::steady_clock::now();
  if (!entry.fallback_active) {
    if (above(wait, policy.max_queue_wait, 1) || above(ttft, policy.max_time_to_first_token, 1)) {
      entry.fallback_active = true;
      entry.engaged_at = now;
      metrics_.add("dsk_serve_fallback_switches_total", {{"model", name}, {"fallback", policy.fallback}});
    }
  } else if (now - entry.engaged_at >= policy.min_engaged && !above(wait, policy.max_queue_wait, policy.recover) &&
             !above(ttft, policy.max_time_to_first_token, policy.recover)) {
    entry.fallback_active = false;
  }
  return entry.fallback_active;
}

Route Router::route(const std::string& name, const std::string& user) {
  std::lock_guard lock(mutex_);
  std::string current = name;
  bool fell_back = false;
  for (int depth = 0;; ++depth) {
    auto it = models_.find(current);
    if (it == models_.end()) {
      if (depth == 0)
        throw ApiError(404, "invalid_request_error", str("The model '", name, "' does not exist"), "model", "model_not_found");
      break;  // a fallback that is not loaded: the model answers itself (below)
    }
    Entry& entry = it->second;
    const std::string& fallback = entry.policy.fallback;
    if (depth < kMaxFallbackDepth && !fallback.empty() && models_.count(fallback) && overloaded(current, entry)) {
      metrics_.add("dsk_serve_fallbacks_total", {{"model", current}, {"fallback", fallback}});
      current = fallback;
      fell_back = true;
      continue;
    }
    return Route{pick(entry, user), name, fell_back};
  }
  return Route{pick(models_.at(name), user), name, false};
}

std::vector<std::string> Router::model_names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const auto& [name, entry] : models_) names.push_back(name);
  return names;
}

std::vector<std::shared_ptr<ServedModel>> Router::versions_of(const std::string& name) const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<ServedModel>> versions;
  if (auto it = models_.find(name); it != models_.end())
    for (const auto& version : it->second.versions) versions.push_back(version.model);
  return versions;
}

std::vector<std::shared_ptr<ServedModel>> Router::all_versions() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<ServedModel>> versions;
  for (const auto& [name, entry] : models_)
    for (const auto& version : entry.versions) versions.push_back(version.model);
  return versions;
}

bool Router::has_models() const {
  std::lock_guard lock(mutex_);
  return !models_.empty();
}

std::vector<GaugeSample> Router::gauges() const {
  std::lock_guard lock(mutex_);
  std::vector<GaugeSample> gauges;
  for (const auto& [name, entry] : models_) {
    gauges.push_back({"dsk_serve_fallback_active", {{"model", name}}, entry.fallback_active ? 1.0 : 0.0});
    for (const auto& version : entry.versions) {
      const ServedModel& model = *version.model;
      Labels labels{{"model", model.name}, {"version", model.version}};
      EngineStats stats = model.engine->stats();
      gauges.push_back({"dsk_serve_queue_depth", labels, double(stats.waiting)});
      gauges.push_back({"dsk_serve_running_requests", labels, double(stats.running)});
      gauges.push_back({"dsk_serve_batch_size", labels, stats.last_batch_size});
      gauges.push_back({"dsk_serve_kv_blocks_used", labels, double(stats.kv_blocks_used)});
      gauges.push_back({"dsk_serve_kv_blocks_total", labels, double(stats.kv_blocks_total)});
      gauges.push_back({"dsk_serve_oldest_wait_seconds", labels, stats.oldest_wait_seconds});
      gauges.push_back({"dsk_serve_preemptions", labels, double(stats.preemptions)});
      gauges.push_back({"dsk_serve_version_weight", labels, double(version.weight)});
      gauges.push_back({"dsk_serve_requests_in_flight", labels, double(model.in_flight.load())});
      gauges.push_back({"dsk_serve_tokens_per_second", labels, model.generated_tokens.per_second()});
    }
  }
  return gauges;
}

}  // namespace dsk::serve
