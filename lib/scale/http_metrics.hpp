// A Prometheus text endpoint (dsk-serve's /metrics, any exporter) read over HTTP with libcurl.
#pragma once

#include <map>
#include <string>

namespace dsk::scale {

// GETs url and returns each metric's value summed over its label sets. RemoteError when the
// server cannot be reached or answers other than 200; DataError when the body is not the
// Prometheus text format.
std::map<std::string, double> read_prometheus_endpoint(const std::string& url, double timeout_seconds = 10);

}  // namespace dsk::scale
