// Expert parallelism's dispatch and combine (model/expert_dispatch.hpp) without MPI: two ranks
// are two threads, each with its own copy of a tiny deepseek_v3, exchanging rows through a
// loopback RowExchange in shared memory. Each rank's loss must be the one-rank model's on its own
// batch, and the gradients must add up to the one-rank gradient of both batches: the dense ones
// as the sum of both ranks', each routed expert's wholly on the rank that runs it (0 on the other).
#include <doctest/doctest.h>

#include <barrier>
#include <cmath>
#include <cstring>
#include <exception>
#include <regex>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "model/expert_dispatch.hpp"
#include "model/model.hpp"
#include "tiny_models.hpp"

using namespace dsk::model;
using namespace dsk::model::testing;

namespace {

// What the ranks post to each other for one all-to-all, in host memory (the CPU backend's).
struct Loopback {
  explicit Loopback(int ranks) : posted(ranks), sync(ranks) {}
  struct Posted {
    const char* data = nullptr;
    std::vector<int64_t> counts;
    size_t element = 0;
  };
  std::vector<Posted> posted;
  std::barrier<> sync;
};

class LoopbackExchange : public RowExchange {
 public:
  LoopbackExchange(Loopback& shared, int rank) : shared_(shared), rank_(rank) {}
  int rank() const override { return rank_; }
  int ranks() const override { return int(shared_.posted.size()); }
  void all_to_all(dsk::tensor::Buf send, std::span<const int64_t> send_counts, dsk::tensor::Buf recv,
                  std::span<const int64_t> recv_counts) override {
    const size_t element = dsk::tensor::dtype_size(send.dtype);
    shared_.posted[rank_] = {static_cast<const char*>(send.data), {send_counts.begin(), send_counts.end()}, element};
    shared_.sync.arrive_and_wait();
    char* out = static_cast<char*>(recv.data);
    for (int p = 0; p < ranks(); ++p) {
      const Loopback::Posted& from = shared_.posted[p];
      int64_t offset = 0;
      for (int q = 0; q < rank_; ++q) offset += from.counts[q];
      if (from.counts[rank_] != recv_counts[p]) throw dsk::InternalError("loopback: counts disagree");
      std::memcpy(out, from.data + offset * element, size_t(recv_counts[p]) * element);
      out += recv_counts[p] * element;
    }
    shared_.sync.arrive_and_wait();  // the senders may reuse their buffers only now
  }

 private:
  Loopback& shared_;
  int rank_;
};

TinyBatch other_batch() {
  TinyBatch batch;
  batch.tokens = {4, 8, 15, 16, 23, 31, 2, 6, 30, 12};
  batch.targets = {8, 15, 16, 23, 31, 2, 6, 30, 12, -100};
  return batch;
}

bool close(float a, float b) { return std::fabs(a - b) <= 1e-6f + 1e-5f * std::fabs(b); }

}  // namespace

TEST_CASE("expert parallelism on two ranks: the losses, loads and gradients of one rank on both batches") {
  const Architecture arch = tiny_deepseek(8, 3);  // two MoE layers, 4 routed experts: 2 per rank
  const TinyBatch batches[2] = {TinyBatch{}, other_batch()};

  Model one(arch, 7);
  one.zero_grad();
  float one_loss[2];
  for (int r = 0; r < 2; ++r)
    one_loss[r] = one.forward_backward(batches[r].tokens.data(), batches[r].targets.data(), batches[r].B, batches[r].T);
  const std::vector<float> one_grads = one.copy_gradients();
  const ExpertLoad one_load = one.expert_load();

  for (Recompute recompute : {Recompute::none, Recompute::full}) {
    CAPTURE(int(recompute));
    Loopback shared(2);
    std::vector<Model> ranks;
    for (int r = 0; r < 2; ++r) ranks.emplace_back(arch, 7);
    std::vector<LoopbackExchange> exchanges{{shared, 0}, {shared, 1}};
    float loss[2] = {0, 0}, eval_loss[2] = {0, 0};
    std::exception_ptr failure[2];
    std::vector<std::thread> threads;
    for (int r = 0; r < 2; ++r)
      threads.emplace_back([&, r] {
        try {
          Model& model = ranks[r];
          model.set_expert_exchange(&exchanges[r]);
          model.set_recompute(recompute);
          model.zero_grad();
          const TinyBatch& b = batches[r];
          loss[r] = model.forward_backward(b.tokens.data(), b.targets.data(), b.B, b.T);
          eval_loss[r] = model.forward(b.tokens.data(), b.targets.data(), b.B, b.T);
        } catch (...) {
          failure[r] = std::current_exception();
        }
      });
    for (std::thread& t : threads) t.join();
    for (auto& f : failure)
      if (f) std::rethrow_exception(f);

    for (int r = 0; r < 2; ++r) {
      CHECK(close(loss[r], one_loss[r]));
      CHECK(close(eval_loss[r], one_loss[r]));
    }
    // Each rank counts the routing of its own tokens: together, one rank's counts.
    const ExpertLoad load0 = ranks[0].expert_load(), load1 = ranks[1].expert_load();
    for (size_t layer = 0; layer < one_load.counts.size(); ++layer)
      for (size_t e = 0; e < one_load.counts[layer].size(); ++e)
        CHECK(load0.counts[layer][e] + load1.counts[layer][e] == 2 * one_load.counts[layer][e]);

    const std::vector<float> grads0 = ranks[0].copy_gradients(), grads1 = ranks[1].copy_gradients();
    const std::regex routed(R"(.*\.mlp\.experts\.(\d+)\..*)");
    int experts_checked = 0;
    for (const ParamView& v : one.parameter_views()) {
      std::smatch match;
      const bool is_routed = std::regex_match(v.name, match, routed);
      const int owner = is_routed ? std::stoi(match[1].str()) / (arch.n_routed / 2) : -1;
      experts_checked += is_routed;
      for (size_t i = 0; i < v.numel; ++i) {
        const size_t at = v.offset + i;
        const float expected = one_grads[at];
        const float got = is_routed ? (owner == 0 ? grads0[at] : grads1[at]) : grads0[at] + grads1[at];
        const float elsewhere = is_routed ? (owner == 0 ? grads1[at] : grads0[at]) : 0.0f;
        if (!close(got, expected) || elsewhere != 0.0f) {
          FAIL_CHECK(v.name, "[", i, "]: ", got, " (and ", elsewhere, " on the other rank), one rank ", expected);
          break;
        }
      }
    }
    CHECK(experts_checked == 2 * 4 * 3);  // two MoE layers, 4 experts, gate/up/down
  }
}

TEST_CASE("expert parallelism needs routed experts in a multiple of the ranks") {
  Loopback shared(3);
  LoopbackExchange exchange(shared, 0);
  Model moe(tiny_deepseek(8), 1);  // 4 routed experts
  CHECK_THROWS_AS(moe.set_expert_exchange(&exchange), dsk::UsageError);
  Model dense(tiny_llama(), 1);
  CHECK_THROWS_AS(dense.set_expert_exchange(&exchange), dsk::UsageError);
}
