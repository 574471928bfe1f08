// Runs sequences through Model::forward_paged in random chunkings (shared by the paged forward's
// unit test and its GPU parity test): each step, every unfinished sequence, in random order, gets
// one decode-sized token or a random prefill chunk; each sequence's blocks are a random sample of
// the pool (block size 4, 40 blocks, tables of 8), and every new token's logits are asked for.
#pragma once

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

#include "model/model.hpp"
#include "model/paged_forward.hpp"

namespace dsk::model::testing {

struct ChunkedRun {
  std::vector<float> logits;              // [rows, V], in step order
  std::vector<std::pair<int, int>> rows;  // (sequence, position) of each row
  int steps = 0;
};

inline ChunkedRun run_random_chunkings(Model& model, const std::vector<std::vector<int32_t>>& sequences,
                                       uint64_t seed) {
  const int block_size = 4, S = int(sequences.size());
  PagedPlan plan;
  plan.blocks = 40;
  plan.block_size = block_size;
  plan.max_tokens = 64;
  plan.max_sequences = S;
  plan.max_blocks = 8;
  plan.max_logit_rows = 64;
  PagedWorkspace workspace = model.new_paged_workspace(plan);
  std::mt19937_64 rng(seed);
  std::vector<int32_t> pool(static_cast<size_t>(plan.blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<std::vector<int32_t>> tables(static_cast<size_t>(S));
  for (int s = 0; s < S; s++)
    tables[s].assign(pool.begin() + s * plan.max_blocks, pool.begin() + (s + 1) * plan.max_blocks);

  ChunkedRun run;
  std::vector<int> done(static_cast<size_t>(S), 0);
  auto finished = [&] {
    for (int s = 0; s < S; s++)
      if (done[s] < int(sequences[s].size())) return false;
    return true;
  };
  while (!finished()) {
    PagedStep step;
    std::vector<int> order(static_cast<size_t>(S));
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int s : order) {
      const int left = int(sequences[s].size()) - done[s];
      if (left == 0) continue;
      const int count = rng() % 2 ? 1 : 1 + int(rng() % uint64_t(left));
      const int row_of_sequence = step.sequences++;
      step.block_tables.insert(step.block_tables.end(), tables[s].begin(), tables[s].end());
      for (int t = done[s]; t < done[s] + count; t++) {
        step.tokens.push_back(sequences[s][t]);
        step.positions.push_back(t);
        step.sequence.push_back(row_of_sequence);
        step.slots.push_back(tables[s][t / block_size] * block_size + t % block_size);
        step.logit_rows.push_back(int32_t(step.tokens.size()) - 1);
        run.rows.emplace_back(s, t);
      }
      done[s] += count;
    }
    std::vector<float> logits = model.forward_paged(workspace, step);
    run.logits.insert(run.logits.end(), logits.begin(), logits.end());
    run.steps++;
  }
  return run;
}

// Sequences of the given lengths of random tokens below vocab.
inline std::vector<std::vector<int32_t>> random_sequences(const std::vector<int>& lengths, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> out;
  for (int length : lengths) {
    std::vector<int32_t> tokens;
    for (int t = 0; t < length; t++) tokens.push_back(int32_t(rng() % uint64_t(vocab)));
    out.push_back(std::move(tokens));
  }
  return out;
}

}  // namespace dsk::model::testing
