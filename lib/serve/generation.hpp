// One API request in flight: its prompts as token ids, one engine request per choice (prompts x
// n), and the engine's token events turned into text deltas on the connection's thread.
//
// The engine calls back on its own thread and must not block, so each callback only appends the
// event to a queue shared with this object (a shared_ptr the callback owns: an event that
// arrives after the request was abandoned finds the queue, not freed memory). poll() takes the
// events on the HTTP thread and does the work there: detokenizing, stop strings, logprobs,
// metrics. A stop string ends its choice at once: the engine request is cancelled.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "serve/metrics.hpp"
#include "serve/openai_request.hpp"
#include "serve/openai_response.hpp"
#include "serve/served_model.hpp"

namespace dsk::serve {

// Token ids of each prompt and the max_tokens every choice gets, checked against the model:
// ApiError(400) for a prompt that leaves no room in the context, max_tokens beyond it, or an id
// outside the vocabulary.
struct PreparedPrompts {
  std::vector<std::vector<int32_t>> prompts;
  int max_tokens = 0;
};
PreparedPrompts prepare_prompts(const ApiRequest& request, const ServedModel& model);

class Generation {
 public:
  // Submits every choice. ApiError 503 (queue full, with Retry-After), 400 (the engine refused
  // the prompt). Nothing stays submitted when it throws.
  Generation(const ApiRequest& request, PreparedPrompts prompts, std::shared_ptr<ServedModel> model, Metrics& metrics,
             int retry_after_seconds);
  ~Generation();  // cancels what still runs
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Waits up to `wait` for token events and returns the deltas they make (text safe to send:
  // whole characters, no stop string), at most one per choice, in choice order.
  std::vector<ChoiceDelta> poll(std::chrono::milliseconds wait);
  bool finished() const { return unfinished_ == 0; }
  void cancel();  // the client went away

  Usage usage() const;
  std::vector<ChoiceResult> results() const;           // the whole texts (non-streaming)
  const std::optional<std::string>& error() const { return error_; }  // an engine error, once finished
  const ServedModel& model() const { return *model_; }

 private:
  struct Choice;
  struct EventQueue;
  void submit_all(const PreparedPrompts& prompts);
  void handle(int index, const TokenEvent& event, std::chrono::steady_clock::time_point at, ChoiceDelta& delta);
  void finish(Choice& choice, const std::string& reason, ChoiceDelta& delta);
  TokenLogprob logprob_entry(const TokenEvent& event) const;

  ApiRequest request_;
  std::shared_ptr<ServedModel> model_;
  Metrics& metrics_;
  Labels labels_;
  int retry_after_seconds_;
  std::chrono::steady_clock::time_point arrival_ = std::chrono::steady_clock::now();
  std::shared_ptr<EventQueue> queue_;
  std::vector<std::unique_ptr<Choice>> choices_;
  int unfinished_ = 0;
  int prompt_tokens_ = 0;
  std::optional<std::string> error_;
};

}  // namespace dsk::serve
