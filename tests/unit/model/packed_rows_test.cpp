// Packed rows (Model::set_segment_starts) against the same examples run one by one: each
// example's logits and loss, and the gradient of the batch's loss, must be those of the examples
// alone (attention within each example, RoPE positions from 0 in each). fp32 on the CPU; only the
// order of sums differs, so the tolerance is 1e-5 relative plus 1e-6 absolute (measured: ~1e-7).
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "model/model.hpp"
#include "tiny_models.hpp"

using namespace dsk::model;
using namespace dsk::model::testing;

namespace {

struct Example {
  std::vector<int32_t> tokens, targets;
};

// Three examples of 4, 3 and 5 positions (some targets ignored, as prompts are).
std::vector<Example> examples() {
  return {{{1, 5, 9, 2}, {-100, 9, 2, 7}},
          {{3, 11, 20}, {11, 20, 4}},
          {{7, 7, 1, 30, 12}, {-100, -100, 30, 12, 2}}};
}

// Rows of T positions: examples 0 and 1 in row 0, example 2 in row 1, the tails padded (token 0,
// target -100, a segment of their own). keep: the example whose targets count (-1: all of them).
struct Packed {
  int B = 2, T = 8;
  std::vector<int32_t> tokens, targets, segment_start;
};
Packed pack(const std::vector<Example>& e, int keep = -1) {
  Packed p;
  const std::vector<std::vector<int>> rows = {{0, 1}, {2}};
  for (const std::vector<int>& row : rows) {
    int used = 0;
    for (int i : row) {
      for (size_t t = 0; t < e[i].tokens.size(); t++) {
        p.tokens.push_back(e[i].tokens[t]);
        p.targets.push_back(keep < 0 || keep == i ? e[i].targets[t] : -100);
        p.segment_start.push_back(used);
      }
      used += int(e[i].tokens.size());
    }
    for (int t = used; t < p.T; t++) {
      p.tokens.push_back(0);
      p.targets.push_back(-100);
      p.segment_start.push_back(used);
    }
  }
  return p;
}

int counted(const std::vector<int32_t>& targets) {
  int n = 0;
  for (int32_t t : targets) n += t != -100;
  return n;
}

bool close(double a, double b) { return std::abs(a - b) <= 1e-6 + 1e-5 * std::abs(b); }

void check_packed_matches_one_by_one(const Architecture& arch) {
  Model model(arch, 7);
  const std::vector<Example> e = examples();
  const Packed all = pack(e);

  // Loss of each example: the packed batch with only its targets counted.
  for (int i = 0; i < 3; i++) {
    const Packed only = pack(e, i);
    model.set_segment_starts(only.segment_start);
    const float packed = model.forward(only.tokens.data(), only.targets.data(), only.B, only.T);
    model.set_segment_starts({});
    const float alone = model.forward(e[i].tokens.data(), e[i].targets.data(), 1, int(e[i].tokens.size()));
    CHECK(close(packed, alone));
  }

  // Logits of every example's positions.
  model.set_segment_starts(all.segment_start);
  const std::vector<float> packed_logits = model.logits(all.tokens.data(), all.B, all.T);
  model.set_segment_starts({});
  const int V = arch.vocab;
  const int first[3] = {0, 4, 8};  // where each example starts in the packed [B*T] positions
  for (int i = 0; i < 3; i++) {
    const std::vector<float> alone = model.logits(e[i].tokens.data(), 1, int(e[i].tokens.size()));
    for (size_t j = 0; j < alone.size(); j++) CHECK(close(packed_logits[size_t(first[i]) * V + j], alone[j]));
  }

  // Gradient of the packed batch's mean loss = the examples' gradients weighted by their share of
  // the counted targets.
  model.zero_grad();
  model.set_segment_starts(all.segment_start);
  model.forward_backward(all.tokens.data(), all.targets.data(), all.B, all.T);
  model.set_segment_starts({});
  const std::vector<float> packed_grad(model.gradients().begin(), model.gradients().end());
  model.zero_grad();
  const int total = counted(all.targets);
  for (const Example& x : e)
    model.forward_backward(x.tokens.data(), x.targets.data(), 1, int(x.tokens.size()), -100,
                           float(counted(x.targets)) / float(total));
  const std::vector<float> alone_grad(model.gradients().begin(), model.gradients().end());
  double worst = 0;
  int bad = 0;
  for (size_t j = 0; j < packed_grad.size(); j++) {
    worst = std::max(worst, double(std::abs(packed_grad[j] - alone_grad[j])));
    bad += close(packed_grad[j], alone_grad[j]) ? 0 : 1;
  }
  INFO("largest gradient difference ", worst);
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("packed rows: llama (GQA) matches the examples run one by one") {
  check_packed_matches_one_by_one(tiny_llama());
}

TEST_CASE("packed rows: qwen2 (qkv bias, MQA) matches the examples run one by one") {
  check_packed_matches_one_by_one(tiny_qwen2());
}

TEST_CASE("packed rows: deepseek_v3 (MLA, MoE) matches the examples run one by one") {
  check_packed_matches_one_by_one(tiny_deepseek(8));
}

TEST_CASE("packed rows: segment starts that are not consecutive examples are usage errors") {
  Model model(tiny_llama(), 1);
  const std::vector<int32_t> tokens(8, 1), targets(8, 2);
  for (const std::vector<int32_t>& bad : {std::vector<int32_t>{0, 0, 0, 1, 1, 1, 1, 1},   // 1 at position 3
                                          std::vector<int32_t>{0, 0, 2, 2, 0, 0, 0, 0},   // back to 0
                                          std::vector<int32_t>{0, 0, 0}}) {               // wrong size
    model.set_segment_starts(bad);
    CHECK_THROWS_AS(model.forward(tokens.data(), targets.data(), 1, 8), dsk::UsageError);
  }
  model.set_segment_starts(std::vector<int32_t>{0, 0, 2, 2, 2, 5, 5, 5});
  CHECK_NOTHROW(model.forward(tokens.data(), targets.data(), 1, 8));
  KvCache cache = model.new_kv_cache(1, 8);
  CHECK_THROWS_AS(model.forward_cached(cache, tokens.data(), 1, 8), dsk::UsageError);
}
