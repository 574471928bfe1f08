// The scheduler's decisions (serve/scheduler.hpp) with no model: a fake runner marks each
// planned chunk computed and appends a token to sequences that sample.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>

#include "core/error.hpp"
#include "serve/scheduler.hpp"

using namespace dsk::serve;

namespace {

std::vector<int32_t> prompt(int length, int32_t first = 1) {
  std::vector<int32_t> v;
  for (int i = 0; i < length; i++) v.push_back(first + i);
  return v;
}

// What the engine does after a step: chunks computed, a token for each sequence that sampled.
void run(Scheduler& s, const StepPlan& plan) {
  for (const ScheduledSequence& q : plan.sequences) {
    s.computed(q.id, q.count);
    if (q.samples) s.append(q.id, 7);
  }
}

const ScheduledSequence* find(const StepPlan& plan, uint64_t id) {
  auto it = std::find_if(plan.sequences.begin(), plan.sequences.end(), [&](const auto& q) { return q.id == id; });
  return it == plan.sequences.end() ? nullptr : &*it;
}

}  // namespace

TEST_CASE("prefills are chunked by the token budget; decodes go first") {
  BlockManager blocks(64, 4, false);
  Scheduler s(SchedulerLimits{8, 10, 100, 256}, blocks);
  REQUIRE(s.add(1, prompt(25)));
  StepPlan p = s.schedule();
  REQUIRE(p.sequences.size() == 1);
  CHECK(p.sequences[0].start == 0);
  CHECK(p.sequences[0].count == 10);
  CHECK_FALSE(p.sequences[0].samples);
  run(s, p);
  REQUIRE(s.add(2, prompt(3)));
  p = s.schedule();  // 1 continues with 10, 2 gets no budget left
  CHECK(p.tokens == 10);
  CHECK(find(p, 2) == nullptr);
  run(s, p);
  p = s.schedule();  // 1's last 5, then 2's whole prompt of 3
  CHECK(find(p, 1)->count == 5);
  CHECK(find(p, 1)->samples);
  CHECK(find(p, 2)->count == 3);
  CHECK(find(p, 2)->samples);
  run(s, p);
  p = s.schedule();  // two decodes, oldest first
  REQUIRE(p.sequences.size() == 2);
  CHECK(p.sequences[0].id == 1);
  CHECK(p.sequences[0].count == 1);
  CHECK(p.sequences[0].start == 25);
  CHECK(p.sequences[1].id == 2);
  // A new long prompt: decodes keep their place, the prompt gets the rest of the budget.
  run(s, p);
  REQUIRE(s.add(3, prompt(30)));
  p = s.schedule();
  CHECK(p.sequences[0].id == 1);
  CHECK(p.sequences[1].id == 2);
  CHECK(find(p, 3)->count == 8);
  CHECK(p.tokens == 10);
}

TEST_CASE("max_batch bounds the running sequences; admission is first come, first served") {
  BlockManager blocks(64, 4, false);
  Scheduler s(SchedulerLimits{2, 100, 100, 256}, blocks);
  for (uint64_t id = 1; id <= 4; id++) REQUIRE(s.add(id, prompt(3)));
  StepPlan p = s.schedule();
  REQUIRE(p.sequences.size() == 2);
  CHECK(p.sequences[0].id == 1);
  CHECK(p.sequences[1].id == 2);
  CHECK(s.running() == 2);
  CHECK(s.waiting() == 2);
  run(s, p);
  s.finish(1);
  p = s.schedule();
  CHECK(find(p, 3) != nullptr);
  CHECK(find(p, 4) == nullptr);
}

TEST_CASE("admission waits for free blocks, and the head of the queue is not overtaken") {
  BlockManager blocks(6, 4, false);
  Scheduler s(SchedulerLimits{8, 100, 100, 256}, blocks);
  REQUIRE(s.add(1, prompt(16)));  // 4 blocks
  REQUIRE(s.add(2, prompt(12)));  // 3 blocks: does not fit beside 1
  REQUIRE(s.add(3, prompt(2)));   // would fit, but waits behind 2
  StepPlan p = s.schedule();
  REQUIRE(p.sequences.size() == 1);
  CHECK(p.sequences[0].id == 1);
  CHECK(s.waiting() == 2);
  run(s, p);
  s.finish(1);
  p = s.schedule();
  CHECK(find(p, 2) != nullptr);
  CHECK(find(p, 3) != nullptr);
}

