// A test double of dsk::serve::Engine for the API layer's tests (it lives only in tests): no
// model; each request "generates" a scripted list of tokens, one per step of its own thread,
// as the real engine's events would arrive (continuous batching over max_batch slots, a bounded
// queue, cancel, drain). What it is asked is recorded so that tests can check the API layer.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "serve/engine.hpp"

namespace dsk::serve::testing {

struct Script {
  std::vector<int32_t> tokens;                       // what every request generates, in order
  std::chrono::milliseconds step{1};                 // one token per running request per step
  int max_batch = 64;
  int max_queue = 1024;
  int context_length = 128;
  int vocab_size = 272;
};

class ScriptedEngine : public Engine {
 public:
  explicit ScriptedEngine(Script script) : script_(std::move(script)), thread_([this] { loop(); }) {}
  ~ScriptedEngine() override {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

  uint64_t submit(GenerationRequest request) override {
    if (request.prompt.empty() || static_cast<int>(request.prompt.size()) >= script_.context_length)
      throw UsageError("prompt length out of range");
    std::lock_guard lock(mutex_);
    if (draining_) throw QueueFull("draining");
    if (static_cast<int>(waiting_.size()) >= script_.max_queue) throw QueueFull("queue full");
    uint64_t id = ++next_id_;
    prompts_seen.push_back(request.prompt);
    sampling_seen.push_back(request.sampling);
    waiting_.push_back({id, std::move(request), 0});
    wake_.notify_all();
    return id;
  }

  void cancel(uint64_t id) override {
    std::lock_guard lock(mutex_);
    cancels.push_back(id);
    cancelled_.push_back(id);
  }

  EngineStats stats() const override {
    std::lock_guard lock(mutex_);
    EngineStats stats;
    stats.running = static_cast<int>(running_.size());
    stats.waiting = static_cast<int>(waiting_.size());
    stats.last_batch_size = static_cast<double>(running_.size());
    if (!waiting_.empty())
      stats.oldest_wait_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - waiting_.front().request.arrival).count();
    stats.kv_blocks_total = 100;
    stats.kv_blocks_used = stats.running;
    return stats;
  }
  int context_length() const override { return script_.context_length; }
  int vocab_size() const override { return script_.vocab_size; }

  void drain(std::chrono::milliseconds grace) override {
    std::unique_lock lock(mutex_);
    draining_ = true;
    idle_.wait_for(lock, grace, [&] { return running_.empty() && waiting_.empty(); });
    for (auto& active : running_) cancelled_.push_back(active.id);
    for (auto& active : waiting_) cancelled_.push_back(active.id);
  }

  // Recorded for the tests (read them after the requests finished).
  std::vector<std::vector<int32_t>> prompts_seen;
  std::vector<SamplingParams> sampling_seen;
  std::vector<uint64_t> cancels;
  std::atomic<int> finished_requests{0};

 private:
  struct Active {
    uint64_t id;
    GenerationRequest request;
    int produced;
  };

  void loop() {
    std::unique_lock lock(mutex_);
    while (!quit_) {
      wake_.wait_for(lock, script_.step, [&] { return quit_; });
      if (quit_) break;
      while (static_cast<int>(running_.size()) < script_.max_batch && !waiting_.empty()) {
        running_.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
      end_cancelled();
      for (auto it = running_.begin(); it != running_.end();) {
        if (step(*it)) {
          ++finished_requests;
          it = running_.erase(it);
        } else {
          ++it;
        }
      }
      if (running_.empty() && waiting_.empty()) idle_.notify_all();
    }
  }

  void end_cancelled() {
    for (uint64_t id : cancelled_) {
      auto ends = [&](std::vector<Active>::iterator it) {
        TokenEvent event;
        event.finish = FinishReason::cancelled;
        it->request.on_event(event);
      };
      auto it = std::find_if(running_.begin(), running_.end(), [&](const Active& a) { return a.id == id; });
      if (it != running_.end()) ends(it), running_.erase(it);
      auto wit = std::find_if(waiting_.begin(), waiting_.end(), [&](const Active& a) { return a.id == id; });
      if (wit != waiting_.end()) {
        TokenEvent event;
        event.finish = FinishReason::cancelled;
        wit->request.on_event(event);
        waiting_.erase(wit);
      }
    }
    cancelled_.clear();
  }

  // Emits the next token; true when the request ended.
  bool step(Active& active) {
    const SamplingParams& sampling = active.request.sampling;
    TokenEvent event;
    event.token = active.produced < static_cast<int>(script_.tokens.size()) ? script_.tokens[active.produced]
                                                                           : sampling.stop_token_ids.at(0);
    ++active.produced;
    if (sampling.logprobs) event.logprob = -0.5f;
    for (int i = 0; i < sampling.top_logprobs; ++i) event.top_logprobs.emplace_back(event.token + i, -0.5f - i);
    bool stop = std::find(sampling.stop_token_ids.begin(), sampling.stop_token_ids.end(), event.token) !=
                sampling.stop_token_ids.end();
    if (stop) event.finish = FinishReason::stop_token;
    else if (active.produced >= sampling.max_tokens) event.finish = FinishReason::length;
    event.prompt_tokens = static_cast<int>(active.request.prompt.size());
    event.completion_tokens = active.produced;
    active.request.on_event(event);
    return event.finish != FinishReason::none;
  }

  Script script_;
  mutable std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<Active> waiting_;
  std::vector<Active> running_;
  std::vector<uint64_t> cancelled_;
  uint64_t next_id_ = 0;
  bool quit_ = false;
  bool draining_ = false;
  std::thread thread_;  // last: starts after the members it uses
};

}  // namespace dsk::serve::testing
