#include "train/metrics_log.hpp"

#include <nlohmann/json.hpp>

#include <sstream>

#include "core/error.hpp"
#include "core/fs.hpp"

namespace dsk::train {

MetricsLog::MetricsLog(const std::filesystem::path& path) : path_(path), out_(path, std::ios::app) {
  if (!out_) throw ResourceError(path.string() + ": cannot open for appending");
}

void MetricsLog::append(const StepMetrics& metrics) {
  nlohmann::json line{{"step", metrics.step},       {"loss", metrics.loss},
                      {"lr", metrics.lr},           {"grad_norm", metrics.grad_norm},
                      {"tokens_per_s", metrics.tokens_per_s}, {"elapsed_s", metrics.elapsed_s},
                      {"skipped_steps", metrics.skipped_steps}};
  if (!metrics.expert_load.empty()) line["expert_load"] = metrics.expert_load;
  if (metrics.comm_wait_s) line["comm_wait_s"] = *metrics.comm_wait_s;
  out_ << line.dump() << '\n' << std::flush;
  if (!out_) throw ResourceError(path_.string() + ": write failed (disk full?)");
}

void MetricsLog::truncate_after(std::int64_t step) {
  out_.close();
  std::istringstream lines(std::filesystem::exists(path_) ? read_file(path_) : std::string());
  std::string kept, line;
  bool dropped = false;
  while (std::getline(lines, line)) {
    nlohmann::json parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    // A torn last line (the process was killed while writing it) is dropped too.
    if (parsed.is_discarded() || !parsed.contains("step") || !parsed["step"].is_number_integer() ||
        parsed["step"].get<std::int64_t>() > step) {
      dropped = true;
      continue;
    }
    kept += line + "\n";
  }
  if (dropped) write_file_atomic(path_, kept);
  out_.open(path_, std::ios::app);
  if (!out_) throw ResourceError(path_.string() + ": cannot open for appending");
}

}  // namespace dsk::train