TEST_CASE("running out of blocks preempts the newest sequence, which is recomputed with its tokens") {
  BlockManager blocks(4, 2, false);
  Scheduler s(SchedulerLimits{8, 100, 100, 256}, blocks);
  REQUIRE(s.add(1, prompt(3)));  // 2 blocks
  REQUIRE(s.add(2, prompt(4)));  // 2 blocks
  StepPlan p = s.schedule();
  REQUIRE(p.sequences.size() == 2);
  run(s, p);  // 1 has 4 tokens (3 computed), 2 has 5 (4 computed): 2 needs a third block
  p = s.schedule();
  // 1's decode fits in its second block; 2's decode needs a block: 2 is the newest, so it goes.
  CHECK(p.preempted == std::vector<uint64_t>{2});
  REQUIRE(p.sequences.size() == 1);
  CHECK(p.sequences[0].id == 1);
  CHECK(s.preemptions() == 1);
  CHECK(s.waiting() == 1);
  run(s, p);
  CHECK(s.tokens(2).size() == 5);  // its generated token stays: recomputed as prompt
  s.finish(1);
  p = s.schedule();
  REQUIRE(p.sequences.size() == 1);
  CHECK(p.sequences[0].id == 2);
  CHECK(p.sequences[0].start == 0);
  CHECK(p.sequences[0].count == 5);
  CHECK(p.sequences[0].samples);
}

TEST_CASE("an older sequence's decode that needs a block preempts the newest, though it comes later in the plan") {
  BlockManager blocks(3, 2, false);
  Scheduler s(SchedulerLimits{8, 100, 100, 256}, blocks);
  REQUIRE(s.add(1, prompt(4)));  // 2 blocks
  StepPlan p = s.schedule();
  run(s, p);                     // 1: 5 tokens, 4 computed: its next decode needs block 3
  REQUIRE(s.add(2, prompt(1)));
  // 1 decodes first (takes the third block): 2 is not admitted while no block is free.
  p = s.schedule();
  CHECK(find(p, 1) != nullptr);
  CHECK(find(p, 2) == nullptr);
  run(s, p);
  s.finish(1);
  p = s.schedule();
  CHECK(find(p, 2) != nullptr);
  run(s, p);
  REQUIRE(s.add(3, prompt(3)));
  p = s.schedule();  // 2 decodes in its block; 3 takes 2 blocks: the pool is full
  CHECK(p.sequences.size() == 2);
  run(s, p);         // 2 has 3 tokens (2 computed) and needs a second block for position 2
  p = s.schedule();
  // 2 (older) decodes first and needs a block: 3 is newest and is preempted, though planned later.
  CHECK(p.preempted == std::vector<uint64_t>{3});
  CHECK(find(p, 3) == nullptr);
  CHECK(find(p, 2) != nullptr);
  CHECK(p.tokens == 1);
}

TEST_CASE("a sequence the whole pool cannot hold fails instead of waiting forever") {
  BlockManager blocks(2, 2, false);
  Scheduler s(SchedulerLimits{8, 100, 100, 256}, blocks);
  REQUIRE(s.add(1, prompt(5)));  // 3 blocks
  StepPlan p = s.schedule();
  CHECK(p.failed == std::vector<uint64_t>{1});
  CHECK(s.idle());
  CHECK_FALSE(s.known(1));
}

TEST_CASE("the queue is bounded, and finish removes a request wherever it is") {
  BlockManager blocks(8, 4, false);
  Scheduler s(SchedulerLimits{1, 100, 2, 256}, blocks);
  CHECK(s.add(1, prompt(2)));
  CHECK(s.add(2, prompt(2)));
  CHECK_FALSE(s.add(3, prompt(2)));
  CHECK_THROWS_AS(s.add(4, prompt(256)), dsk::InternalError);  // the engine never passes these
  CHECK_THROWS_AS(s.add(5, {}), dsk::InternalError);
  run(s, s.schedule());
  CHECK(s.running() == 1);
  CHECK(s.add(3, prompt(2)));
  s.finish(2);  // waiting
  s.finish(1);  // running
  CHECK(blocks.used_blocks() == 0);
  StepPlan p = s.schedule();
  REQUIRE(p.sequences.size() == 1);
  CHECK(p.sequences[0].id == 3);
  CHECK(s.oldest_arrival().has_value() == false);
}

