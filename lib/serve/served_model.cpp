#include "serve/served_model.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/json.hpp"

namespace dsk::serve {
namespace {

// generation_config.json's eos_token_id: an id or a list of ids (Llama 3 lists several).
void add_generation_eos(const std::filesystem::path& file, std::vector<int32_t>& ids) {
  if (!std::filesystem::exists(file)) return;
  nlohmann::json config = parse_json(read_file(file), file.string());
  if (!config.is_object() || !config.contains("eos_token_id")) return;
  const nlohmann::json& eos = config["eos_token_id"];
  auto add = [&](const nlohmann::json& id) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) throw DataError(str(file.string(), ": eos_token_id: expected token ids"));
    ids.push_back(id.get<int32_t>());
  };
  if (eos.is_array()) for (const auto& id : eos) add(id);
  else if (!eos.is_null()) add(eos);
}

}  // namespace

void RecentLatency::observe(double seconds) {
  std::lock_guard lock(mutex_);
  constexpr double kWeight = 0.2;  // about the last five requests
  mean_ = any_ ? (1 - kWeight) * mean_ + kWeight * seconds : seconds;
  any_ = true;
  last_ = std::chrono::steady_clock::now();
}

double RecentLatency::value(std::chrono::steady_clock::duration window) const {
  std::lock_guard lock(mutex_);
  if (!any_ || std::chrono::steady_clock::now() - last_ > window) return 0;
  return mean_;
}

namespace {
int64_t current_second() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

void RecentRate::add(uint64_t count) {
  int64_t now = current_second();
  std::lock_guard lock(mutex_);
  if (buckets_.empty() || buckets_.back().first != now) buckets_.emplace_back(now, 0);
  buckets_.back().second += count;
  while (buckets_.size() > 64) buckets_.erase(buckets_.begin());
}

double RecentRate::per_second(int window_seconds) const {
  // Whole seconds only: the current one is still filling.
  int64_t now = current_second();
  std::lock_guard lock(mutex_);
  uint64_t total = 0;
  for (const auto& [second, count] : buckets_)
    if (second < now && second >= now - window_seconds) total += count;
  return static_cast<double>(total) / window_seconds;
}

std::shared_ptr<ServedModel> load_served_model(const std::string& name, const std::string& version,
                                               const std::filesystem::path& directory, const EngineFactory& factory,
                                               const EngineOptions& options) {
  std::filesystem::path tokenizer_file = directory / "tokenizer.json";
  if (!std::filesystem::exists(tokenizer_file))
    throw UsageError(str("model '", name, "': ", tokenizer_file.string(), " does not exist (dsk-serve needs the tokenizer beside the weights)"));
  auto model = std::make_shared<ServedModel>(name, version, directory, tokenizer::Tokenizer::load(tokenizer_file));
  std::filesystem::path config_file = directory / "tokenizer_config.json";
  bool has_template = std::filesystem::exists(directory / "chat_template.jinja");
  if (std::filesystem::exists(config_file)) {
    nlohmann::json config = parse_json(read_file(config_file), config_file.string());
    has_template |= config.is_object() && config.contains("chat_template") && !config["chat_template"].is_null();
  }
  if (has_template) model->chat_template = chat::ChatTemplate::load(directory);
  if (auto eos = model->tokenizer.eos_id()) model->stop_token_ids.push_back(static_cast<int32_t>(*eos));
  add_generation_eos(directory / "generation_config.json", model->stop_token_ids);
  std::sort(model->stop_token_ids.begin(), model->stop_token_ids.end());
  model->stop_token_ids.erase(std::unique(model->stop_token_ids.begin(), model->stop_token_ids.end()), model->stop_token_ids.end());
  model->add_bos = model->tokenizer.add_bos_by_default();
  model->engine = factory(directory, options);
  return model;
}

}  // namespace dsk::serve
