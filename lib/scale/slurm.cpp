#include "scale/slurm.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <chrono>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "core/log.hpp"
#include "scale/process.hpp"

namespace dsk::scale {

constexpr const char* kDrainReason = "dsk-scale: scale in";

std::vector<SlurmNode> parse_sinfo_nodes(const std::string& text) {
  std::vector<SlurmNode> nodes;
  std::set<std::string> seen;
  std::istringstream lines(text);
  std::string line;
  int line_number = 0;
  while (std::getline(lines, line)) {
    ++line_number;
    std::istringstream fields(line);
    std::string name, state;
    if (!(fields >> name)) continue;
    if (!(fields >> state)) throw RemoteError(str("sinfo line ", line_number, ": expected 'NODE STATE', got '", line, "'"));
    if (!seen.insert(name).second) continue;
    SlurmNode node{name, "", ""};
    size_t end = state.size();
    while (end > 0 && !std::isalnum(static_cast<unsigned char>(state[end - 1])) && state[end - 1] != '_') --end;
    node.state = state.substr(0, end);
    node.flags = state.substr(end);
    std::transform(node.state.begin(), node.state.end(), node.state.begin(), [](unsigned char c) { return std::tolower(c); });
    nodes.push_back(node);
  }
  return nodes;
}

Observation slurm_observation(const std::vector<SlurmNode>& nodes, const std::string& squeue_text, double now) {
  Observation observation;
  observation.time = now;
  int64_t up = 0, busy = 0;
  for (const auto& node : nodes) {
    if (!node.up()) continue;
    ++up;
    if (node.busy()) ++busy;
  }
  double pending = 0, running = 0;
  std::istringstream lines(squeue_text);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string state;
    double node_count = 0;
    if (!(fields >> state)) continue;
    if (!(fields >> node_count)) throw RemoteError(str("squeue: expected 'STATE NODES', got '", line, "'"));
    if (state == "PENDING") pending += node_count;
    if (state == "RUNNING" || state == "CONFIGURING" || state == "COMPLETING") running += node_count;
  }
  observation.current = up;
  observation.metrics["node_util"] = up == 0 ? (pending > 0 ? 100.0 : 0.0) : 100.0 * static_cast<double>(busy) / up;
  observation.metrics["pending"] = pending;
  observation.metrics["running"] = running;
  return observation;
}

std::vector<SlurmNode> SlurmCluster::nodes() const {
  std::vector<std::string> argv{"sinfo", "-h", "-N", "-o", "%N %T"};
  if (!partition_.empty()) argv.insert(argv.end(), {"-p", partition_});
  return parse_sinfo_nodes(run_checked(argv, "Slurm node states"));
}

Observation SlurmCluster::observe(double now) const {
  std::vector<SlurmNode> node_list = nodes();
  if (node_list.empty()) throw RemoteError(str("Slurm: sinfo lists no nodes", partition_.empty() ? "" : " in partition " + partition_));
  std::vector<std::string> argv{"squeue", "-h", "-o", "%T %D"};
  if (!partition_.empty()) argv.insert(argv.end(), {"-p", partition_});
  return slurm_observation(node_list, run_checked(argv, "Slurm queue"), now);
}

void SlurmCluster::scontrol_update(const std::vector<std::string>& nodes, const std::vector<std::string>& settings,
                                   bool apply) const {
  std::string list;
  for (const auto& node : nodes) list += (list.empty() ? "" : ",") + node;
  std::vector<std::string> argv{"scontrol", "update", "nodename=" + list};
  argv.insert(argv.end(), settings.begin(), settings.end());
  if (!apply) {
    log_info("dry run: ", join_command(argv));
    return;
  }
  log_info(join_command(argv));
  run_checked(argv, "Slurm update");
}

std::vector<std::string> SlurmCluster::scale_out(int64_t count, bool apply) const {
  std::vector<std::string> chosen, drained;
  for (const auto& node : nodes()) {
    if (static_cast<int64_t>(chosen.size()) == count) break;
    if (node.flags.find('~') == std::string::npos) continue;  // only fully powered-down nodes
    chosen.push_back(node.name);
    if (node.state == "drained" || node.state == "draining") drained.push_back(node.name);
  }
  if (chosen.empty()) {
    log_warn("Slurm: no powered-down node to power up");
    return chosen;
  }
  scontrol_update(chosen, {"state=POWER_UP"}, apply);
  if (!drained.empty()) scontrol_update(drained, {"state=RESUME"}, apply);
  return chosen;
}

bool SlurmCluster::wait_powered_down(const std::vector<std::string>& names) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(power_down_wait_seconds_);
  while (true) {
    size_t down = 0;
    for (const auto& node : nodes())
      if (std::find(names.begin(), names.end(), node.name) != names.end() && node.flags.find('~') != std::string::npos) ++down;
    if (down == names.size()) return true;
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  log_warn("Slurm: nodes still powering down after ", power_down_wait_seconds_,
           "s; Slurm may wake them for queued jobs until they are drained");
  return false;
}

std::vector<std::string> SlurmCluster::scale_in(int64_t count, bool apply) const {
  std::vector<SlurmNode> node_list = nodes();
  std::vector<std::string> chosen;
  for (auto node = node_list.rbegin(); node != node_list.rend(); ++node) {  // the last nodes first
    if (static_cast<int64_t>(chosen.size()) == count) break;
    if (node->idle()) chosen.push_back(node->name);
  }
  if (static_cast<int64_t>(chosen.size()) < count)
    log_warn("Slurm: only ", chosen.size(), " idle node(s) to power down of ", count, " wanted");
  if (chosen.empty()) return chosen;
  // Drained first, so that no job lands on a node between the two updates. Slurm clears the
  // drain when the power-down completes, so it is set again once the nodes are down.
  scontrol_update(chosen, {"state=DRAIN", "reason=" + std::string(kDrainReason)}, apply);
  scontrol_update(chosen, {"state=POWER_DOWN"}, apply);
  if (apply && wait_powered_down(chosen)) scontrol_update(chosen, {"state=DRAIN", "reason=" + std::string(kDrainReason)}, apply);
  return chosen;
}

}  // namespace dsk::scale
