// Expert parallelism's dispatch and combine (model/expert_dispatch.hpp) without MPI: two ranks
// are two threads, each with its own copy of a tiny deepseek_v3, exchanging rows through a
// loopback RowExchange in shared memory. Each rank's loss must be the one-rank model's on its own
// batch, and the gradients must add up to the one-rank gradient of both batches: the dense ones
// as the sum of both ranks', each routed expert's wholly on the rank that runs it; the other ranks
// do not even hold it, nor its weights (Model::drop_gradients, drop_weights).
#include <doctest/doctest.h>

#include <barrier>
#include <cmath>
#include <cstring>
#include <exception>
#include <regex>
#include <string>
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

// Batch r of a run: the fixture's batch with its tokens shifted by 7r (mod the vocabulary).
TinyBatch batch_of_rank(int r, int vocab) {
  TinyBatch batch;
  for (int32_t& t : batch.tokens) t = (t + 7 * r) % vocab;
  for (int32_t& t : batch.targets)
    if (t >= 0) t = (t + 7 * r) % vocab;
  return batch;
}

bool close(float a, float b) { return std::fabs(a - b) <= 1e-6f + 1e-5f * std::fabs(b); }

// The routed expert a parameter belongs to (-1: none).
int routed_expert(const std::string& name) {
  static const std::regex routed(R"(.*\.mlp\.experts\.(\d+)\..*)");
  std::smatch match;
  return std::regex_match(name, match, routed) ? std::stoi(match[1].str()) : -1;
}

// The gradients of the routed experts rank r of P does not run (ascending).
std::vector<FlatSpan> others_experts(const Model& model, int r, int P) {
  std::vector<FlatSpan> out;
  const int per_rank = model.architecture().n_routed / P;
  for (const ParamView& v : model.parameter_views())
    if (const int e = routed_expert(v.name); e >= 0 && e / per_rank != r) out.push_back({v.offset, v.numel});
  return out;
}

// P ranks, one batch each, against one rank that runs all P batches.
void check_expert_parallel(int P, Recompute recompute) {
  const Architecture arch = tiny_deepseek(8, 3);  // two MoE layers, 4 routed experts: 4/P per rank
  std::vector<TinyBatch> batches;
  for (int r = 0; r < P; ++r) batches.push_back(batch_of_rank(r, arch.vocab));

  Model one(arch, 7);
  one.zero_grad();
  std::vector<float> one_loss(P);
  for (int r = 0; r < P; ++r)
    one_loss[r] = one.forward_backward(batches[r].tokens.data(), batches[r].targets.data(), batches[r].B, batches[r].T);
  const std::vector<float> one_grads = one.copy_gradients();
  const ExpertLoad one_load = one.expert_load();

  {
    Loopback shared(P);
    std::vector<Model> ranks;
    std::vector<LoopbackExchange> exchanges;
    for (int r = 0; r < P; ++r) {
      ranks.emplace_back(arch, 7);
      exchanges.emplace_back(shared, r);
    }
    std::vector<float> loss(P), eval_loss(P);
    std::vector<std::exception_ptr> failure(P);
    std::vector<std::thread> threads;
    for (int r = 0; r < P; ++r)
      threads.emplace_back([&, r] {
        try {
          Model& model = ranks[r];
          model.set_expert_exchange(&exchanges[r]);
          model.set_recompute(recompute);
          // Without the other ranks' experts' weights and gradients: the passes must not reach
          // for them (InternalError), and copy_gradients() gives 0 there.
          model.drop_weights(others_experts(model, r, P));
          model.drop_gradients(others_experts(model, r, P));
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

    for (int r = 0; r < P; ++r) {
      CHECK(close(loss[r], one_loss[r]));
      CHECK(close(eval_loss[r], one_loss[r]));
    }
    // Each rank counts the routing of its own tokens (in training and evaluation): together,
    // twice one rank's counts.
    std::vector<ExpertLoad> loads;
    for (Model& model : ranks) loads.push_back(model.expert_load());
    for (size_t layer = 0; layer < one_load.counts.size(); ++layer)
      for (size_t e = 0; e < one_load.counts[layer].size(); ++e) {
        int64_t total = 0;
        for (const ExpertLoad& load : loads) total += load.counts[layer][e];
        CHECK(total == 2 * one_load.counts[layer][e]);
      }

    std::vector<std::vector<float>> grads;
    for (int r = 0; r < P; ++r) {
      grads.push_back(ranks[r].copy_gradients());
      size_t dropped = 0;
      for (const FlatSpan& span : others_experts(ranks[r], r, P)) dropped += span.numel;
      CHECK(size_t(ranks[r].gradient_buffer().numel) == ranks[r].parameter_count() - dropped);
    }
    int experts_checked = 0;
    for (const ParamView& v : one.parameter_views()) {
      const int expert = routed_expert(v.name);
      const bool is_routed = expert >= 0;
      const int owner = is_routed ? expert / (arch.n_routed / P) : -1;
      experts_checked += is_routed;
      for (size_t i = 0; i < v.numel; ++i) {
        const size_t at = v.offset + i;
        float sum = 0, elsewhere = 0;  // elsewhere: what ranks that do not run the expert hold
        for (int r = 0; r < P; ++r) {
          sum += grads[r][at];
          if (is_routed && r != owner) elsewhere += std::fabs(grads[r][at]);
        }
        const float got = is_routed ? grads[owner][at] : sum;
        if (!close(got, one_grads[at]) || elsewhere != 0.0f) {
          FAIL_CHECK(v.name, "[", i, "]: ", got, " (and ", elsewhere, " elsewhere), one rank ", one_grads[at]);
          break;
        }
      }
    }
    CHECK(experts_checked == 2 * 4 * 3);  // two MoE layers, 4 experts, gate/up/down
  }
}

}  // namespace

TEST_CASE("expert parallelism on 2 ranks: the losses, loads and gradients of one rank on both batches") {
  check_expert_parallel(2, Recompute::none);
  check_expert_parallel(2, Recompute::full);
}

// One expert per rank: fewer than the K = 2 a token picks, so at most one row per token arrives.
TEST_CASE("expert parallelism on 4 ranks, one expert each") { check_expert_parallel(4, Recompute::none); }

TEST_CASE("expert parallelism needs routed experts in a multiple of the ranks") {
  Loopback shared(3);
  LoopbackExchange exchange(shared, 0);
  Model moe(tiny_deepseek(8), 1);  // 4 routed experts
  CHECK_THROWS_AS(moe.set_expert_exchange(&exchange), dsk::UsageError);
  Model dense(tiny_llama(), 1);
  CHECK_THROWS_AS(dense.set_expert_exchange(&exchange), dsk::UsageError);
}
