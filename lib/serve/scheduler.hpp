// The scheduler of dsk-serve's engine (vLLM's Scheduler): which sequences run in the next step
// and how many of their tokens. Pure host logic over a BlockManager (paged_kv.hpp); the engine
// runs the model on the plan and reports back, and the tests drive it with no model at all.
//
// A step has a token budget (max_batch_tokens) and a sequence limit (max_batch). Running
// sequences come first, oldest first: a decode costs one token, an unfinished prompt takes what
// is left of the budget (chunked prefill). Then waiting requests are admitted first come, first
// served while the budget, the sequence limit and the free blocks allow; the first one that does
// not fit stops admission (no overtaking). A running sequence that needs a block when none is
// free preempts the newest running sequence (possibly itself): its blocks are freed and it
// waits again at the head of the queue, to be recomputed with its generated tokens as prompt
// (the paged cache keeps any full blocks it shared, so recomputation often finds them again).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "serve/paged_kv.hpp"

namespace dsk::serve {

struct SchedulerLimits {
  int max_batch = 64;           // sequences in one step
  int max_batch_tokens = 2048;  // tokens in one step
  int max_queue = 1024;         // waiting requests
  int max_length = 0;           // positions of a sequence at most (the context length; 0: no limit)
};

struct ScheduledSequence {
  uint64_t id;
  int start;             // first token of the chunk (= positions already computed)
  int count;             // tokens of the chunk
  bool samples;          // the chunk ends at the sequence's last token: its logits pick the next one
};

struct StepPlan {
  std::vector<ScheduledSequence> sequences;  // decodes first, then prefills, in run order
  std::vector<uint64_t> preempted;           // sent back to the queue during this planning
  std::vector<uint64_t> failed;              // cannot run even alone (the pool is too small for them)
  int tokens = 0;
  bool empty() const { return sequences.empty(); }
};

class Scheduler {
 public:
  Scheduler(const SchedulerLimits& limits, BlockManager& blocks);

  // Queues a request (tokens: its prompt). False when the queue is full.
  bool add(uint64_t id, std::vector<int32_t> prompt,
           std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now());
  StepPlan schedule();
  // After the step ran: the chunk's tokens are computed (their keys/values are in the cache).
  void computed(uint64_t id, int count);
  // The token sampled at the end of a step joins the sequence (it is computed by the next step).
  void append(uint64_t id, int32_t token);
  // Ends a sequence (finished, cancelled, failed) wherever it is, and frees its blocks.
  void finish(uint64_t id);

  bool known(uint64_t id) const { return sequences_.count(id) != 0; }
  const std::vector<int32_t>& tokens(uint64_t id) const;
  int running() const { return int(running_.size()); }
  int waiting() const { return int(waiting_.size()); }
  bool idle() const { return running_.empty() && waiting_.empty(); }
  std::optional<std::chrono::steady_clock::time_point> oldest_arrival() const;
  uint64_t preemptions() const { return preemptions_; }
  // Tokens admitted sequences found in shared blocks (not computed again), since construction.
  uint64_t cached_tokens() const { return cached_tokens_; }
  const SchedulerLimits& limits() const { return limits_; }

 private:
  struct Sequence {
    std::vector<int32_t> tokens;
    int computed = 0;
    std::chrono::steady_clock::time_point arrival;
    bool running = false;
  };

  // Makes room for `positions` positions of running sequence id, preempting the newest running
  // ones as needed. False when id itself was preempted (or fails alone).
  bool reserve(uint64_t id, int positions, StepPlan& plan, int& budget);
  void preempt(uint64_t id);
  // Admits the queue's head: true when it was handled (running, or failed for good).
  bool admit(uint64_t id, int budget, StepPlan& plan);

  SchedulerLimits limits_;
  BlockManager& blocks_;
  std::unordered_map<uint64_t, Sequence> sequences_;
  std::vector<uint64_t> running_;  // admission order: the back is the newest
  std::deque<uint64_t> waiting_;
  uint64_t preemptions_ = 0, cached_tokens_ = 0;
};

}  // namespace dsk::serve
