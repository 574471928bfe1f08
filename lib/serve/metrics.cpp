#include "serve/metrics.hpp"

#include <cmath>
#include <sstream>

#include "core/error.hpp"

namespace dsk::serve {
namespace {

// Seconds; from a few milliseconds (a decode step on a GPU) to a minute (a long queue).
const std::vector<double> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,      2.5,   5,    10,    20,   40,  80};

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  std::ostringstream out;
  out.precision(12);
  out << value;
  return out.str();
}

// Labels text plus one more label (le="0.5") inside the braces.
std::string with_label(const std::string& labels, const std::string& name, const std::string& value) {
  std::string extra = name + "=\"" + value + "\"";
  if (labels.empty()) return "{" + extra + "}";
  return labels.substr(0, labels.size() - 1) + "," + extra + "}";
}

}  // namespace

std::string render_labels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + escape_label(labels[i].second) + "\"";
  }
  return out + "}";
}

Metrics::Metrics() {
  declare("dsk_serve_requests_total", Kind::counter, "API requests answered, by endpoint and HTTP status.");
  declare("dsk_serve_prompt_tokens_total", Kind::counter, "Prompt tokens of admitted requests.");
  declare("dsk_serve_generation_tokens_total", Kind::counter, "Tokens generated.");
  declare("dsk_serve_fallbacks_total", Kind::counter, "Requests sent to a model's fallback because the model was overloaded.");
  declare("dsk_serve_fallback_switches_total", Kind::counter, "Times a model's fallback engaged.");
  declare("dsk_serve_client_disconnects_total", Kind::counter, "Streams whose client went away (their requests were cancelled).");
  declare("dsk_serve_time_to_first_token_seconds", Kind::histogram, "From arrival to the first generated token.", kLatencyBuckets);
  declare("dsk_serve_inter_token_latency_seconds", Kind::histogram, "Between consecutive tokens of one request.", kLatencyBuckets);
  declare("dsk_serve_request_duration_seconds", Kind::histogram, "From arrival to the last token.", kLatencyBuckets);
  declare("dsk_serve_queue_depth", Kind::gauge, "Requests waiting for a slot in the running batch.");
  declare("dsk_serve_running_requests", Kind::gauge, "Requests in the running batch.");
  declare("dsk_serve_batch_size", Kind::gauge, "Sequences in the last engine step.");
  declare("dsk_serve_kv_blocks_used", Kind::gauge, "KV cache blocks in use.");
  declare("dsk_serve_kv_blocks_total", Kind::gauge, "KV cache blocks in all.");
  declare("dsk_serve_oldest_wait_seconds", Kind::gauge, "Queue wait of the oldest waiting request.");
  declare("dsk_serve_preemptions", Kind::gauge, "Sequences preempted (recomputed) since the version was loaded.");
  declare("dsk_serve_version_weight", Kind::gauge, "Traffic weight of each version of a model (A/B).");
  declare("dsk_serve_fallback_active", Kind::gauge, "1 while a model's new requests go to its fallback.");
  declare("dsk_serve_requests_in_flight", Kind::gauge, "API requests being answered.");
  declare("dsk_serve_tokens_per_second", Kind::gauge, "Tokens generated per second over the last 10 seconds.");
}

void Metrics::declare(const std::string& name, Kind kind, std::string help, std::vector<double> buckets) {
  order_.push_back(name);
  families_[name] = Family{kind, std::move(help), std::move(buckets), {}, {}};
}

Metrics::Family& Metrics::family(const std::string& name) {
  auto it = families_.find(name);
  if (it == families_.end()) throw InternalError(str("metric ", name, " is not declared"));
  return it->second;
}

void Metrics::add(const std::string& counter, const Labels& labels, double amount) {
  std::lock_guard lock(mutex_);
  family(counter).values[render_labels(labels)] += amount;
}

void Metrics::observe(const std::string& histogram, const Labels& labels, double value) {
  std::lock_guard lock(mutex_);
  Family& f = family(histogram);
  Histogram& h = f.histograms[render_labels(labels)];
  if (h.counts.empty()) h.counts.assign(f.buckets.size(), 0);
  for (size_t i = 0; i < f.buckets.size(); ++i)
    if (value <= f.buckets[i]) {
      ++h.counts[i];
      break;
    }
  ++h.count;
  h.sum += value;
}

double Metrics::counter_value(const std::string& counter, const Labels& labels) const {
  std::lock_guard lock(mutex_);
  const Family& f = families_.at(counter);
  auto it = f.values.find(render_labels(labels));
  return it == f.values.end() ? 0 : it->second;
}

std::string Metrics::render(const std::vector<GaugeSample>& gauges) const {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  static const char* kind_names[] = {"counter", "gauge", "histogram"};
  for (const std::string& name : order_) {
    const Family& f = families_.at(name);
    out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << kind_names[static_cast<int>(f.kind)] << "\n";
    for (const auto& [labels, value] : f.values) out << name << labels << " " << number(value) << "\n";
    for (const auto& [labels, h] : f.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < f.buckets.size(); ++i) {
        cumulative += h.counts[i];
        out << name << "_bucket" << with_label(labels, "le", number(f.buckets[i])) << " " << cumulative << "\n";
      }
      out << name << "_bucket" << with_label(labels, "le", "+Inf") << " " << h.count << "\n";
      out << name << "_sum" << labels << " " << number(h.sum) << "\n";
      out << name << "_count" << labels << " " << h.count << "\n";
    }
    for (const GaugeSample& gauge : gauges)
      if (gauge.name == name) out << name << render_labels(gauge.labels) << " " << number(gauge.value) << "\n";
  }
  return out.str();
}

}  // namespace dsk::serve
