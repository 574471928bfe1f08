// Which loaded model version answers a request.
//
// A model name maps to one or more versions with integer weights (a registry alias such as
// prod: {"1.2": 90, "1.3": 10}, or one directory with weight 100). A request picks a version by
// a draw u in [0, 1) over the weights: from a hash of its `user` field when given (the same user
// keeps the same version while the weights stay), else at random.
//
// Fallback: a model may name a fallback model (a distilled one). When the model's oldest queue
// wait or its recent time to first token passes its bound, the fallback is engaged: new requests
// go to the fallback. It disengages when both are back under `recover` times their bounds and it
// has been engaged for at least `min_engaged` (hysteresis, so that it does not flap).
//
// set_model() replaces a model's versions at once (weights changed, a version added or dropped);
// requests already running keep their ServedModel (shared_ptr), so a dropped version is drained.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "serve/metrics.hpp"
#include "serve/served_model.hpp"

namespace dsk::serve {

struct FallbackPolicy {
  std::string fallback;          // model name; empty: no fallback
  double max_queue_wait = 0;     // seconds; 0: not a criterion
  double max_time_to_first_token = 0;  // seconds; 0: not a criterion
  double recover = 0.5;          // disengage below recover x bound
  std::chrono::milliseconds min_engaged{1000};
  std::chrono::milliseconds latency_window{10000};  // a TTFT older than this is not "recent"
};

struct WeightedModel {
  std::shared_ptr<ServedModel> model;
  int weight = 100;
};

struct Route {
  std::shared_ptr<ServedModel> model;  // the version that answers
  std::string requested;               // the name the client asked for
  bool fell_back = false;
};

class Router {
 public:
  explicit Router(Metrics& metrics) : metrics_(metrics) {}

  void set_model(const std::string& name, std::vector<WeightedModel> versions, FallbackPolicy policy);
  void remove_model(const std::string& name);
  // ApiError 404 (model_not_found) for a name not served.
  Route route(const std::string& name, const std::string& user);

  std::vector<std::string> model_names() const;
  std::vector<std::shared_ptr<ServedModel>> versions_of(const std::string& name) const;
  std::vector<std::shared_ptr<ServedModel>> all_versions() const;
  bool has_models() const;
  // Engine gauges per version, weights, fallback state (for /metrics).
  std::vector<GaugeSample> gauges() const;

 private:
  struct Entry {
    std::vector<WeightedModel> versions;
    FallbackPolicy policy;
    bool fallback_active = false;
    std::chrono::steady_clock::time_point engaged_at{};
  };
  std::shared_ptr<ServedModel> pick(const Entry& entry, const std::string& user) const;
  // Updates entry's fallback state from its versions' load; true when engaged.
  bool overloaded(const std::string& name, Entry& entry);

  Metrics& metrics_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> models_;
};

// u in [0, 1) from a user id: FNV-1a, so that it is the same on every replica and restart.
double user_draw(const std::string& user);

}  // namespace dsk::serve
