// Packing (data.packing): examples in order in full rows, each with the targets it has in a padded
// row (shifted to where it sits) and a segment of its own; every example once per epoch, the
// stream a pure function of the cursor; validation rows packed in file order; the config keys.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <numeric>

#include "core/error.hpp"
#include "finetune/finetune_config.hpp"
#include "finetune/packing.hpp"

using namespace dsk;
using namespace dsk::finetune;

namespace {

// Example i: 2 + i % 5 ids, all distinct across examples (100 i + j), the first id the prompt.
std::vector<TokenizedExample> examples(int n) {
  std::vector<TokenizedExample> out;
  for (int i = 0; i < n; ++i) {
    TokenizedExample e;
    for (int j = 0; j < 2 + i % 5; ++j) {
      e.ids.push_back(100 * i + j);
      e.trained.push_back(j > 0);
    }
    out.push_back(e);
  }
  return out;
}

TokenizedSet as_set(std::vector<TokenizedExample> e) {
  TokenizedSet set;
  set.examples = std::move(e);
  return set;
}

constexpr int32_t kPad = 7;

// Checks one packed row against the examples: segments, tokens, targets; returns the examples
// (by their first id / 100) in the order they sit in the row.
std::vector<int> check_row(const train::Batch& batch, int b, int T) {
  std::vector<int> found;
  int t = 0;
  while (t < T) {
    const int32_t* tokens = batch.tokens.data() + size_t(b) * T;
    const int32_t* targets = batch.targets.data() + size_t(b) * T;
    const int32_t* starts = batch.segment_start.data() + size_t(b) * T;
    const int start = t;
    while (t < T && starts[t] == start) ++t;
    if (tokens[start] == kPad) {  // the tail: padding to the row's end
      CHECK(t == T);
      for (int u = start; u < T; ++u) CHECK(targets[u] == -100);
      break;
    }
    const int example = tokens[start] / 100, length = 1 + example % 5;  // ids - 1
    CHECK(t - start == length);
    for (int j = 0; j < length; ++j) {
      CHECK(tokens[start + j] == 100 * example + j);
      CHECK(targets[start + j] == 100 * example + j + 1);  // every id but the first is trained
    }
    found.push_back(example);
  }
  return found;
}

}  // namespace

TEST_CASE("packing fills rows in order, each example with its own targets and segment") {
  const int T = 8;
  const std::vector<TokenizedExample> e = examples(23);
  const auto rows = pack_in_order(e, T);
  std::vector<uint32_t> flat;
  for (const auto& row : rows) {
    int used = 0;
    for (uint32_t i : row) used += packed_length(e[i]);
    CHECK(used <= T);
    flat.insert(flat.end(), row.begin(), row.end());
  }
  std::vector<uint32_t> all(e.size());
  std::iota(all.begin(), all.end(), 0u);
  CHECK(flat == all);
  for (size_t r = 0; r + 1 < rows.size(); ++r)  // next-fit: the next row's first example did not fit
    CHECK(std::accumulate(rows[r].begin(), rows[r].end(), 0,
                          [&](int sum, uint32_t i) { return sum + packed_length(e[i]); }) +
              packed_length(e[rows[r + 1][0]]) > T);

  const RowUsage usage = row_usage(e, T);
  CHECK(usage.packed_rows == rows.size());
  CHECK(usage.padded_rows == 23);
  CHECK(usage.positions == std::accumulate(e.begin(), e.end(), int64_t(0), [](int64_t s, const TokenizedExample& x) {
          return s + int64_t(x.ids.size()) - 1;
        }));
  CHECK(usage.padding_fraction(usage.packed_rows, T) < usage.padding_fraction(usage.padded_rows, T));
}

TEST_CASE("the packed stream draws every example once per epoch, reproducibly from the cursor") {
  const int T = 8, B = 2, n = 23;
  InstructionBatches a(as_set(examples(n)), as_set(examples(5)), kPad, 1000, 3, T);
  CHECK(a.train_rows() == pack_in_order(examples(n), T).size());
  train::Batch batch;
  std::map<int, int> seen;
  while (a.cursor() < uint64_t(n)) {
    const uint64_t before = a.cursor();
    a.next(batch, B, T);
    REQUIRE(batch.segment_start.size() == size_t(B) * T);
    size_t in_batch = 0;
    for (int b = 0; b < B; ++b)
      for (int example : check_row(batch, b, T)) {
        seen[example]++;
        in_batch++;
      }
    CHECK(a.cursor() - before == in_batch);
  }
  // The first epoch ends inside the last batch: its later rows hold examples of the second.
  for (int i = 0; i < n; ++i) CHECK(seen[i] >= 1);
  InstructionBatches b(as_set(examples(n)), as_set(examples(5)), kPad, 1000, 3, T);
  b.set_cursor(a.cursor());
  train::Batch again, other;
  a.next(again, B, T);
  b.next(other, B, T);
  CHECK(again.tokens == other.tokens);
  CHECK(again.targets == other.targets);
  CHECK(again.segment_start == other.segment_start);

  // Validation: examples 0..4 (2+3+4+5+6 ids: 1+2+3+4+5 positions) packed in file order into rows of 8.
  CHECK(a.val_rows() == 3);
  a.validation_batch(1, batch, B, T);
  CHECK(check_row(batch, 0, T) == std::vector<int>{4});
  CHECK(check_row(batch, 1, T).empty());  // past the last row: padding
  a.validation_batch(0, batch, B, T);
  CHECK(check_row(batch, 0, T) == std::vector<int>{0, 1, 2});
  CHECK(check_row(batch, 1, T) == std::vector<int>{3});
}

TEST_CASE("data.packing and TRL's flat packing key") {
  Config nested = Config::from_text(finetune_schema(), "model_name: b\ntrain_file: d.jsonl\n", "test.yaml", {}, {});
  map_flat_keys(nested);
  CHECK(!nested.get_bool("data.packing"));
  Config flat = Config::from_text(finetune_schema(), "model_name: b\ntrain_file: d.jsonl\npacking: true\n", "test.yaml", {}, {});
  const std::vector<std::string> mapped = map_flat_keys(flat);
  CHECK(std::find(mapped.begin(), mapped.end(), "packing -> data.packing (test.yaml:3)") != mapped.end());
  CHECK(flat.get_bool("data.packing"));
}
