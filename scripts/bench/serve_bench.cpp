// dsk-serve's engine on one GPU with random weights: batch-1 decode speed against the memory-
// bandwidth bound, and the throughput of concurrent requests (scripts/device/serve-gpu.sh runs
// it beside scripts/bench/serve_hf.py, HF transformers' generate on the same shape).
//
//   dsk_serve_bench CONFIG_JSON [--prompt 128] [--new 128] [--concurrent 32] [--precision bf16] [--device cuda]
//                   [--graphs both|off|on] [--fused on|off|both]
//
// The bound: a decode step reads every weight once, so one sequence cannot decode faster than
// (device copy bandwidth) / (bytes of the weights); the bandwidth is measured here as a device-
// to-device copy of 1 GiB (bytes read + written over the time, as ../shared/bench-shapes counts).
// Prints one line per measurement:
//   bound copy_tb_s X weights_gb Y tokens_per_s Z
//   dsk batch 1 decode_tokens_per_s A of_bound B ttft_ms C
//   dsk batch N tokens_per_s D wall_s E preemptions F
// the "dsk" lines run every op eagerly, the "dsk graphs" lines replay CUDA graphs for the decode
// steps (EngineOptions::cuda_graphs); --graphs picks which run (both by default, eager first).
// --fused on runs decode steps' layers in the persistent kernel (EngineOptions::fused_decode,
// off by default as in the engine), labelled "... fused"; --fused both runs each way.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>

#include "core/error.hpp"
#include "model/hf_config.hpp"
#include "model/model.hpp"
#include "serve/engine_core.hpp"
#include "tensor/device.hpp"

using namespace dsk;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string config;
  int prompt = 128, generate = 128, concurrent = 32;
  std::string precision = "bf16";
  std::string device = "cuda";  // cpu: a smoke test of this driver with a tiny config
  std::string graphs = "both";  // off | on | both
  std::string fused = "off";    // on | off | both
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--prompt") o.prompt = std::stoi(value());
    else if (arg == "--new") o.generate = std::stoi(value());
    else if (arg == "--concurrent") o.concurrent = std::stoi(value());
    else if (arg == "--precision") o.precision = value();
    else if (arg == "--device") o.device = value();
    else if (arg == "--graphs") o.graphs = value();
    else if (arg == "--fused") o.fused = value();
    else if (o.config.empty() && !arg.starts_with("--")) o.config = arg;
    else throw UsageError("unknown argument " + arg);
  }
  if (o.graphs != "off" && o.graphs != "on" && o.graphs != "both")
    throw UsageError("--graphs takes off, on or both, not " + o.graphs);
  if (o.fused != "off" && o.fused != "on" && o.fused != "both")
    throw UsageError("--fused takes off, on or both, not " + o.fused);
  if (o.config.empty()) throw UsageError("usage: dsk_serve_bench CONFIG_JSON [--prompt N] [--new N] [--concurrent N]");
  return o;
}

