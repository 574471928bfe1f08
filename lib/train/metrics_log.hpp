// metrics.jsonl of a run: one JSON object a line, appended and flushed as each step is logged,
// so `tail -f` and a crashed run both see every line written so far.
//   {"step":10,"loss":4.21,"lr":0.0003,"grad_norm":1.3,"tokens_per_s":5120,"elapsed_s":12.5,"skipped_steps":0,
//    "expert_load":[[...per expert of layer 1...],...],"comm_wait_s":0.002}
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <vector>

namespace dsk::train {

struct StepMetrics {
  std::int64_t step = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, elapsed_s = 0;
  std::int64_t skipped_steps = 0;
  std::vector<std::vector<double>> expert_load;  // (moe layers, routed experts); empty for dense models
  // Several ranks: seconds per step (mean over the logging interval) spent waiting on
  // collectives, the communication the backward did not hide (dist::Communicator::take_wait_seconds).
  std::optional<double> comm_wait_s;
};

class MetricsLog {
 public:
  // Opens for appending (a resumed run continues the same file). ResourceError when it cannot.
  explicit MetricsLog(const std::filesystem::path& path);
  void append(const StepMetrics& metrics);
  // Drops the lines of steps after `step` (logged by a run that was killed before its next
  // checkpoint), so that a resumed run does not log those steps twice. The file is rewritten
  // under a temporary name.
  void truncate_after(std::int64_t step);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace dsk::train
