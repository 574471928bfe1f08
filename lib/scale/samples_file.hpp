// Recorded or synthetic samples: JSONL (one object per line) or CSV (a header line, then rows).
//
//   {"time": 0, "gpu_util": 92, "pending": 3, "current": 2}
//   time,gpu_util,pending,current,phase
//
// "time" (seconds) is required and must not go back; "current" is the capacity up at that time;
// "phase" is a training phase label; every other field is a numeric metric.
#pragma once

#include <string>
#include <vector>

#include "scale/observation.hpp"

namespace dsk::scale {

// DataError naming file, line and field for a malformed sample.
std::vector<Observation> read_samples(const std::string& path);
std::vector<Observation> parse_samples(const std::string& text, const std::string& source, bool csv);

}  // namespace dsk::scale
