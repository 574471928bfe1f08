#include "serve/generation.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "core/error.hpp"
#include "serve/api_error.hpp"
#include "serve/chat_prompt.hpp"
#include "serve/text_stream.hpp"

namespace dsk::serve {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

std::vector<int32_t> encode_prompt(const std::string& text, const ServedModel& model, bool add_special_tokens) {
  tokenizer::EncodeOptions options;
  options.add_special_tokens = add_special_tokens;
  std::vector<int32_t> ids;
  try {
    for (uint32_t id : model.tokenizer.encode(text, options)) ids.push_back(static_cast<int32_t>(id));
  } catch (const DataError& error) {
    throw bad_parameter("prompt", error.what());
  }
  if (ids.empty()) {
    // As dsk-train sample: an empty prompt starts a document, after BOS or the EOS that ends one.
    auto start = model.tokenizer.bos_id() ? model.tokenizer.bos_id() : model.tokenizer.eos_id();
    if (!start) throw bad_parameter("prompt", "The prompt is empty and the model's tokenizer has neither BOS nor EOS to start from");
    ids.push_back(static_cast<int32_t>(*start));
  }
  return ids;
}

}  // namespace

struct Generation::EventQueue {
  struct Item {
    int choice;
    TokenEvent event;
    Clock::time_point at;
  };
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<Item> items;
};

struct Generation::Choice {
  Choice(const tokenizer::Tokenizer& tokenizer, std::vector<std::string> stop) : detokenizer(tokenizer), stop(std::move(stop)) {}
  uint64_t engine_id = 0;
  bool submitted = false;
  bool done = false;
  bool first_sent = false;
  Detokenizer detokenizer;
  StopStringFilter stop;
  std::string text;
  std::string finish_reason;
  std::vector<TokenLogprob> logprobs;
  int tokens = 0;
  Clock::time_point last_token{};
};

PreparedPrompts prepare_prompts(const ApiRequest& request, const ServedModel& model) {
  PreparedPrompts prepared;
  if (request.kind == ApiKind::chat) {
    // The template writes BOS itself, as transformers' apply_chat_template(tokenize=True) relies on.
    prepared.prompts.push_back(encode_prompt(render_chat(request.messages, model.chat_template), model, false));
  } else {
    for (const PromptInput& prompt : request.prompts)
      prepared.prompts.push_back(prompt.text ? encode_prompt(*prompt.text, model, model.add_bos) : prompt.tokens);
  }
  const int context = model.engine->context_length();
  const int vocab = std::min<int>(model.engine->vocab_size(), static_cast<int>(model.tokenizer.vocab_size()));
  int longest = 0;
  for (const auto& prompt : prepared.prompts) {
    for (int32_t id : prompt)
      if (id >= vocab) throw bad_parameter("prompt", str("Token id ", id, " is outside the model's vocabulary of ", vocab));
    longest = std::max<int>(longest, static_cast<int>(prompt.size()));
  }
  const char* prompt_field = request.kind == ApiKind::chat ? "messages" : "prompt";
  if (longest >= context)
    throw bad_parameter(prompt_field, str("This model's maximum context length is ", context, " tokens. However, your prompt has ",
                                          longest, " tokens, which leaves no room for a completion"));
  if (request.max_tokens && longest + *request.max_tokens > context)
    throw bad_parameter("max_tokens", str("This model's maximum context length is ", context, " tokens. However, you requested ",
                                          longest + *request.max_tokens, " tokens (", longest, " in the prompt, ",
                                          *request.max_tokens, " for the completion)"));
  prepared.max_tokens = request.max_tokens ? *request.max_tokens : context - longest;
  return prepared;
}

Generation::Generation(const ApiRequest& request, PreparedPrompts prompts, std::shared_ptr<ServedModel> model, Metrics& metrics,
                       int retry_after_seconds)
    : request_(request), model_(std::move(model)), metrics_(metrics),
      labels_{{"model", model_->name}, {"version", model_->version}}, retry_after_seconds_(retry_after_seconds),
      queue_(std::make_shared<EventQueue>()) {
  ++model_->in_flight;
  try {
    submit_all(prompts);
  } catch (...) {
    cancel();
    --model_->in_flight;
    throw;
  }
}

Generation::~Generation() {
  cancel();
  --model_->in_flight;
}

void Generation::submit_all(const PreparedPrompts& prompts) {
  int index = 0;
  for (const auto& prompt : prompts.prompts) {
    prompt_tokens_ += static_cast<int>(prompt.size());
    for (int sample = 0; sample < request_.n; ++sample, ++index) {
      choices_.push_back(std::make_unique<Choice>(model_->tokenizer, request_.stop));
      GenerationRequest engine_request;
      engine_request.prompt = prompt;
      engine_request.arrival = arrival_;
      SamplingParams& sampling = engine_request.sampling;
      sampling.max_tokens = prompts.max_tokens;
      sampling.temperature = request_.temperature;
      sampling.top_p = request_.top_p;
      sampling.top_k = request_.top_k;
      // n samples of one seeded request differ from each other and are each reproducible.
      if (request_.seed) sampling.seed = *request_.seed + static_cast<uint64_t>(sample);
      sampling.logprobs = request_.logprobs;
      sampling.top_logprobs = request_.top_logprobs;
      sampling.stop_token_ids = model_->stop_token_ids;
      engine_request.on_event = [queue = queue_, index](const TokenEvent& event) {
        {
          std::lock_guard lock(queue->mutex);
          queue->items.push_back({index, event, Clock::now()});
        }
        queue->ready.notify_one();
      };
      try {
        choices_.back()->engine_id = model_->engine->submit(std::move(engine_request));
      } catch (const QueueFull&) {
        ApiError error(503, "server_error", str("The model '", model_->name, "' is overloaded (its queue is full); retry later"),
                       std::nullopt, "queue_full");
        error.retry_after_seconds = retry_after_seconds_;
        throw error;
      } catch (const UsageError& error) {
        throw bad_parameter(request_.kind == ApiKind::chat ? "messages" : "prompt", error.what());
      }
      choices_.back()->submitted = true;
      ++unfinished_;
    }
  }
  metrics_.add("dsk_serve_prompt_tokens_total", labels_, prompt_tokens_);
}

