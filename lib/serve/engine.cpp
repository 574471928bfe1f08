// The engine behind engine.hpp: one thread runs the step loop (schedule, build the ragged batch,
// run the paged forward, sample, emit); API threads only touch the inbox, the cancel list and
// the stats snapshot, under one mutex. vLLM's LLMEngine + EngineCore in one process.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/error.hpp"
#include "core/log.hpp"
#include "cpu/sampling_noise.hpp"
#include "model/paged_forward.hpp"
#include "serve/engine_core.hpp"
#include "serve/paged_kv.hpp"
#include "serve/scheduler.hpp"
#include "serve/token_sampler.hpp"
#include "tensor/device.hpp"

namespace dsk::serve {

namespace {

using Clock = std::chrono::steady_clock;

void check_options(const EngineOptions& o) {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw UsageError("engine: " + what);
  };
  require(o.max_batch >= 1, str("max_batch ", o.max_batch, " must be at least 1"));
  require(o.max_batch_tokens >= o.max_batch,
          str("max_batch_tokens ", o.max_batch_tokens, " must be at least max_batch ", o.max_batch,
              " (every running sequence decodes one token a step)"));
  require(o.block_size >= 1 && o.block_size <= 1024, str("block_size ", o.block_size, " must be in 1..1024"));
  require(o.kv_blocks >= 0, str("kv_blocks ", o.kv_blocks, " must be 0 (size by memory) or more"));
  require(o.kv_memory_fraction > 0 && o.kv_memory_fraction <= 1,
          str("kv_memory_fraction ", o.kv_memory_fraction, " must be in (0, 1]"));
  require(o.max_queue >= 0, str("max_queue ", o.max_queue, " must be 0 or more"));
}

class GenerationEngine final : public Engine {
 public:
  GenerationEngine(model::Model model, const EngineOptions& options)
      : model_(std::move(model)),
        options_(options),
        context_(int(model_.architecture().max_position_embeddings)),
        workspace_(plan_workspace()),
        blocks_(workspace_.plan.blocks, options.block_size, options.prefix_sharing),
        scheduler_(SchedulerLimits{options.max_batch, options.max_batch_tokens, std::numeric_limits<int>::max(),
                                   context_},
                   blocks_) {
    stats_.kv_blocks_total = blocks_.total_blocks();
    log_info("engine: ", model_.ops().describe(), ", KV cache of ", blocks_.total_blocks(), " blocks x ",
             options.block_size, " positions, batches of ", options.max_batch, " sequences / ",
             options.max_batch_tokens, " tokens");
    thread_ = std::thread([this] { loop(); });
  }

  ~GenerationEngine() override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  uint64_t submit(GenerationRequest request) override {
    validate(request);
    std::lock_guard lock(mutex_);
    if (draining_ || stopping_) throw QueueFull("the engine is draining: no new requests");
    if (int(inbox_.size()) + waiting_ >= options_.max_queue)
      throw QueueFull(str("the queue is full (", options_.max_queue, " waiting requests)"));
    const uint64_t id = next_id_++;
    inbox_.emplace_back(id, std::move(request));
    outstanding_.insert(id);
    wake_.notify_all();
    return id;
  }

  void cancel(uint64_t id) override {
    {
      std::lock_guard lock(mutex_);
      if (!outstanding_.count(id)) return;
      cancels_.push_back(id);
    }
    wake_.notify_all();
  }

  EngineStats stats() const override {
    std::lock_guard lock(mutex_);
    EngineStats s = stats_;
    s.waiting = waiting_ + int(inbox_.size());
    const auto now = Clock::now();
    std::optional<Clock::time_point> oldest = oldest_waiting_;
    if (!inbox_.empty() && (!oldest || inbox_.front().second.arrival < *oldest)) oldest = inbox_.front().second.arrival;
    s.oldest_wait_seconds = oldest ? std::chrono::duration<double>(now - *oldest).count() : 0.0;
    return s;
  }

  int context_length() const override { return context_; }
  int vocab_size() const override { return model_.architecture().vocab; }

  void drain(std::chrono::milliseconds grace) override {
    std::unique_lock lock(mutex_);
    draining_ = true;
    if (!finished_.wait_for(lock, grace, [&] { return outstanding_.empty(); })) {
      cancels_.insert(cancels_.end(), outstanding_.begin(), outstanding_.end());
      wake_.notify_all();
      finished_.wait(lock, [&] { return outstanding_.empty(); });
    }
  }

