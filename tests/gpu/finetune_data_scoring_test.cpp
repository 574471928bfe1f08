// The scores behind dsk-finetune select and classify on CUDA against the CPU reference, on the HF
// fixture checkpoints of tests/fixtures/models (llama, qwen2, deepseek_v3):
//   label continuation log-probabilities (batched, right-padded) and per-position predictive
//   entropy and margin.
//   fp32 (TF32 off): |cuda - cpu| <= 1e-4 * max(1, |cpu|) for every value.
//   bf16: the argmax label agrees with the CPU's wherever the CPU's best label leads the second
//   by more than 0.05 nats (closer calls may flip in bf16; they are counted and printed).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "finetune/data/token_scores.hpp"
#include "model/model.hpp"
#include "tensor/device.hpp"

using namespace dsk;
using namespace dsk::finetune;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/models";
const char* const kModels[] = {"llama", "qwen2", "deepseek_v3"};

std::vector<int32_t> random_tokens(std::mt19937& rng, int vocab, size_t n) {
  std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
  std::vector<int32_t> out(n);
  for (auto& t : out) t = pick(rng);
  return out;
}

struct ModelPair {
  model::Model cpu, gpu;
  std::mt19937 rng;
};
// The fixture checkpoint on the CPU (the reference) and on CUDA at `precision`.
ModelPair load_pair(const char* name, const char* precision, unsigned seed) {
  fs::path dir = kFixtures / name / "checkpoint";
  return {model::Model::load_hf_checkpoint(dir), model::Model::load_hf_checkpoint(dir, tensor::make_ops("cuda", precision)),
          std::mt19937(seed)};
}

void check_close(double got, double want, const char* what) {
  CAPTURE(what);
  CHECK(std::fabs(got - want) <= 1e-4 * std::max(1.0, std::fabs(want)));
}

}  // namespace

TEST_CASE("continuation log-probabilities, entropy and margin: CUDA fp32 = CPU") {
  for (const char* name : kModels) {
    CAPTURE(name);
    auto [cpu, gpu, rng] = load_pair(name, "fp32", 7);
    const int vocab = cpu.architecture().vocab;
    std::vector<int32_t> prefix = random_tokens(rng, vocab, 9);
    std::vector<std::vector<int32_t>> labels = {random_tokens(rng, vocab, 1), random_tokens(rng, vocab, 4), random_tokens(rng, vocab, 2)};
    std::vector<double> want = continuation_logprobs(cpu, prefix, labels);
    std::vector<double> got = continuation_logprobs(gpu, prefix, labels);
    for (size_t i = 0; i < want.size(); ++i) check_close(got[i], want[i], "label log-probability");

    std::vector<float> cpu_logits = sequence_logits(cpu, prefix);
    std::vector<float> gpu_logits = sequence_logits(gpu, prefix);
    const size_t V = size_t(vocab);
    for (size_t t = 0; t < prefix.size(); ++t) {
      std::span<const float> c(cpu_logits.data() + t * V, V), g(gpu_logits.data() + t * V, V);
      check_close(predictive_entropy(g), predictive_entropy(c), "entropy");
      check_close(predictive_margin(g), predictive_margin(c), "margin");
    }
  }
}

TEST_CASE("classification argmax: CUDA bf16 agrees with the CPU where the CPU is clear") {
  for (const char* name : kModels) {
    CAPTURE(name);
    auto [cpu, gpu, rng] = load_pair(name, "bf16", 11);
    const int vocab = cpu.architecture().vocab;
    int clear = 0, close_calls = 0, close_flips = 0;
    for (int example = 0; example < 20; ++example) {
      std::vector<int32_t> prefix = random_tokens(rng, vocab, 6 + size_t(example % 5));
      std::vector<std::vector<int32_t>> labels = {random_tokens(rng, vocab, 1), random_tokens(rng, vocab, 2), random_tokens(rng, vocab, 1)};
      std::vector<double> want = continuation_logprobs(cpu, prefix, labels);
      std::vector<double> got = continuation_logprobs(gpu, prefix, labels);
      std::vector<size_t> order = {0, 1, 2};
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return want[a] > want[b]; });
      size_t gpu_best = size_t(std::max_element(got.begin(), got.end()) - got.begin());
      if (want[order[0]] - want[order[1]] > 0.05) {
        ++clear;
        CHECK(gpu_best == order[0]);
      } else {
        ++close_calls;
        close_flips += gpu_best != order[0];
      }
    }
    std::printf("%s bf16: %d clear predictions checked, %d close calls (%d flipped)\n", name, clear, close_calls, close_flips);
  }
}