// Bytes read + written per second by a 1 GiB device-to-device copy (median of 10).
double copy_bandwidth(tensor::Ops& ops) {
  const size_t bytes = size_t(1) << 30;
  tensor::Buf a{ops.allocate(bytes, "bandwidth probe"), int64_t(bytes), tensor::DType::u8};
  tensor::Buf b{ops.allocate(bytes, "bandwidth probe"), int64_t(bytes), tensor::DType::u8};
  ops.zero(a);
  std::vector<double> seconds;
  for (int i = 0; i < 12; i++) {
    ops.synchronize();
    const auto start = Clock::now();
    ops.copy(b, a);
    ops.synchronize();
    if (i >= 2) seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  ops.release(a.data);
  ops.release(b.data);
  std::sort(seconds.begin(), seconds.end());
  return 2.0 * double(bytes) / seconds[seconds.size() / 2];
}

// Submits `count` requests of random prompts at once; waits for all; returns per-request times.
struct Timing {
  Clock::time_point submitted, first, last;
  int tokens = 0;
};

std::vector<Timing> run(serve::Engine& engine, const Options& o, int count, uint64_t seed) {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<Timing> timings(static_cast<size_t>(count));
  int ended = 0;
  std::mt19937_64 rng(seed);
  const auto start = Clock::now();
  for (int i = 0; i < count; i++) {
    serve::GenerationRequest r;
    r.prompt.resize(size_t(o.prompt));
    for (int32_t& t : r.prompt) t = int32_t(rng() % uint64_t(engine.vocab_size()));
    r.sampling.temperature = 0;
    r.sampling.max_tokens = o.generate;
    r.on_event = [&, i](const serve::TokenEvent& e) {
      const auto now = Clock::now();
      std::lock_guard lock(mutex);
      Timing& t = timings[size_t(i)];
      if (e.token >= 0 && t.tokens++ == 0) t.first = now;
      t.last = now;
      if (e.finish != serve::FinishReason::none) {
        if (e.finish != serve::FinishReason::length)
          std::fprintf(stderr, "request %d ended early: %s\n", i, e.error.c_str());
        ended++;
        done.notify_all();
      }
    };
    timings[size_t(i)].submitted = start;
    engine.submit(std::move(r));
  }
  std::unique_lock lock(mutex);
  done.wait(lock, [&] { return ended == count; });
  return timings;
}

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse(argc, argv);
    auto ops = tensor::make_ops(o.device, o.device == "cpu" ? "fp32" : o.precision);
    const double bandwidth = copy_bandwidth(*ops);
    const double weight_bytes = double(model::Model(model::read_hf_config(o.config), 1, 0.02f, ops).parameter_count()) *
                                tensor::dtype_size(ops->activation_dtype());
    std::printf("bound copy_tb_s %.3f weights_gb %.3f tokens_per_s %.0f\n", bandwidth / 1e12, weight_bytes / 1e9,
                bandwidth / weight_bytes);
    std::fflush(stdout);
    for (const int variant : {0, 1, 2, 3}) {
      const bool graphs = variant >= 2, fused = variant % 2 == 1;
      if (o.graphs == (graphs ? "off" : "on") || o.fused == (fused ? "off" : "on")) continue;
      serve::EngineOptions options;
      options.device = o.device;
      options.precision = o.precision;
      options.max_batch = std::max(64, o.concurrent);
      options.max_batch_tokens = std::max(4096, o.prompt);
      options.cuda_graphs = graphs;
      options.fused_decode = fused;
      const std::string name = std::string(graphs ? "dsk graphs" : "dsk") + (fused ? " fused" : "");
      const char* label = name.c_str();
      // The same random weights (seed 1) for both runs.
      auto engine = serve::create_engine(model::Model(model::read_hf_config(o.config), 1, 0.02f, ops), options);

      Options warm_up = o;
      warm_up.generate = 8;
      // Warm-up: the scratch buffers grow and the graphs of batches of 1 and N are captured here.
      run(*engine, warm_up, 1, 1);
      run(*engine, warm_up, o.concurrent, 1);
      const Timing single = run(*engine, o, 1, 2)[0];
      const double decode = (single.tokens - 1) / seconds(single.first, single.last);
      std::printf("%s batch 1 decode_tokens_per_s %.1f of_bound %.3f ttft_ms %.2f\n", label, decode,
                  decode / (bandwidth / weight_bytes), 1e3 * seconds(single.submitted, single.first));
      std::fflush(stdout);

      const std::vector<Timing> many = run(*engine, o, o.concurrent, 3);
      Clock::time_point end = many[0].last;
      int tokens = 0;
      for (const Timing& t : many) {
        end = std::max(end, t.last);
        tokens += t.tokens;
      }
      const double wall = seconds(many[0].submitted, end);
      std::printf("%s batch %d tokens_per_s %.1f wall_s %.3f preemptions %llu\n", label, o.concurrent, tokens / wall,
                  wall, (unsigned long long)engine->stats().preemptions);
      std::fflush(stdout);
    }
    return 0;
  } catch (const dsk::Error& e) {  // the project's exit codes: 2 for a usage error, ...
    std::fprintf(stderr, "dsk_serve_bench: error: %s\n", e.what());
    return int(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsk_serve_bench: error: %s\n", e.what());
    return 1;
  }
}
