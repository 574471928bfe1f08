// The parts of dsk-scale's loop around the policy: reading the configured metric sources into one
// observation, carrying a decision out, and remembering cooldowns between --once runs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "scale/policy.hpp"

namespace dsk::scale {

struct SourceConfig {
  bool slurm = false;
  std::string partition;
  bool gpu = false;
  std::vector<std::string> prometheus_urls;
  std::string samples_path;
  double samples_max_age = 600;  // seconds; a last sample older than this is a failing source (0: no limit)
};
SourceConfig source_config_from(const Config& config);

// Reads every configured source into an observation made at `now`; any failure throws (the
// caller holds capacity and says why), and so does a samples file whose last row (with a time in
// seconds since the epoch) is older than samples_max_age: a collector that stopped is no
// reason to act. UsageError when no source is configured.
Observation observe(const SourceConfig& sources, double now);

class Actuator {
 public:
  virtual ~Actuator() = default;
  // The capacity as the actuator sees it, when it knows (Kubernetes replicas).
  virtual std::optional<int64_t> current() { return std::nullopt; }
  // Carries a scale-out or scale-in out; dry run (apply false) only says what it would do.
  virtual void act(const Decision& decision, bool apply) = 0;
};
// nullptr for actuator.kind none.
std::unique_ptr<Actuator> make_actuator(const Config& config);

// Cooldown and stabilization memory for --once, kept in a small JSON file.
ControllerState load_state(const std::string& path);
void save_state(const std::string& path, const ControllerState& state);

}  // namespace dsk::scale
