// The paged forward (model/paged_forward.hpp) against the model's own reference on the HF
// fixtures (llama, qwen2, deepseek_v3 with and without q_lora): three sequences of different
// lengths run through random chunkings (prefill chunks and single decode tokens mixed in one
// step, sequences in random order), their keys/values in blocks scattered over the pool; every
// position's logits must equal Model::logits of the whole sequence, and the last position of a
// decode must equal forward_cached's.
// Tolerance (fp32): max |paged - reference| <= 1e-5 * max |reference| + 1e-6 (the paged
// attention sums in a different order; MLA's absorbed form reassociates q.(W latent)).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "model/model.hpp"
#include "core/error.hpp"
#include "model/paged_forward.hpp"

using namespace dsk::model;
namespace fs = std::filesystem;

namespace {

const fs::path kFixtures = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/models";

void check_close(std::span<const float> got, std::span<const float> want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  float scale = 0, diff = 0;
  for (size_t i = 0; i < want.size(); i++) {
    scale = std::max(scale, std::fabs(want[i]));
    diff = std::max(diff, std::fabs(got[i] - want[i]));
  }
  INFO(what << ": max difference " << diff << " at scale " << scale);
  CHECK(diff <= 1e-5f * scale + 1e-6f);
}

void check_random_chunkings(const std::string& fixture, uint64_t seed) {
  Model model = Model::load_hf_checkpoint(kFixtures / fixture / "checkpoint");
  const int V = model.architecture().vocab, block_size = 4;
  std::mt19937_64 rng(seed);
  const std::vector<int> lengths = {23, 9, 31};
  std::vector<std::vector<int32_t>> sequences;
  std::vector<std::vector<float>> reference;
  for (int length : lengths) {
    std::vector<int32_t> tokens(static_cast<size_t>(length));
    for (int32_t& t : tokens) t = int32_t(rng() % uint64_t(V));
    reference.push_back(model.logits(tokens.data(), 1, length));
    sequences.push_back(std::move(tokens));
  }
  PagedPlan plan;
  plan.blocks = 40;
  plan.block_size = block_size;
  plan.max_tokens = 64;
  plan.max_sequences = 3;
  plan.max_blocks = 8;
  plan.max_logit_rows = 64;
  PagedWorkspace workspace = model.new_paged_workspace(plan);
  CHECK(workspace.plan.blocks == 40);

  // Each sequence's blocks: a random sample of the pool, so tables are not contiguous.
  std::vector<int32_t> pool(size_t(plan.blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<std::vector<int32_t>> tables(3);
  for (int s = 0; s < 3; s++)
    tables[s].assign(pool.begin() + s * plan.max_blocks, pool.begin() + (s + 1) * plan.max_blocks);

  std::vector<int> done(3, 0);
  int steps = 0;
  while (done != lengths) {
    PagedStep step;
    std::vector<int> order = {0, 1, 2};
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::pair<int, int>> rows;  // (sequence, position) of each logit row
    for (int s : order) {
      const int left = lengths[s] - done[s];
      if (left == 0) continue;
      // A decode-sized chunk half the time, else a random prefill chunk (possibly the whole rest).
      const int count = rng() % 2 ? 1 : 1 + int(rng() % uint64_t(left));
      const int row_of_sequence = step.sequences++;
      step.block_tables.insert(step.block_tables.end(), tables[s].begin(), tables[s].end());
      for (int t = done[s]; t < done[s] + count; t++) {
        step.tokens.push_back(sequences[s][t]);
        step.positions.push_back(t);
        step.sequence.push_back(row_of_sequence);
        step.slots.push_back(tables[s][t / block_size] * block_size + t % block_size);
        step.logit_rows.push_back(int32_t(step.tokens.size()) - 1);
        rows.emplace_back(s, t);
      }
      done[s] += count;
    }
    std::vector<float> logits = model.forward_paged(workspace, step);
    REQUIRE(logits.size() == rows.size() * size_t(V));
    for (size_t r = 0; r < rows.size(); r++) {
      auto [s, t] = rows[r];
      check_close(std::span<const float>(logits).subspan(r * V, V),
                  std::span<const float>(reference[s]).subspan(size_t(t) * V, V),
                  fixture + " sequence " + std::to_string(s) + " position " + std::to_string(t));
    }
    steps++;
  }
  CHECK(steps >= 2);
}

// Decode through the paged cache step by step from a one-step prefill, against forward_cached.
void check_decode_matches_forward_cached(const std::string& fixture) {
  Model model = Model::load_hf_checkpoint(kFixtures / fixture / "checkpoint");
  const int V = model.architecture().vocab;
  const std::vector<int32_t> tokens = {3, 17, 5, 99, 42, 8, 64, 1, 27, 11};
  PagedPlan plan{6, 0.9, 2, 16, 1, 6};
  PagedWorkspace workspace = model.new_paged_workspace(plan);
  const std::vector<int32_t> table = {5, 0, 3, 1, 4, 2};
  KvCache cache = model.new_kv_cache(1, int(tokens.size()));
  int done = 0;
  for (int count : {6, 1, 1, 1, 1}) {
    PagedStep step;
    step.sequences = 1;
    step.block_tables = table;
    for (int t = done; t < done + count; t++) {
      step.tokens.push_back(tokens[t]);
      step.positions.push_back(t);
      step.sequence.push_back(0);
      step.slots.push_back(table[t / 2] * 2 + t % 2);
    }
    step.logit_rows = {count - 1};
    std::vector<float> paged = model.forward_paged(workspace, step);
    std::vector<float> cached = model.forward_cached(cache, tokens.data() + done, 1, count);
    REQUIRE(paged.size() == size_t(V));
    check_close(paged, cached, fixture + " after " + std::to_string(done + count) + " tokens");
    done += count;
  }
}

}  // namespace

TEST_CASE("paged forward over random chunkings equals the full forward: llama") {
  check_random_chunkings("llama", 1);
  check_random_chunkings("llama", 2);
}
TEST_CASE("paged forward over random chunkings equals the full forward: qwen2") { check_random_chunkings("qwen2", 3); }
TEST_CASE("paged forward over random chunkings equals the full forward: deepseek_v3 (MLA absorbed, MoE)") {
  check_random_chunkings("deepseek_v3", 4);
  check_random_chunkings("deepseek_v3_no_q_lora", 5);
}
TEST_CASE("paged decode equals forward_cached token by token") {
  for (const char* fixture : {"llama", "qwen2", "deepseek_v3"}) check_decode_matches_forward_cached(fixture);
}

TEST_CASE("a step that does not fit its plan, or points outside the pool, is refused") {
  Model model = Model::load_hf_checkpoint(kFixtures / "llama" / "checkpoint");
  PagedPlan plan{4, 0.9, 4, 8, 2, 4};
  PagedWorkspace workspace = model.new_paged_workspace(plan);
  PagedStep step;
  step.sequences = 1;
  step.block_tables = {0, 1, 2, 3};
  step.tokens = {1};
  step.positions = {0};
  step.sequence = {0};
  step.slots = {16};  // 4 blocks x 4 = slots 0..15
  CHECK_THROWS_AS(model.forward_paged(workspace, step), dsk::InternalError);
  step.slots = {0};
  step.block_tables = {0, 1, 2, 4};
  CHECK_THROWS_AS(model.forward_paged(workspace, step), dsk::InternalError);
  step.block_tables = {0, 1, 2, 3};
  CHECK(model.forward_paged(workspace, step).empty());  // no logit rows asked for
  CHECK_THROWS_AS(model.new_paged_workspace(PagedPlan{-1, 0.9, 4, 8, 2, 4}), dsk::UsageError);
}
