// The persistent decode kernel (kernels/cuda/decode_layers.cuh, PagedPlan::fused_decode) against
// the same decode steps op by op (its reference: each op there has its CPU twin), on random
// llama (GQA, 64-wide heads) and qwen2 (q/k/v biases, one key head) models of 3 layers:
// sequences of 1, 3 and 4 tokens a step (kGemvMaxRows), contexts long enough that the keys split
// over several partitions, teacher-forced so both runs see the same tokens. Each step's logits:
// max_i |fused_i - ops_i| / max_i |ops_i| <= 1e-4 in fp32 (TF32 off), <= 3e-2 in bf16 (attention
// sums its keys in another order; the products, RoPE and KV writes are the same ops' bits).
// The fused runs must have run fused every decode step, the op-by-op runs never.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "relative_error.hpp"
#include "model/hf_config.hpp"
#include "model/model.hpp"
#include "model/paged_forward.hpp"
#include "tensor/device.hpp"

using namespace dsk;
using namespace dsk::model;
namespace fs = std::filesystem;

using dsk::gpu_tests::max_relative_error;

namespace {

const fs::path kFixtures = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/models";

// A fixture's architecture at shapes the kernel takes in both precisions.
Architecture widened(const std::string& fixture, int kv_heads) {
  Architecture a = read_hf_config(kFixtures / fixture / "checkpoint" / "config.json");
  a.hidden = 512;
  a.heads = 8;
  a.kv_heads = kv_heads;
  a.head_dim = 64;
  a.intermediate = 1376;
  a.layers = 3;
  a.vocab = 1000;
  return a;
}

constexpr int kBlockSize = 16, kTableWidth = 32, kSequences = 4;

PagedPlan plan(bool fused) {
  PagedPlan p;
  p.blocks = kSequences * kTableWidth;
  p.block_size = kBlockSize;
  p.max_tokens = 512;
  p.max_sequences = kSequences;
  p.max_blocks = kTableWidth;
  p.max_logit_rows = p.max_tokens;  // the prompts' steps ask for every token's logits
  p.fused_decode = fused;
  return p;
}

// Sequence s owns blocks [s * kTableWidth, (s + 1) * kTableWidth), in reverse order (tables are
// followed, not assumed contiguous).
int32_t block_of(int s, int position) { return s * kTableWidth + (kTableWidth - 1 - position / kBlockSize); }

// Tokens [from, to) of the given sequences in one step (every token's logits).
PagedStep step_of(const std::vector<int>& sequences, const std::vector<std::vector<int32_t>>& tokens, int from, int to) {
  PagedStep step;
  for (int s : sequences) {
    const int row = step.sequences++;
    for (int b = 0; b < kTableWidth; b++) step.block_tables.push_back(block_of(s, b * kBlockSize));
    for (int t = from; t < to; t++) {
      step.tokens.push_back(tokens[size_t(s)][size_t(t)]);
      step.positions.push_back(t);
      step.sequence.push_back(row);
      step.slots.push_back(block_of(s, t) * kBlockSize + t % kBlockSize);
      step.logit_rows.push_back(int32_t(step.tokens.size()) - 1);
    }
  }
  step.table_width = kTableWidth;
  return step;
}

void check_model(const Architecture& arch, const std::string& precision, double tolerance) {
  auto ops = tensor::make_ops("cuda", precision);
  Model model(arch, 5, 0.05f, ops);
  PagedWorkspace fused = model.new_paged_workspace(plan(true)), plain = model.new_paged_workspace(plan(false));
  std::mt19937_64 rng(11);
  const int prompt = 300, decode = 24;
  std::vector<std::vector<int32_t>> tokens(kSequences);
  for (auto& t : tokens)
    for (int i = 0; i < prompt + decode; i++) t.push_back(int32_t(rng() % uint64_t(arch.vocab)));
  // Prompts op by op in both (several tokens a sequence), then decode steps of 1, 3 and 4 sequences.
  for (int s = 0; s < kSequences; s++) {
    const PagedStep step = step_of({s}, tokens, 0, prompt - s * 97);
    model.forward_paged(fused, step);
    model.forward_paged(plain, step);
  }
  REQUIRE(fused.fused_decode_steps == 0);
  std::vector<int> length = {prompt, prompt - 97, prompt - 194, prompt - 291};
  double worst = 0;
  int decode_steps = 0;
  for (int i = 0; i < decode; i++) {
    const std::vector<int> sequences = i % 3 == 0 ? std::vector<int>{2} : i % 3 == 1 ? std::vector<int>{3, 0, 1}
                                                                                    : std::vector<int>{1, 3, 2, 0};
    PagedStep step;
    for (int s : sequences) {  // one token each, at its own position
      const PagedStep one = step_of({s}, tokens, length[size_t(s)], length[size_t(s)] + 1);
      step.sequences++;
      step.block_tables.insert(step.block_tables.end(), one.block_tables.begin(), one.block_tables.end());
      step.tokens.push_back(one.tokens[0]);
      step.positions.push_back(one.positions[0]);
      step.sequence.push_back(step.sequences - 1);
      step.slots.push_back(one.slots[0]);
      step.logit_rows.push_back(int32_t(step.tokens.size()) - 1);
      length[size_t(s)]++;
    }
    step.table_width = kTableWidth;
    const std::vector<float> want = model.forward_paged(plain, step), got = model.forward_paged(fused, step);
    REQUIRE(got.size() == want.size());
    const double error = max_relative_error(got, want);
    INFO("decode step ", i, " of ", sequences.size(), " sequences");
    CHECK(error <= tolerance);
    worst = std::max(worst, error);
    decode_steps++;
  }
  MESSAGE(precision, ": worst relative logit error over ", decode_steps, " decode steps: ", worst);
  CHECK(fused.fused_decode_steps == decode_steps);
  CHECK(plain.fused_decode_steps == 0);
}

}  // namespace

TEST_CASE("the persistent decode kernel gives op-by-op logits: llama, GQA 8/2 heads of 64") {
  const Architecture arch = widened("llama", 2);
  SUBCASE("fp32") { check_model(arch, "fp32", 1e-4); }
  SUBCASE("bf16") { check_model(arch, "bf16", 3e-2); }
}

TEST_CASE("the persistent decode kernel gives op-by-op logits: qwen2, q/k/v biases, one key head") {
  const Architecture arch = widened("qwen2", 1);
  REQUIRE(arch.qkv_bias);
  SUBCASE("fp32") { check_model(arch, "fp32", 1e-4); }
  SUBCASE("bf16") { check_model(arch, "bf16", 3e-2); }
}