 private:
  struct Active {
    GenerationRequest request;
    std::mt19937_64 rng;
    uint64_t noise_seed = 0;  // of the device sampler
    int prompt_tokens = 0;
    int generated = 0;
  };

  model::PagedWorkspace plan_workspace() {
    check_options(options_);
    if (context_ < 2)
      throw UsageError(str("engine: max_position_embeddings ", context_, " leaves no room to generate"));
    model::PagedPlan plan;
    plan.blocks = options_.kv_blocks;
    plan.memory_fraction = options_.kv_memory_fraction;
    plan.block_size = options_.block_size;
    plan.max_tokens = options_.max_batch_tokens;
    plan.max_sequences = options_.max_batch;
    plan.max_blocks = (context_ + options_.block_size - 1) / options_.block_size;
    plan.cuda_graphs = options_.cuda_graphs;
    plan.fused_decode = options_.fused_decode;
    return model_.new_paged_workspace(plan);
  }

  void validate(const GenerationRequest& r) const {
    const SamplingParams& p = r.sampling;
    const int vocab = vocab_size();
    if (r.prompt.empty()) throw UsageError("the prompt holds no token");
    if (int(r.prompt.size()) > context_ - 1)
      throw UsageError(str("the prompt's ", r.prompt.size(), " tokens leave no room in the context of ", context_));
    if (blocks_.blocks_for(int(r.prompt.size()) + 1) > blocks_.total_blocks())
      throw UsageError(str("the prompt's ", r.prompt.size(), " tokens do not fit the KV cache (",
                           blocks_.total_blocks(), " blocks of ", blocks_.block_size(), ")"));
    for (size_t i = 0; i < r.prompt.size(); i++)
      if (r.prompt[i] < 0 || r.prompt[i] >= vocab)
        throw UsageError(str("prompt token ", i, " (id ", r.prompt[i], ") is outside the vocabulary [0, ", vocab, ")"));
    if (p.max_tokens < 1) throw UsageError(str("max_tokens ", p.max_tokens, " must be at least 1"));
    if (!(p.temperature >= 0)) throw UsageError(str("temperature ", p.temperature, " must be 0 or more"));
    if (!(p.top_p > 0 && p.top_p <= 1)) throw UsageError(str("top_p ", p.top_p, " must be in (0, 1]"));
    if (p.top_k < 0) throw UsageError(str("top_k ", p.top_k, " must be 0 (no limit) or more"));
    if (p.top_logprobs < 0 || p.top_logprobs > vocab)
      throw UsageError(str("top_logprobs ", p.top_logprobs, " must be in 0..", vocab));
    if (!r.on_event) throw UsageError("a request needs an event callback");
  }

