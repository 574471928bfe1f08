// Building dsk-serve's engine (engine.hpp) from a model already in memory: what Engine::create
// does after loading the checkpoint, for benchmarks with random weights and for tests.
#pragma once

#include <memory>

#include "model/model.hpp"
#include "serve/engine.hpp"

namespace dsk::serve {

// Plans the paged KV cache on the model's backend (options.kv_blocks, or kv_memory_fraction of
// the memory left once the step's activations are planned, never more than max_batch full-length
// sequences need), then starts the engine thread. UsageError for options out of range.
std::unique_ptr<Engine> create_engine(model::Model model, const EngineOptions& options);

}  // namespace dsk::serve
