// One look at the fleet: the time, the capacity that is up now, and named metric values.
//
// Metric names are the ones a policy refers to: gpu_util and gpu_memory (percent, averaged over
// GPUs), pending and running (jobs in the Slurm queue, or nodes they ask for), any Prometheus
// metric by its own name (summed over its label sets), and any column of a samples file.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace dsk::scale {

struct Observation {
  double time = 0;                 // seconds since the epoch (or since a trace's start)
  std::optional<int64_t> current;  // capacity up now (nodes, replicas); unknown until a source says
  std::map<std::string, double> metrics;
  std::string phase;  // training phase label ("warmup", "steady"), empty when none

  std::optional<double> metric(const std::string& name) const {
    auto found = metrics.find(name);
    if (found == metrics.end()) return std::nullopt;
    return found->second;
  }
};

}  // namespace dsk::scale
