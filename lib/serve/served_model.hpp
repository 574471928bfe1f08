// One model version that answers requests: its engine, its tokenizer, what ends a generation
// (eos ids from tokenizer_config.json and generation_config.json) and its chat template source.
// Shared (shared_ptr) by the router and every request in flight, so that a version taken out of
// rotation is drained, not cut: it lives until its last request ends.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chat/chat_template.hpp"
#include "serve/engine.hpp"
#include "tokenizer/tokenizer.hpp"

namespace dsk::serve {

// Engine::create in the tool; a scripted engine in tests.
using EngineFactory = std::function<std::unique_ptr<Engine>(const std::filesystem::path&, const EngineOptions&)>;

// Time to first token over the last few seconds, for fallback decisions: an exponentially
// weighted mean that counts only while requests keep arriving (an idle model has no TTFT).
class RecentLatency {
 public:
  void observe(double seconds);
  // The mean of recent observations, or 0 when none came within `window`.
  double value(std::chrono::steady_clock::duration window) const;

 private:
  mutable std::mutex mutex_;
  double mean_ = 0;
  bool any_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// Events per second over the last few seconds (generated tokens, for dsk_serve_tokens_per_second):
// counts in one-second buckets.
class RecentRate {
 public:
  void add(uint64_t count);
  double per_second(int window_seconds = 10) const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<int64_t, uint64_t>> buckets_;  // (second, count), oldest first
};

struct ServedModel {
  ServedModel(std::string name, std::string version, std::filesystem::path directory, tokenizer::Tokenizer tokenizer)
      : name(std::move(name)), version(std::move(version)), directory(std::move(directory)), tokenizer(std::move(tokenizer)) {}

  std::string name;     // the model name clients send
  std::string version;  // the registry version, or "local" for a directory
  std::filesystem::path directory;
  std::unique_ptr<Engine> engine;
  tokenizer::Tokenizer tokenizer;
  std::optional<chat::ChatTemplate> chat_template;              // none: /v1/chat/completions answers 400
  std::vector<int32_t> stop_token_ids;                          // eos ids
  bool add_bos = false;
  RecentLatency time_to_first_token;
  RecentRate generated_tokens;
  std::atomic<int> in_flight{0};  // API requests holding it

  std::string fingerprint() const { return name + "@" + version; }
};

// Loads tokenizer.json (+ tokenizer_config.json, generation_config.json) from directory and
// starts its engine. UsageError / DataError naming the file on anything missing or malformed.
std::shared_ptr<ServedModel> load_served_model(const std::string& name, const std::string& version,
                                               const std::filesystem::path& directory, const EngineFactory& factory,
                                               const EngineOptions& options);

}  // namespace dsk::serve
