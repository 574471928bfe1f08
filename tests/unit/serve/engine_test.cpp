// The engine (serve/engine.hpp) on the CPU backend with the HF fixture models: continuous
// batching is exact (each of 32 concurrent greedy requests gets the very tokens it gets alone,
// and those of generate_tokens, dsk-train sample's generation), also under preemption in a tiny
// pool and with prefix sharing (whose reuse is counted); cancel, drain, QueueFull, bad prompts,
// seeded sampling and logprobs.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/error.hpp"
#include "model/generate.hpp"
#include "model/model.hpp"
#include "serve/engine.hpp"

using namespace dsk::serve;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const fs::path kFixtures = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/models";

// Collects every request's events; wait() returns once each expected request has ended.
class Events {
 public:
  std::function<void(const TokenEvent&)> sink(int key) {
    return [this, key](const TokenEvent& e) {
      std::lock_guard lock(mutex_);
      events_[key].push_back(e);
      if (e.finish != FinishReason::none) {
        ended_++;
        changed_.notify_all();
      }
    };
  }
  void wait(int requests) {
    std::unique_lock lock(mutex_);
    REQUIRE(changed_.wait_for(lock, 120s, [&] { return ended_ >= requests; }));
  }
  std::vector<int32_t> tokens(int key) {
    std::lock_guard lock(mutex_);
    std::vector<int32_t> out;
    for (const TokenEvent& e : events_[key])
      if (e.token >= 0) out.push_back(e.token);
    return out;
  }
  TokenEvent last(int key) {
    std::lock_guard lock(mutex_);
    return events_[key].back();
  }
  std::vector<TokenEvent> all(int key) {
    std::lock_guard lock(mutex_);
    return events_[key];
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int, std::vector<TokenEvent>> events_;
  int ended_ = 0;
};

EngineOptions cpu_options() {
  EngineOptions o;
  o.device = "cpu";
  o.max_batch = 8;
  o.max_batch_tokens = 24;  // prompts are chunked and mixed with decodes
  o.block_size = 4;
  o.kv_blocks = 256;
  return o;
}

struct Case {
  std::vector<int32_t> prompt;
  int max_tokens;
};

// 32 prompts of 1..30 tokens and outputs of 1..30 tokens, within the fixtures' 64 positions.
std::vector<Case> cases(int count, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Case> out;
  for (int i = 0; i < count; i++) {
    Case c;
    c.prompt.resize(size_t(1 + rng() % 30));
    for (int32_t& t : c.prompt) t = int32_t(rng() % uint64_t(vocab));
    c.max_tokens = int(1 + rng() % 30);
    out.push_back(std::move(c));
  }
  return out;
}

GenerationRequest greedy(const Case& c, std::function<void(const TokenEvent&)> sink) {
  GenerationRequest r;
  r.prompt = c.prompt;
  r.sampling.temperature = 0;
  r.sampling.max_tokens = c.max_tokens;
  r.on_event = std::move(sink);
  return r;
}

// All cases at once through one engine; the tokens of each.
std::vector<std::vector<int32_t>> run_concurrently(Engine& engine, const std::vector<Case>& all) {
  Events events;
  for (size_t i = 0; i < all.size(); i++) engine.submit(greedy(all[i], events.sink(int(i))));
  events.wait(int(all.size()));
  std::vector<std::vector<int32_t>> out;
  for (size_t i = 0; i < all.size(); i++) {
    const TokenEvent last = events.last(int(i));
    CHECK(last.finish == FinishReason::length);
    CHECK(last.prompt_tokens == int(all[i].prompt.size()));
    CHECK(last.completion_tokens == all[i].max_tokens);
    out.push_back(events.tokens(int(i)));
  }
  return out;
}

std::vector<int32_t> run_alone(Engine& engine, const Case& c) {
  Events events;
  engine.submit(greedy(c, events.sink(0)));
  events.wait(1);
  return events.tokens(0);
}

std::vector<int32_t> reference_generation(dsk::model::Model& model, const Case& c) {
  std::mt19937_64 rng(0);
  dsk::model::SamplingSettings greedy_settings;
  greedy_settings.temperature = 0;
  auto tokens = dsk::model::generate_tokens(model, c.prompt, c.max_tokens, greedy_settings, rng);
  return std::vector<int32_t>(tokens.begin(), tokens.end());
}

void check_exact_batching(const std::string& fixture, int requests) {
  const fs::path dir = kFixtures / fixture / "checkpoint";
  auto engine = Engine::create(dir, cpu_options());
  const std::vector<Case> all = cases(requests, engine->vocab_size(), 11);
  const auto together = run_concurrently(*engine, all);
  dsk::model::Model reference = dsk::model::Model::load_hf_checkpoint(dir);
  for (size_t i = 0; i < all.size(); i++) {
    CAPTURE(i);
    CHECK(together[i] == run_alone(*engine, all[i]));
    CHECK(together[i] == reference_generation(reference, all[i]));
  }
  const EngineStats stats = engine->stats();
  CHECK(stats.running == 0);
  CHECK(stats.waiting == 0);
  CHECK(stats.kv_blocks_total == 256);
  CHECK(stats.generated_tokens >= uint64_t(requests));
}

}  // namespace

