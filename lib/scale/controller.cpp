#include "scale/controller.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "scale/gpu.hpp"
#include "scale/http_metrics.hpp"
#include "scale/process.hpp"
#include "scale/samples_file.hpp"
#include "scale/slurm.hpp"

namespace dsk::scale {
namespace {

void merge_metrics(Observation& into, const std::map<std::string, double>& metrics) {
  for (const auto& [name, value] : metrics) into.metrics[name] = value;
}

class SlurmActuator : public Actuator {
 public:
  explicit SlurmActuator(std::string partition) : cluster_(std::move(partition)) {}
  void act(const Decision& decision, bool apply) override {
    if (decision.delta() > 0) cluster_.scale_out(decision.delta(), apply);
    if (decision.delta() < 0) cluster_.scale_in(-decision.delta(), apply);
  }

 private:
  SlurmCluster cluster_;
};

class KubernetesActuator : public Actuator {
 public:
  KubernetesActuator(std::string kind, std::string name, std::string name_space)
      : resource_(kind + "/" + name), namespace_(std::move(name_space)) {}

  std::optional<int64_t> current() override {
    std::string replicas = run_checked(with_namespace({"kubectl", "get", resource_, "-o", "jsonpath={.spec.replicas}"}),
                                       "Kubernetes " + resource_);
    try {
      return std::stoll(replicas);
    } catch (const std::exception&) {
      throw RemoteError(str("Kubernetes ", resource_, ": expected a replica count, got '", replicas, "'"));
    }
  }

  void act(const Decision& decision, bool apply) override {
    std::vector<std::string> argv =
        with_namespace({"kubectl", "scale", resource_, str("--replicas=", decision.desired)});
    if (!apply) {
      log_info("dry run: ", join_command(argv), "   (patch: {\"spec\":{\"replicas\":", decision.desired, "}})");
      return;
    }
    log_info(join_command(argv));
    run_checked(argv, "Kubernetes scale");
  }

 private:
  std::vector<std::string> with_namespace(std::vector<std::string> argv) const {
    if (!namespace_.empty()) argv.insert(argv.end(), {"-n", namespace_});
    return argv;
  }
  std::string resource_;
  std::string namespace_;
};

// Any command, given the decision in its environment.
class CommandActuator : public Actuator {
 public:
  explicit CommandActuator(std::string command) : command_(std::move(command)) {}
  void act(const Decision& decision, bool apply) override {
    std::map<std::string, std::string> environment{
        {"DSK_SCALE_ACTION", decision.action},           {"DSK_SCALE_CURRENT", str(decision.current)},
        {"DSK_SCALE_DESIRED", str(decision.desired)},    {"DSK_SCALE_DELTA", str(decision.delta())},
        {"DSK_SCALE_REASON", decision.reason},           {"DSK_SCALE_POOL", decision.pool},
        {"DSK_SCALE_CPUS", decision.cpus ? str(*decision.cpus) : ""}};
    if (!apply) {
      log_info("dry run: would run `", command_, "` with DSK_SCALE_DESIRED=", decision.desired);
      return;
    }
    CommandResult result = run_command({"/bin/sh", "-c", command_}, environment, 600);
    if (!result.errors.empty()) log_info(command_, ": ", result.errors);
    if (result.exit_code != 0) throw RemoteError(str("actuator command `", command_, "` exited ", result.exit_code));
  }

 private:
  std::string command_;
};

}  // namespace

SourceConfig source_config_from(const Config& config) {
  SourceConfig sources;
  sources.slurm = config.get_bool("source.slurm");
  sources.partition = config.get_string("source.partition");
  sources.gpu = config.get_bool("source.gpu");
  sources.prometheus_urls = config.get_strings("source.prometheus");
  sources.samples_path = config.get_string("source.samples");
  sources.samples_max_age = config_duration(config, "source.samples_max_age");
  return sources;
}

Observation observe(const SourceConfig& sources, double now) {
  if (!sources.slurm && !sources.gpu && sources.prometheus_urls.empty() && sources.samples_path.empty())
    throw UsageError("no metric source: set source.slurm, source.gpu, source.prometheus or source.samples");
  Observation observation;
  observation.time = now;
  if (!sources.samples_path.empty()) {
    Observation last = read_samples(sources.samples_path).back();
    // Times below 1e9 are a trace's own clock (seconds from its start): no age to judge.
    double age = now - last.time;
    if (sources.samples_max_age > 0 && last.time >= 1e9 && age > sources.samples_max_age)
      throw DataError(str(sources.samples_path, ": the last sample is ", static_cast<int64_t>(age),
                          "s old, over source.samples_max_age (", static_cast<int64_t>(sources.samples_max_age), "s)"));
    observation = last;
    observation.time = now;
  }
  if (sources.slurm) {
    Observation slurm = SlurmCluster(sources.partition).observe(now);
    merge_metrics(observation, slurm.metrics);
    observation.current = slurm.current;
  }
  if (sources.gpu) merge_metrics(observation, read_gpu_metrics());
  for (const auto& url : sources.prometheus_urls) merge_metrics(observation, read_prometheus_endpoint(url));
  return observation;
}

std::unique_ptr<Actuator> make_actuator(const Config& config) {
  std::string kind = config.get_string("actuator.kind");
  if (kind == "slurm") return std::make_unique<SlurmActuator>(config.get_string("source.partition"));
  if (kind == "kubernetes") {
    std::string name = config.get_string("actuator.kubernetes.name");
    if (name.empty()) throw UsageError(str(config.source(), ": actuator.kubernetes.name is required for actuator.kind kubernetes"));
    return std::make_unique<KubernetesActuator>(config.get_string("actuator.kubernetes.kind"), name,
                                                config.get_string("actuator.kubernetes.namespace"));
  }
  if (kind == "command") {
    std::string command = config.get_string("actuator.command");
    if (command.empty()) throw UsageError(str(config.source(), ": actuator.command is required for actuator.kind command"));
    return std::make_unique<CommandActuator>(command);
  }
  return nullptr;
}

ControllerState load_state(const std::string& path) {
  ControllerState state;
  if (path.empty() || !std::filesystem::exists(path)) return state;
  try {
    nlohmann::json json = nlohmann::json::parse(read_file(path));
    if (json.contains("last_scale_out")) state.last_scale_out = json["last_scale_out"].get<double>();
    if (json.contains("last_scale_in")) state.last_scale_in = json["last_scale_in"].get<double>();
    for (const auto& entry : json.value("recommendations", nlohmann::json::array()))
      state.recommendations.emplace_back(entry.at(0).get<double>(), entry.at(1).get<int64_t>());
  } catch (const nlohmann::json::exception& e) {
    throw DataError(str(path, ": not a dsk-scale state file: ", e.what()));
  }
  return state;
}

void save_state(const std::string& path, const ControllerState& state) {
  if (path.empty()) return;
  nlohmann::json json;
  if (state.last_scale_out) json["last_scale_out"] = *state.last_scale_out;
  if (state.last_scale_in) json["last_scale_in"] = *state.last_scale_in;
  json["recommendations"] = nlohmann::json::array();
  for (const auto& [time, desired] : state.recommendations) json["recommendations"].push_back({time, desired});
  write_file_atomic(path, json.dump() + "\n");
}

}  // namespace dsk::scale
