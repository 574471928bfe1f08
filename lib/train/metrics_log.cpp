#include "train/metrics_log.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"

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
  out_ << line.dump() << '\n' << std::flush;
  if (!out_) throw ResourceError(path_.string() + ": write failed (disk full?)");
}

}  // namespace dsk::train
