// dsk-serve's /metrics in the Prometheus text format (0.0.4): counters and histograms that the
// request path updates, plus gauges sampled at scrape time (queue depth, batch size, KV blocks)
// from each engine. Names start with dsk_serve_; labels say model and version. dsk-scale's
// Prometheus source reads this (lib/scale/prometheus.hpp), e.g. dsk_serve_queue_depth.
//
// There is no Prometheus client library in Debian for C++; the format is a few lines of text.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace dsk::serve {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct GaugeSample {
  std::string name;  // declared with Metrics::declare_gauge
  Labels labels;
  double value = 0;
};

class Metrics {
 public:
  Metrics();  // declares every dsk_serve_ family (see metrics.cpp)

  void add(const std::string& counter, const Labels& labels, double amount = 1);
  void observe(const std::string& histogram, const Labels& labels, double value);
  // The text of /metrics: the counters, histograms and these gauges, family by family.
  std::string render(const std::vector<GaugeSample>& gauges) const;

  double counter_value(const std::string& counter, const Labels& labels) const;  // tests

 private:
  enum class Kind { counter, gauge, histogram };
  struct Histogram {
    std::vector<uint64_t> counts;  // per bucket (not cumulative)
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    Kind kind;
    std::string help;
    std::vector<double> buckets;
    std::map<std::string, double> values;         // counters, by rendered labels
    std::map<std::string, Histogram> histograms;  // by rendered labels
  };
  void declare(const std::string& name, Kind kind, std::string help, std::vector<double> buckets = {});
  Family& family(const std::string& name);

  mutable std::mutex mutex_;
  std::vector<std::string> order_;
  std::map<std::string, Family> families_;
};

// {model="tiny",version="1.2"} with Prometheus escaping (\\, \", \n); "" for no labels.
std::string render_labels(const Labels& labels);

}  // namespace dsk::serve