TEST_CASE("continuous batching is exact: 32 concurrent greedy requests get their tokens alone (llama)") {
  check_exact_batching("llama", 32);
}

TEST_CASE("continuous batching is exact with MLA and MoE (deepseek_v3) and with qwen2") {
  check_exact_batching("deepseek_v3", 12);
  check_exact_batching("qwen2", 12);
}

TEST_CASE("preemption in a tiny pool still gives every request its tokens") {
  const fs::path dir = kFixtures / "llama" / "checkpoint";
  EngineOptions options = cpu_options();
  options.kv_blocks = 16;  // 64 positions for up to 8 sequences of up to 60
  options.prefix_sharing = false;
  auto engine = Engine::create(dir, options);
  const std::vector<Case> all = cases(16, engine->vocab_size(), 23);
  const auto together = run_concurrently(*engine, all);
  CHECK(engine->stats().preemptions > 0);
  auto roomy = Engine::create(dir, cpu_options());
  for (size_t i = 0; i < all.size(); i++) {
    CAPTURE(i);
    CHECK(together[i] == run_alone(*roomy, all[i]));
  }
}

TEST_CASE("prefix sharing reuses the blocks of a common prompt prefix and changes no token") {
  const fs::path dir = kFixtures / "llama" / "checkpoint";
  std::mt19937_64 rng(5);
  std::vector<int32_t> prefix(20);
  for (int32_t& t : prefix) t = int32_t(rng() % 128);
  std::vector<Case> all;
  for (int i = 0; i < 6; i++) {
    Case c{prefix, 8};
    for (int j = 0; j <= i; j++) c.prompt.push_back(int32_t(rng() % 128));
    all.push_back(c);
  }
  auto shared = Engine::create(dir, cpu_options());
  // The first request computes the prefix's 5 blocks; the 5 after it find them.
  const std::vector<int32_t> first = run_alone(*shared, all[0]);
  CHECK(shared->stats().cached_prompt_tokens == 0);
  const auto rest = run_concurrently(*shared, std::vector<Case>(all.begin() + 1, all.end()));
  CHECK(shared->stats().cached_prompt_tokens == 5 * 20);

  EngineOptions options = cpu_options();
  options.prefix_sharing = false;
  auto unshared = Engine::create(dir, options);
  CHECK(first == run_alone(*unshared, all[0]));
  for (size_t i = 1; i < all.size(); i++) CHECK(rest[i - 1] == run_alone(*unshared, all[i]));
  CHECK(unshared->stats().cached_prompt_tokens == 0);
}