TEST_CASE("with prefix sharing a prompt starts after its cached blocks") {
  BlockManager blocks(16, 4, true);
  Scheduler s(SchedulerLimits{8, 100, 100, 256}, blocks);
  REQUIRE(s.add(1, prompt(10)));
  run(s, s.schedule());
  REQUIRE(s.add(2, prompt(10)));
  StepPlan p = s.schedule();
  const ScheduledSequence* second = find(p, 2);
  REQUIRE(second != nullptr);
  CHECK(second->start == 8);
  CHECK(second->count == 2);
  CHECK(blocks.shared_hits() == 2);
  CHECK(s.cached_tokens() == 8);
}

// Random traffic through a small pool, with prefix sharing: requests arrive with shared or fresh
// prefixes, run, are cancelled or finish at random. After every step: each planned chunk fits its
// sequence, tables cover the planned positions, the step respects its budgets, a block is owned
// twice only when it holds a shared prefix block, and once all is finished no block is in use.
TEST_CASE("random traffic keeps the scheduler's and the block manager's invariants") {
  std::mt19937_64 rng(2024);
  BlockManager blocks(12, 4, true);  // 48 positions for up to 5 sequences of up to 30
  const SchedulerLimits limits{5, 16, 50, 64};
  Scheduler s(limits, blocks);
  std::vector<uint64_t> live;
  std::map<uint64_t, int> generated;
  uint64_t next = 1;
  const std::vector<int32_t> common = prompt(12, 500);
  for (int step = 0; step < 400; step++) {
    if (rng() % 3 == 0 && s.waiting() < 20) {
      std::vector<int32_t> p = rng() % 2 ? common : prompt(int(1 + rng() % 20), int32_t(rng() % 1000));
      p.push_back(int32_t(rng() % 1000));
      if (s.add(next, p)) live.push_back(next);
      next++;
    }
    const StepPlan plan = s.schedule();
    CHECK(plan.tokens <= limits.max_batch_tokens);
    CHECK(int(plan.sequences.size()) <= limits.max_batch);
    std::map<int32_t, int> owners;
    for (const ScheduledSequence& q : plan.sequences) {
      REQUIRE(s.known(q.id));
      CHECK(q.count >= 1);
      CHECK(q.start + q.count <= int(s.tokens(q.id).size()));
      CHECK(blocks.table(q.id).size() * 4 >= size_t(q.start + q.count));
      for (int32_t b : blocks.table(q.id)) owners[b]++;
    }
    int shared = 0;
    for (auto [block, count] : owners) shared += count > 1;
    CHECK(shared <= 3);  // only the common prompt's 3 full blocks may be shared
    for (uint64_t id : plan.failed) live.erase(std::find(live.begin(), live.end(), id));
    for (const ScheduledSequence& q : plan.sequences) {
      s.computed(q.id, q.count);
      if (!q.samples) continue;
      if (++generated[q.id] >= 1 + int(q.id % 9) || s.tokens(q.id).size() + 1 >= 64) {
        s.finish(q.id);
        live.erase(std::find(live.begin(), live.end(), q.id));
      } else {
        s.append(q.id, int32_t(rng() % 1000));
      }
    }
    if (!live.empty() && rng() % 10 == 0) {  // a cancellation, running or waiting
      const uint64_t id = live[rng() % live.size()];
      s.finish(id);
      live.erase(std::find(live.begin(), live.end(), id));
    }
  }
  for (uint64_t id : live) s.finish(id);
  CHECK(s.idle());
  CHECK(blocks.used_blocks() == 0);
  CHECK(blocks.shared_hits() > 0);
  CHECK(s.preemptions() > 0);
}