void Generation::cancel() {
  for (auto& choice : choices_)
    if (choice->submitted && !choice->done) {
      model_->engine->cancel(choice->engine_id);
      choice->done = true;
      --unfinished_;
    }
}

TokenLogprob Generation::logprob_entry(const TokenEvent& event) const {
  auto text_of = [&](int32_t id) {
    // A padding id past the tokenizer (a model vocabulary rounded up) has no text.
    if (id < 0 || static_cast<size_t>(id) >= model_->tokenizer.vocab_size()) return std::string();
    return model_->tokenizer.decode({static_cast<uint32_t>(id)});
  };
  TokenLogprob entry{text_of(event.token), event.logprob, {}};
  for (const auto& [id, logprob] : event.top_logprobs) entry.top.emplace_back(text_of(id), logprob);
  return entry;
}

void Generation::finish(Choice& choice, const std::string& reason, ChoiceDelta& delta) {
  std::string rest = choice.stop.push(choice.detokenizer.flush());
  rest += choice.stop.flush();
  choice.text += rest;
  delta.text += rest;
  choice.done = true;
  choice.finish_reason = reason;
  delta.finish_reason = reason;
  --unfinished_;
  metrics_.add("dsk_serve_generation_tokens_total", labels_, choice.tokens);
  if (choice.tokens > 0) metrics_.observe("dsk_serve_request_duration_seconds", labels_, seconds_between(arrival_, choice.last_token));
}

void Generation::handle(int index, const TokenEvent& event, Clock::time_point at, ChoiceDelta& delta) {
  Choice& choice = *choices_[index];
  if (choice.done) return;  // events after a stop string or a cancel
  if (event.token >= 0) {
    if (choice.tokens == 0) {
      double ttft = seconds_between(arrival_, at);
      metrics_.observe("dsk_serve_time_to_first_token_seconds", labels_, ttft);
      model_->time_to_first_token.observe(ttft);
    } else {
      metrics_.observe("dsk_serve_inter_token_latency_seconds", labels_, seconds_between(choice.last_token, at));
    }
    ++choice.tokens;
    choice.last_token = at;
    model_->generated_tokens.add(1);
    if (request_.logprobs) {
      choice.logprobs.push_back(logprob_entry(event));
      delta.logprobs.push_back(choice.logprobs.back());
    }
    bool is_stop_token = std::binary_search(model_->stop_token_ids.begin(), model_->stop_token_ids.end(), event.token);
    if (!is_stop_token) {
      std::string safe = choice.stop.push(choice.detokenizer.push(event.token));
      choice.text += safe;
      delta.text += safe;
    }
    if (choice.stop.stopped()) {
      model_->engine->cancel(choice.engine_id);
      finish(choice, "stop", delta);
      return;
    }
  }
  switch (event.finish) {
    case FinishReason::none: return;
    case FinishReason::length: return finish(choice, "length", delta);
    case FinishReason::stop_token: return finish(choice, "stop", delta);
    case FinishReason::cancelled:
      error_ = "The request was cancelled by the server (it is shutting down)";
      return finish(choice, "abort", delta);
    case FinishReason::error:
      error_ = event.error.empty() ? "The engine failed on this request" : event.error;
      return finish(choice, "error", delta);
  }
}

std::vector<ChoiceDelta> Generation::poll(std::chrono::milliseconds wait) {
  std::deque<EventQueue::Item> items;
  {
    std::unique_lock lock(queue_->mutex);
    queue_->ready.wait_for(lock, wait, [&] { return !queue_->items.empty() || finished(); });
    items.swap(queue_->items);
  }
  std::vector<ChoiceDelta> deltas(choices_.size());
  std::vector<bool> touched(choices_.size(), false);
  for (const auto& item : items) {
    deltas[item.choice].index = item.choice;
    touched[item.choice] = true;
    handle(item.choice, item.event, item.at, deltas[item.choice]);
  }
  std::vector<ChoiceDelta> out;
  for (size_t i = 0; i < deltas.size(); ++i) {
    if (!touched[i]) continue;
    ChoiceDelta& delta = deltas[i];
    if (delta.text.empty() && !delta.finish_reason && delta.logprobs.empty()) continue;
    delta.first = !choices_[i]->first_sent;
    choices_[i]->first_sent = true;
    out.push_back(std::move(delta));
  }
  return out;
}

Usage Generation::usage() const {
  Usage usage{prompt_tokens_, 0};
  for (const auto& choice : choices_) usage.completion_tokens += choice->tokens;
  return usage;
}

std::vector<ChoiceResult> Generation::results() const {
  std::vector<ChoiceResult> results;
  for (size_t i = 0; i < choices_.size(); ++i)
    results.push_back({static_cast<int>(i), choices_[i]->text, choices_[i]->finish_reason, choices_[i]->logprobs});
  return results;
}

}  // namespace dsk::serve