TEST_CASE("cancel ends a running request and a waiting one, each with one cancelled event") {
  EngineOptions options = cpu_options();
  options.max_batch = 1;
  auto engine = Engine::create(kFixtures / "llama" / "checkpoint", options);
  Events events;
  std::atomic<uint64_t> running_id{0};
  std::atomic<Engine*> target{engine.get()};
  GenerationRequest long_one = greedy(Case{{1, 2, 3}, 50}, [&](const TokenEvent& e) {
    events.sink(0)(e);
    if (e.token >= 0 && events.tokens(0).size() == 3) target.load()->cancel(running_id.load());
  });
  running_id = engine->submit(std::move(long_one));
  const uint64_t waiting_id = engine->submit(greedy(Case{{4, 5}, 5}, events.sink(1)));
  engine->cancel(waiting_id);
  events.wait(2);
  CHECK(events.last(0).finish == FinishReason::cancelled);
  CHECK(events.last(0).token == -1);
  CHECK(events.tokens(0).size() < 50);
  CHECK(events.last(1).finish == FinishReason::cancelled);
  engine->cancel(waiting_id);  // again, and unknown ids: nothing happens
  engine->cancel(999);
  // The stats are a snapshot taken after each step: wait for the one after the cancel.
  for (int i = 0; i < 2000 && engine->stats().running > 0; i++) std::this_thread::sleep_for(5ms);
  const EngineStats stats = engine->stats();
  CHECK(stats.running == 0);
  CHECK(stats.kv_blocks_used == 0);
}

TEST_CASE("drain waits for running requests, then refuses new ones; with no grace it cancels them") {
  const fs::path dir = kFixtures / "llama" / "checkpoint";
  {
    auto engine = Engine::create(dir, cpu_options());
    Events events;
    for (int i = 0; i < 4; i++) engine->submit(greedy(Case{{1, 2, 3, int32_t(i)}, 10}, events.sink(i)));
    engine->drain(60s);
    for (int i = 0; i < 4; i++) CHECK(events.last(i).finish == FinishReason::length);
    CHECK_THROWS_AS(engine->submit(greedy(Case{{1}, 1}, events.sink(9))), QueueFull);
  }
  {
    auto engine = Engine::create(dir, cpu_options());
    Events events;
    for (int i = 0; i < 4; i++) engine->submit(greedy(Case{{1, 2, 3, int32_t(i)}, 60}, events.sink(i)));
    engine->drain(0ms);
    events.wait(4);  // drain returned: every request has ended
    int cancelled = 0;
    for (int i = 0; i < 4; i++) cancelled += events.last(i).finish == FinishReason::cancelled;
    CHECK(cancelled >= 1);
  }
}

TEST_CASE("past max_queue waiting requests, submit throws QueueFull; the engine's end cancels the rest") {
  EngineOptions options = cpu_options();
  options.max_batch = 1;
  options.max_queue = 2;
  Events events;
  {
    auto engine = Engine::create(kFixtures / "llama" / "checkpoint", options);
    engine->submit(greedy(Case{{1, 2}, 60}, events.sink(0)));
    for (int i = 0; i < 2000 && engine->stats().running == 0; i++) std::this_thread::sleep_for(5ms);
    REQUIRE(engine->stats().running == 1);
    engine->submit(greedy(Case{{3}, 5}, events.sink(1)));
    engine->submit(greedy(Case{{4}, 5}, events.sink(2)));
    CHECK(engine->stats().waiting == 2);
    CHECK_THROWS_AS(engine->submit(greedy(Case{{5}, 5}, events.sink(3))), QueueFull);
  }
  for (int i = 0; i < 3; i++) CHECK(events.last(i).finish != FinishReason::none);
}

