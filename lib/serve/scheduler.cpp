#include "serve/scheduler.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace dsk::serve {

Scheduler::Scheduler(const SchedulerLimits& limits, BlockManager& blocks) : limits_(limits), blocks_(blocks) {
  if (limits.max_batch <= 0 || limits.max_batch_tokens <= 0 || limits.max_queue < 0)
    throw UsageError(str("scheduler: max_batch ", limits.max_batch, ", max_batch_tokens ", limits.max_batch_tokens,
                         " and max_queue ", limits.max_queue, " must be positive"));
}

bool Scheduler::add(uint64_t id, std::vector<int32_t> prompt, std::chrono::steady_clock::time_point arrival) {
  if (prompt.empty() || (limits_.max_length > 0 && int(prompt.size()) >= limits_.max_length))
    throw InternalError(
        str("scheduler: a prompt of ", prompt.size(), " tokens (the engine checks 1..", limits_.max_length - 1, ")"));
  if (sequences_.count(id)) throw InternalError(str("scheduler: request ", id, " is already known"));
  if (int(waiting_.size()) >= limits_.max_queue) return false;
  Sequence& s = sequences_[id];
  s.tokens = std::move(prompt);
  s.arrival = arrival;
  waiting_.push_back(id);
  return true;
}

const std::vector<int32_t>& Scheduler::tokens(uint64_t id) const {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) throw InternalError(str("scheduler: no request ", id));
  return it->second.tokens;
}

std::optional<std::chrono::steady_clock::time_point> Scheduler::oldest_arrival() const {
  std::optional<std::chrono::steady_clock::time_point> oldest;
  for (uint64_t id : waiting_) {
    const auto arrival = sequences_.at(id).arrival;
    if (!oldest || arrival < *oldest) oldest = arrival;
  }
  return oldest;
}

void Scheduler::preempt(uint64_t id) {
  Sequence& s = sequences_.at(id);
  blocks_.close(id);
  s.computed = 0;
  s.running = false;
  running_.erase(std::find(running_.begin(), running_.end(), id));
  waiting_.push_front(id);
  preemptions_++;
}

bool Scheduler::reserve(uint64_t id, int positions, StepPlan& plan, int& budget) {
  while (!blocks_.can_grow(id, positions)) {
    const uint64_t victim = running_.back();
    if (victim == id && running_.size() == 1) {  // alone and still too big: the pool cannot hold it
      plan.failed.push_back(id);
      finish(id);
      return false;
    }
    // A victim already planned for this step gives its tokens back.
    auto planned = std::find_if(plan.sequences.begin(), plan.sequences.end(),
                                [&](const ScheduledSequence& s) { return s.id == victim; });
    if (planned != plan.sequences.end()) {
      budget += planned->count;
      plan.tokens -= planned->count;
      plan.sequences.erase(planned);
    }
    preempt(victim);
    plan.preempted.push_back(victim);
    if (victim == id) return false;
  }
  blocks_.grow(id, positions);
  return true;
}

bool Scheduler::admit(uint64_t id, int budget, StepPlan& plan) {
  Sequence& s = sequences_.at(id);
  s.computed = blocks_.open(id, s.tokens);
  const int count = std::min(int(s.tokens.size()) - s.computed, budget);
  if (!blocks_.can_grow(id, s.computed + count)) {
    blocks_.close(id);
    s.computed = 0;
    if (running_.empty()) {  // nothing will ever free more blocks for it
      waiting_.pop_front();
      plan.failed.push_back(id);
      finish(id);
      return true;
    }
    return false;
  }
  blocks_.grow(id, s.computed + count);
  cached_tokens_ += uint64_t(s.computed);
  waiting_.pop_front();
  running_.push_back(id);
  s.running = true;
  plan.sequences.push_back({id, s.computed, count, s.computed + count == int(s.tokens.size())});
  plan.tokens += count;
  return true;
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int budget = limits_.max_batch_tokens;
  for (const bool decodes : {true, false}) {
    const std::vector<uint64_t> order = running_;  // preemption changes running_ as we go
    for (uint64_t id : order) {
      if (budget == 0) break;
      auto it = sequences_.find(id);
      if (it == sequences_.end() || !it->second.running) continue;
      Sequence& s = it->second;
      const int remaining = int(s.tokens.size()) - s.computed;
      if ((remaining == 1) != decodes || remaining <= 0) continue;
      const int count = std::min(remaining, budget);
      if (!reserve(id, s.computed + count, plan, budget)) continue;
      plan.sequences.push_back({id, s.computed, count, s.computed + count == int(s.tokens.size())});
      plan.tokens += count;
      budget -= count;
    }
  }
  // No admission in a step that had to preempt: the pool is short already.
  while (plan.preempted.empty() && budget > 0 && !waiting_.empty() && int(running_.size()) < limits_.max_batch) {
    const uint64_t id = waiting_.front();
    const size_t before = plan.sequences.size();
    if (!admit(id, budget, plan)) break;
    if (plan.sequences.size() > before) budget -= plan.sequences.back().count;
  }
  return plan;
}

void Scheduler::computed(uint64_t id, int count) {
  Sequence& s = sequences_.at(id);
  s.computed += count;
  blocks_.filled(id, s.tokens, s.computed);
}

void Scheduler::append(uint64_t id, int32_t token) { sequences_.at(id).tokens.push_back(token); }

void Scheduler::finish(uint64_t id) {
  auto it = sequences_.find(id);
  if (it == sequences_.end()) return;
  blocks_.close(id);
  running_.erase(std::remove(running_.begin(), running_.end(), id), running_.end());
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), id), waiting_.end());
  sequences_.erase(it);
}

}  // namespace dsk::serve
