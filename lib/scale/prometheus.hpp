// The Prometheus text exposition format (version 0.0.4), as dsk-serve's /metrics and every
// Prometheus exporter write it:
//
//   # HELP http_requests_total The total number of HTTP requests.
//   # TYPE http_requests_total counter
//   http_requests_total{method="post",code="200"} 1027 1395066363000
//   rpc_duration_seconds{quantile="0.5"} 4773
//   queue_depth 3
//
// Label values may hold \\, \" and \n escapes; values may be NaN, +Inf, -Inf.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace dsk::scale {

struct PrometheusSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// DataError naming source, line and what was expected on a malformed line.
std::vector<PrometheusSample> parse_prometheus_text(std::string_view text, const std::string& source);

// One value per metric name: the sum over its label sets (NaN samples are skipped).
std::map<std::string, double> sum_by_name(const std::vector<PrometheusSample>& samples);

}  // namespace dsk::scale