TEST_CASE("bad prompts and sampling parameters are usage errors") {
  auto engine = Engine::create(kFixtures / "llama" / "checkpoint", cpu_options());
  CHECK(engine->context_length() == 64);
  CHECK(engine->vocab_size() == 128);
  Events events;
  auto request = [&](std::vector<int32_t> prompt) { return greedy(Case{std::move(prompt), 4}, events.sink(0)); };
  CHECK_THROWS_AS(engine->submit(request({})), dsk::UsageError);
  CHECK_THROWS_AS(engine->submit(request(std::vector<int32_t>(64, 1))), dsk::UsageError);
  CHECK_THROWS_AS(engine->submit(request({1, 128})), dsk::UsageError);
  CHECK_THROWS_AS(engine->submit(request({1, -1})), dsk::UsageError);
  GenerationRequest bad = request({1});
  bad.sampling.top_p = 0;
  CHECK_THROWS_AS(engine->submit(bad), dsk::UsageError);
  bad = request({1});
  bad.sampling.max_tokens = 0;
  CHECK_THROWS_AS(engine->submit(bad), dsk::UsageError);
  EngineOptions options = cpu_options();
  options.max_batch = 0;
  CHECK_THROWS_AS(Engine::create(kFixtures / "llama" / "checkpoint", options), dsk::UsageError);
  options = cpu_options();
  options.max_batch_tokens = options.max_batch - 1;  // some running sequence could never decode
  CHECK_THROWS_AS(Engine::create(kFixtures / "llama" / "checkpoint", options), dsk::UsageError);
  options = cpu_options();
  options.kv_memory_fraction = 1.5;
  CHECK_THROWS_AS(Engine::create(kFixtures / "llama" / "checkpoint", options), dsk::UsageError);
}

TEST_CASE("kv_blocks 0 sizes the pool by free memory, never past max_batch full-length sequences") {
  EngineOptions options = cpu_options();
  options.kv_blocks = 0;
  auto engine = Engine::create(kFixtures / "llama" / "checkpoint", options);
  CHECK(engine->stats().kv_blocks_total == 8 * (64 / 4));  // the host has room for all of them
}

TEST_CASE("a generation stops at the context's end and at a stop token (which it emits)") {
  auto engine = Engine::create(kFixtures / "llama" / "checkpoint", cpu_options());
  Events events;
  engine->submit(greedy(Case{std::vector<int32_t>(60, 3), 100}, events.sink(0)));
  events.wait(1);
  CHECK(events.tokens(0).size() == 4);  // positions 60..63
  CHECK(events.last(0).finish == FinishReason::length);
  const std::vector<int32_t> free_run = events.tokens(0);
  GenerationRequest stopping = greedy(Case{std::vector<int32_t>(60, 3), 100}, events.sink(1));
  stopping.sampling.stop_token_ids = {free_run[1]};
  engine->submit(std::move(stopping));
  events.wait(2);
  CHECK(events.last(1).finish == FinishReason::stop_token);
  const auto stop_at = std::find(free_run.begin(), free_run.end(), free_run[1]) + 1;
  CHECK(events.tokens(1) == std::vector<int32_t>(free_run.begin(), stop_at));
  CHECK(events.last(1).completion_tokens == int(stop_at - free_run.begin()));
}

TEST_CASE("seeded sampling is reproducible; logprobs come from the log-softmax, most likely first") {
  auto engine = Engine::create(kFixtures / "llama" / "checkpoint", cpu_options());
  Events events;
  for (int i = 0; i < 3; i++) {
    GenerationRequest r = greedy(Case{{5, 6, 7}, 12}, events.sink(i));
    r.sampling.temperature = 1.5f;
    r.sampling.top_p = 0.9f;
    r.sampling.top_k = 50;
    r.sampling.seed = i < 2 ? 42 : 43;
    r.sampling.logprobs = true;
    r.sampling.top_logprobs = 5;
    engine->submit(std::move(r));
  }
  events.wait(3);
  CHECK(events.tokens(0) == events.tokens(1));
  CHECK(events.tokens(0) != events.tokens(2));
  for (const TokenEvent& e : events.all(0)) {
    if (e.token < 0) continue;
    REQUIRE(e.top_logprobs.size() == 5);
    CHECK(e.logprob <= 0);
    for (size_t k = 1; k < 5; k++) CHECK(e.top_logprobs[k - 1].second >= e.top_logprobs[k].second);
    double mass = 0;
    for (auto [token, logprob] : e.top_logprobs) {
      mass += std::exp(logprob);
      if (token == e.token) CHECK(logprob == doctest::Approx(e.logprob));
    }
    CHECK(mass <= 1.0 + 1e-6);
  }
}
