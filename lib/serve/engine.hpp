// The generation engine of dsk-serve, as the HTTP/API layer sees it: token ids in, token events
// out. Requests join and leave the running batch at every decode step (continuous batching);
// keys and values live in a paged cache; the scheduler gives each step a token budget shared by
// chunked prefills and decodes. Text (tokenizing, detokenizing, stop strings, chat templates) is
// the API layer's business, not the engine's.
//
//   auto engine = Engine::create(model_dir, options);       // loads the model, starts its thread
//   auto id = engine->submit(request);                       // returns at once (or throws QueueFull)
//   // request.on_event is called from the engine thread, one event per generated token
//   engine->cancel(id);                                      // a client went away
//   engine->drain();                                         // stop admitting; wait for running requests
//
// This header is the contract between the API layer (lib/serve/api_*, http_*) and the engine
// (lib/serve/engine*.cpp, scheduler*, paged_kv*): change it only by agreement of both.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dsk::serve {

struct SamplingParams {
  int max_tokens = 16;               // new tokens at most (the API layer caps it by the context)
  float temperature = 1.0f;          // 0: greedy
  float top_p = 1.0f;
  int top_k = 0;                     // 0: no limit
  std::optional<uint64_t> seed;      // reproducible sampling per request when given
  int top_logprobs = 0;              // > 0: that many alternatives per token, with their logprobs
  bool logprobs = false;             // the chosen token's logprob
  std::vector<int32_t> stop_token_ids;  // end the request after one of these (eos included by the API layer)
};

enum class FinishReason { none, length, stop_token, cancelled, error };

// One generated token of one request (or its end). Called on the engine's thread: the callback
// must not block (hand the event to the connection's queue and return).
struct TokenEvent {
  int32_t token = -1;                       // -1 on an event that only ends the request
  float logprob = 0;                        // when requested
  std::vector<std::pair<int32_t, float>> top_logprobs;  // when requested, most likely first
  FinishReason finish = FinishReason::none;  // not none on the request's last event
  std::string error;                        // with FinishReason::error
  int prompt_tokens = 0;                    // set on the last event (usage)
  int completion_tokens = 0;
};

struct GenerationRequest {
  std::vector<int32_t> prompt;  // at least one token, at most the context length - 1
  SamplingParams sampling;
  std::function<void(const TokenEvent&)> on_event;
  std::chrono::steady_clock::time_point arrival = std::chrono::steady_clock::now();
};

struct EngineOptions {
  std::string device = "auto";          // auto | cpu | cuda (tensor/device.hpp)
  std::string precision = "bf16";       // on CUDA; fp32 on the CPU
  int max_batch = 64;                   // sequences in the running batch at most
  int max_batch_tokens = 2048;          // token budget of one step (prefill chunks + decodes)
  int block_size = 16;                  // positions per KV block
  int kv_blocks = 0;                    // 0: as many as fit kv_memory_fraction of free memory
  double kv_memory_fraction = 0.9;
  int max_queue = 1024;                 // waiting requests at most; more: QueueFull
  bool prefix_sharing = true;
  bool cuda_graphs = false;             // CUDA: greedy decode steps replay CUDA graphs (paged_forward.hpp)
  bool fused_decode = false;            // CUDA: decode steps' layers in one persistent kernel (paged_forward.hpp)
};

// A snapshot for /metrics and the router (fallback decisions).
struct EngineStats {
  int running = 0, waiting = 0;
  int kv_blocks_used = 0, kv_blocks_total = 0;
  double last_batch_size = 0;
  uint64_t preemptions = 0;
  uint64_t prompt_tokens = 0, generated_tokens = 0;
  uint64_t cached_prompt_tokens = 0;    // prompt tokens whose keys/values came from shared blocks
  double oldest_wait_seconds = 0;       // queue wait of the oldest waiting request
  uint64_t fused_decode_steps = 0;      // steps whose layers ran as the persistent kernel (fused_decode)
};

struct QueueFull : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Engine {
 public:
  virtual ~Engine() = default;
  static std::unique_ptr<Engine> create(const std::filesystem::path& model_dir, const EngineOptions& options);

  virtual uint64_t submit(GenerationRequest request) = 0;  // throws QueueFull, UsageError (bad prompt)
  virtual void cancel(uint64_t id) = 0;                     // ends it with FinishReason::cancelled
  virtual EngineStats stats() const = 0;
  virtual int context_length() const = 0;                   // max_position_embeddings
  virtual int vocab_size() const = 0;
  // Stops admitting new requests and returns when every admitted one has finished, or after
  // `grace` by cancelling the rest.
  virtual void drain(std::chrono::milliseconds grace) = 0;
};

}  // namespace dsk::serve