  // ---- the engine thread
  void loop() {
    for (;;) {
      std::deque<std::pair<uint64_t, GenerationRequest>> arrivals;
      std::vector<uint64_t> cancels;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !inbox_.empty() || !cancels_.empty() || !scheduler_.idle(); });
        if (stopping_) break;
        arrivals.swap(inbox_);
        cancels.swap(cancels_);
      }
      try {
        for (auto& [id, request] : arrivals) admit(id, std::move(request));
        for (uint64_t id : cancels) end(id, FinishReason::cancelled);
        if (!scheduler_.idle()) run_step();
      } catch (const std::exception& e) {  // a bug: fail what runs rather than the process
        log_error("engine: ", e.what());
        end_all(FinishReason::error, e.what());
      }
      publish_stats();
    }
    shut_down();
  }

  void admit(uint64_t id, GenerationRequest request) {
    Active a;
    a.prompt_tokens = int(request.prompt.size());
    std::random_device entropy;
    const uint64_t seed =
        request.sampling.seed ? *request.sampling.seed : (uint64_t(entropy()) << 32 | uint64_t(entropy()));
    a.rng.seed(seed);
    a.noise_seed = kernels::mix64(seed);
    scheduler_.add(id, request.prompt, request.arrival);
    a.request = std::move(request);
    prompt_tokens_ += uint64_t(a.prompt_tokens);
    active_.emplace(id, std::move(a));
  }

  void run_step() {
    const StepPlan plan = scheduler_.schedule();
    for (uint64_t id : plan.failed)
      end(id, FinishReason::error,
          str("the KV cache (", blocks_.total_blocks(), " blocks of ", blocks_.block_size(),
              " positions) cannot hold this sequence"));
    if (plan.empty()) return;
    model::PagedStep step;
    std::vector<uint64_t> sampled;  // the request of each logit row
    // Tables as wide as the step's longest, not the context's: less to upload on long-context models.
    const int bs = blocks_.block_size();
    int width = 1;
    for (const ScheduledSequence& s : plan.sequences) width = std::max(width, int(blocks_.table(s.id).size()));
    step.table_width = width;
    step.block_tables.assign(plan.sequences.size() * size_t(width), 0);
    for (size_t i = 0; i < plan.sequences.size(); i++) {
      const ScheduledSequence& s = plan.sequences[i];
      const std::vector<int32_t>& tokens = scheduler_.tokens(s.id);
      const std::vector<int32_t>& table = blocks_.table(s.id);
      std::copy(table.begin(), table.end(), step.block_tables.begin() + int64_t(i) * width);
      for (int t = s.start; t < s.start + s.count; t++) {
        step.tokens.push_back(tokens[t]);
        step.positions.push_back(t);
        step.sequence.push_back(int32_t(i));
        step.slots.push_back(table[t / bs] * bs + t % bs);
      }
      if (s.samples) {
        step.logit_rows.push_back(int32_t(step.tokens.size()) - 1);
        sampled.push_back(s.id);
      }
    }
    step.sequences = int(plan.sequences.size());
    const bool on_device = std::all_of(sampled.begin(), sampled.end(),
                                       [&](uint64_t id) { return samples_on_device(active_.at(id).request.sampling); });
    if (on_device) add_device_sampling(step, sampled);
    std::vector<float> logits;
    std::vector<int32_t> device_tokens;
    try {
      if (on_device)
        device_tokens = model_.forward_paged_tokens(workspace_, step);
      else
        logits = model_.forward_paged(workspace_, step);
    } catch (const std::exception& e) {
      log_error("engine: a step of ", step.tokens.size(), " tokens failed: ", e.what());
      for (const ScheduledSequence& s : plan.sequences) end(s.id, FinishReason::error, e.what());
      return;
    }
    last_batch_size_ = double(plan.sequences.size());
    for (const ScheduledSequence& s : plan.sequences) scheduler_.computed(s.id, s.count);
    const size_t V = size_t(vocab_size());
    std::vector<TokenChoice> choices(sampled.size());
    if (on_device) {
      for (size_t r = 0; r < sampled.size(); r++) choices[r].token = device_tokens[r];
    } else {
      // Sorting a vocabulary per request is the slow part of sampling: the rows go in parallel
      // (each request has its own generator, so the result does not depend on the threads).
      std::vector<Active*> requests;
      for (uint64_t id : sampled) requests.push_back(&active_.at(id));
#pragma omp parallel for schedule(dynamic)
      for (size_t r = 0; r < sampled.size(); r++)
        choices[r] = choose_token(std::span<const float>(logits.data() + r * V, V), requests[r]->request.sampling,
                                  requests[r]->rng);
    }
    for (size_t r = 0; r < sampled.size(); r++) next_token(sampled[r], std::move(choices[r]));
  }

  // Which requests need no logits on the host: greedy ones without logprobs everywhere; on CUDA
  // also plain temperature sampling (no top-k, no top-p), drawn there by the Gumbel-max trick with
  // the request's seed (so a seeded request repeats itself on the same backend; the CPU backend
  // samples on the host with generate.hpp, the same draws as dsk-train sample).
  bool samples_on_device(const SamplingParams& p) const {
    if (p.logprobs || p.top_logprobs > 0) return false;
    if (p.temperature <= 0) return true;
    return model_.ops().device() == tensor::Device::cuda && p.top_k == 0 && p.top_p >= 1.0f;
  }

  // The device sampler's temperature and noise seed of each logit row (none when all are greedy).
  void add_device_sampling(model::PagedStep& step, const std::vector<uint64_t>& sampled) {
    bool any = false;
    for (uint64_t id : sampled) any |= active_.at(id).request.sampling.temperature > 0;
    if (!any) return;
    for (uint64_t id : sampled) {
      const Active& a = active_.at(id);
      step.temperatures.push_back(std::max(a.request.sampling.temperature, 0.0f));
      step.noise_seeds.push_back(kernels::mix64(a.noise_seed + uint64_t(a.generated)));  // new noise per token
    }
  }

  void next_token(uint64_t id, TokenChoice choice) {
    Active& a = active_.at(id);
    const SamplingParams& p = a.request.sampling;
    a.generated++;
    generated_tokens_++;
    TokenEvent event;
    event.token = choice.token;
    event.logprob = choice.logprob;
    event.top_logprobs = std::move(choice.top_logprobs);
    const auto& stops = p.stop_token_ids;
    const bool stop = std::find(stops.begin(), stops.end(), choice.token) != stops.end();
    const int length = int(scheduler_.tokens(id).size()) + 1;
    if (stop)
      event.finish = FinishReason::stop_token;
    else if (a.generated >= p.max_tokens || length >= context_)
      event.finish = FinishReason::length;
    if (event.finish == FinishReason::none) {
      emit(id, a, event);
      scheduler_.append(id, choice.token);
      return;
    }
    event.prompt_tokens = a.prompt_tokens;
    event.completion_tokens = a.generated;
    emit(id, a, event);
    retire(id);
  }

  // Ends a request with an event that carries no token.
  void end(uint64_t id, FinishReason reason, const std::string& error = "") {
    auto it = active_.find(id);
    if (it == active_.end()) return;
    TokenEvent event;
    event.finish = reason;
    event.error = error;
    event.prompt_tokens = it->second.prompt_tokens;
    event.completion_tokens = it->second.generated;
    emit(id, it->second, event);
    retire(id);
  }

  void emit(uint64_t id, Active& a, const TokenEvent& event) {
    try {
      a.request.on_event(event);
    } catch (const std::exception& e) {
      log_warn("engine: the event callback of request ", id, " threw (", e.what(), "); the request is cancelled");
      if (event.finish == FinishReason::none) {
        std::lock_guard lock(mutex_);
        cancels_.push_back(id);
      }
    }
  }

  void retire(uint64_t id) {
    scheduler_.finish(id);
    active_.erase(id);
    {
      std::lock_guard lock(mutex_);
      outstanding_.erase(id);
    }
    finished_.notify_all();
  }

  void publish_stats() {
    std::lock_guard lock(mutex_);
    stats_.running = scheduler_.running();
    waiting_ = scheduler_.waiting();
    oldest_waiting_ = scheduler_.oldest_arrival();
    stats_.kv_blocks_used = blocks_.used_blocks();
    stats_.last_batch_size = last_batch_size_;
    stats_.preemptions = scheduler_.preemptions();
    stats_.prompt_tokens = prompt_tokens_;
    stats_.generated_tokens = generated_tokens_;
    stats_.cached_prompt_tokens = scheduler_.cached_tokens();
    stats_.fused_decode_steps = uint64_t(workspace_.fused_decode_steps);
  }

  // The engine is going away: every request not finished yet ends as cancelled.
  void shut_down() {
    std::deque<std::pair<uint64_t, GenerationRequest>> arrivals;
    {
      std::lock_guard lock(mutex_);
      arrivals.swap(inbox_);
    }
    for (auto& [id, request] : arrivals) admit(id, std::move(request));
    end_all(FinishReason::cancelled);
  }

  void end_all(FinishReason reason, const std::string& error = "") {
    std::vector<uint64_t> ids;
    for (const auto& [id, a] : active_) ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    for (uint64_t id : ids) end(id, reason, error);
  }

  model::Model model_;
  const EngineOptions options_;
  const int context_;
  model::PagedWorkspace workspace_;
  BlockManager blocks_;
  Scheduler scheduler_;
  std::unordered_map<uint64_t, Active> active_;  // the engine thread's
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
  double last_batch_size_ = 0;

  mutable std::mutex mutex_;  // guards what follows
  std::condition_variable wake_, finished_;
  std::deque<std::pair<uint64_t, GenerationRequest>> inbox_;
  std::vector<uint64_t> cancels_;
  std::set<uint64_t> outstanding_;  // submitted and not ended
  int waiting_ = 0;
  std::optional<Clock::time_point> oldest_waiting_;
  EngineStats stats_;
  bool stopping_ = false, draining_ = false;
  uint64_t next_id_ = 1;
  std::thread thread_;
};

}  // namespace

std::unique_ptr<Engine> create_engine(model::Model model, const EngineOptions& options) {
  return std::make_unique<GenerationEngine>(std::move(model), options);
}

std::unique_ptr<Engine> Engine::create(const std::filesystem::path& model_dir, const EngineOptions& options) {
  check_options(options);
  // The precision applies to CUDA; the CPU backend computes in fp32 whatever was asked.
  const bool cpu = options.device == "cpu" || (options.device == "auto" && !tensor::cuda_available());
  auto ops = tensor::make_ops(options.device, cpu ? "auto" : options.precision);
  return create_engine(model::Model::load_hf_checkpoint(model_dir, ops), options);
}

}  // namespace dsk::serve
