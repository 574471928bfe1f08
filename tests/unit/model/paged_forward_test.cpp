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

#include "model/model.hpp"
#include "core/error.hpp"
#include "model/paged_forward.hpp"
#include "paged_chunking.hpp"

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
  const size_t V = size_t(model.architecture().vocab);
  const auto sequences = testing::random_sequences({23, 9, 31}, int(V), seed);
  std::vector<std::vector<float>> reference;
  for (const auto& tokens : sequences) reference.push_back(model.logits(tokens.data(), 1, int(tokens.size())));
  const testing::ChunkedRun run = testing::run_random_chunkings(model, sequences, seed);
  REQUIRE(run.logits.size() == run.rows.size() * V);
  CHECK(run.rows.size() == 23 + 9 + 31);
  CHECK(run.steps >= 2);
  for (size_t r = 0; r < run.rows.size(); r++) {
    auto [s, t] = run.rows[r];
    check_close(std::span<const float>(run.logits).subspan(r * V, V),
                std::span<const float>(reference[s]).subspan(size_t(t) * V, V),
                fixture + " sequence " + std::to_string(s) + " position " + std::to_string(t));
  }
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
    // The token variant recomputes the same step (rewriting the same keys) and returns the argmax.
    const std::vector<int32_t> greedy = model.forward_paged_tokens(workspace, step);
    REQUIRE(greedy.size() == 1);
    CHECK(greedy[0] == int32_t(std::max_element(paged.begin(), paged.end()) - paged.begin()));
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
  step.table_width = 1;  // tables as wide as the step needs
  step.block_tables = {2};
  step.slots = {8};
  step.logit_rows = {0};
  CHECK(model.forward_paged(workspace, step).size() == 128);
  step.positions = {4};  // position 4 needs a second block in its table
  CHECK_THROWS_AS(model.forward_paged(workspace, step), dsk::InternalError);
  step.table_width = 5;  // wider than the plan
  step.block_tables = {2, 0, 0, 0, 0};
  CHECK_THROWS_AS(model.forward_paged(workspace, step), dsk::InternalError);
  CHECK_THROWS_AS(model.new_paged_workspace(PagedPlan{-1, 0.9, 4, 8, 2, 4}), dsk::UsageError);
}
