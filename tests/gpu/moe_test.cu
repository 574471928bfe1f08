// DeepSeekMoE kernels (kernels/cuda/moe.cuh) against their CPU references: the router against
// cpu::moe_route_forward/backward; the permutation, gather, combine, bias update and sequence-wise
// aux loss against kernels/cpu/moe_dispatch.cpp (the permutation is its stable counting sort); the
// grouped GEMMs against cpu::matmul_forward/backward run expert by expert; and bit-exact repeats.
// Tolerances (relative L2, parity.cuh): fp32 1e-5; bf16 storage 1e-2; router scores and weights
// are fp32 outputs for both element types: 1e-5; experts, offsets, orders and copies: exact.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.hpp"
#include "cpu/kernels.hpp"
#include "cuda/moe.cuh"
#include "parity.cuh"

using namespace dsk;
using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

constexpr double kFp32Tolerance = 1e-5;

template <typename E>
void to_device(DeviceBuffer<E>& buffer, const std::vector<E>& host) {
  REQUIRE(host.size() == buffer.size());
  DSK_CUDA_CHECK(cudaMemcpy(buffer.get(), host.data(), host.size() * sizeof(E), cudaMemcpyHostToDevice));
}

template <typename E>
std::vector<E> to_host(const DeviceBuffer<E>& buffer) {
  DSK_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<E> host(buffer.size());
  DSK_CUDA_CHECK(cudaMemcpy(host.data(), buffer.get(), host.size() * sizeof(E), cudaMemcpyDeviceToHost));
  return host;
}

// The bytes of a device buffer, for bit-exact comparisons of repeated runs.
template <typename E>
std::vector<unsigned char> bits_of(const DeviceBuffer<E>& buffer) {
  const std::vector<E> host = to_host(buffer);
  std::vector<unsigned char> bytes(host.size() * sizeof(E));
  std::memcpy(bytes.data(), host.data(), bytes.size());
  return bytes;
}

// K distinct experts per token out of [0, E), never `unused` (-1: all allowed).
std::vector<int32_t> random_routing(int N, int K, int E, uint64_t seed, int unused = -1) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> allowed;
  for (int e = 0; e < E; e++)
    if (e != unused) allowed.push_back(e);
  std::vector<int32_t> experts((size_t)N * K);
  for (int n = 0; n < N; n++) {
    std::shuffle(allowed.begin(), allowed.end(), rng);
    std::copy(allowed.begin(), allowed.begin() + K, experts.begin() + (int64_t)n * K);
  }
  return experts;
}

// The reference permutation (cpu::moe_permute: a stable counting sort of the pairs by expert).
struct HostPermutation {
  std::vector<int32_t> offsets, order, row_of;
  std::vector<int64_t> load;
};

HostPermutation host_permute(const std::vector<int32_t>& experts, int N, int K, int E,
                             std::vector<int64_t> load = {}) {
  HostPermutation h{std::vector<int32_t>(E + 1), std::vector<int32_t>(experts.size()),
                    std::vector<int32_t>(experts.size()), load.empty() ? std::vector<int64_t>(E, 0) : load};
  cpu::moe_permute(h.offsets.data(), h.order.data(), h.row_of.data(), h.load.data(), experts.data(), N, K, E);
  return h;
}

// ---- router

float host_sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// True when the CPU's selection for one token has margins (1e-4) far beyond the few ulps by which
// the GPU's expf may differ: between the last selected and first rejected group score, and
// between consecutive values among the K+1 best candidates (equal masked zeros tie exactly).
bool well_separated(const float* logits, const std::vector<float>& bias, const cpu::RouterConfig& r) {
  constexpr float margin = 1e-4f;
  const int E = r.n_experts, per_group = E / r.n_group;
  std::vector<float> choice(E);
  for (int e = 0; e < E; e++) choice[e] = host_sigmoid(logits[e]) + bias[e];
  std::vector<std::pair<float, int>> groups;
  for (int g = 0; g < r.n_group; g++) {
    std::vector<float> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
    std::sort(members.begin(), members.end(), std::greater<>());
    groups.push_back({members[0] + (per_group > 1 ? members[1] : 0.0f), g});
  }
  std::sort(groups.begin(), groups.end(), std::greater<>());
  if (r.topk_group < r.n_group && groups[r.topk_group - 1].first - groups[r.topk_group].first < margin) return false;
  std::vector<float> masked(E, 0.0f);
  for (int i = 0; i < r.topk_group; i++)
    for (int e = groups[i].second * per_group; e < (groups[i].second + 1) * per_group; e++) masked[e] = choice[e];
  std::sort(masked.begin(), masked.end(), std::greater<>());
  for (int i = 0; i < std::min(r.top_k, E - 1); i++) {
    const bool masked_zeros = masked[i] == 0.0f && masked[i + 1] == 0.0f;
    if (!masked_zeros && masked[i] - masked[i + 1] < margin) return false;
  }
  return true;
}

// Logits [N,E] (rounded through T) whose every token passes well_separated.
template <typename T>
std::vector<float> separated_logits(int N, const std::vector<float>& bias, const cpu::RouterConfig& r, uint64_t seed) {
  const int E = r.n_experts;
  std::vector<float> logits((size_t)N * E);
  for (int n = 0; n < N; n++) {
    for (int attempt = 0;; attempt++) {
      REQUIRE(attempt < 1000);
      const std::vector<float> row = rounded<T>(random_floats(E, seed++, 2.0f));
      if (!well_separated(row.data(), bias, r)) continue;
      std::copy(row.begin(), row.end(), logits.begin() + (int64_t)n * E);
      break;
    }
  }
  return logits;
}

struct RouterCase {
  const char* name;
  cpu::RouterConfig config;
  int N;
};

const RouterCase kRouterCases[] = {
    {"fixture: 8 experts, top-2", {8, 2, 1, 1, true, 1.0f}, 16},
    {"group limit: 4 groups of 2, best 2 groups, top-3", {8, 3, 4, 2, true, 2.5f}, 16},
    {"bench: 16 experts, top-4, no renormalisation", {16, 4, 1, 1, false, 1.0f}, 8192},
    {"DeepSeek-V3: 256 experts in 8 groups, best 4, top-8", {256, 8, 8, 4, true, 2.5f}, 1000},
    {"16 groups of 2, best 3, top-16 (zeros of masked groups chosen too)", {32, 16, 16, 3, true, 1.0f}, 333},
};

// cpu::moe_route_forward's outputs for N tokens.
struct Routing {
  std::vector<float> scores, weights;
  std::vector<int32_t> experts;
};

Routing cpu_route(const std::vector<float>& logits, const std::vector<float>& bias, const cpu::RouterConfig& r, int N) {
  Routing out{std::vector<float>((size_t)N * r.n_experts), std::vector<float>((size_t)N * r.top_k),
              std::vector<int32_t>((size_t)N * r.top_k)};
  cpu::moe_route_forward(out.scores.data(), out.experts.data(), out.weights.data(), logits.data(), bias.data(), r, N);
  return out;
}

// The experts of each token come from at most topk_group groups.
void check_group_limit(const std::vector<int32_t>& experts, const cpu::RouterConfig& r, int N) {
  const int per_group = r.n_experts / r.n_group;
  for (int n = 0; n < N; n++) {
    std::vector<int> groups;
    for (int k = 0; k < r.top_k; k++) groups.push_back(experts[(size_t)n * r.top_k + k] / per_group);
    std::sort(groups.begin(), groups.end());
    const int distinct = int(std::unique(groups.begin(), groups.end()) - groups.begin());
    if (distinct > r.topk_group) FAIL_CHECK("token " << n << " uses " << distinct << " groups");
  }
}

// ---- grouped GEMMs

struct GroupedCase {
  const char* name;
  int C, OC;
  std::vector<int> counts;  // rows per expert
};

std::vector<int> random_counts(int E, int rows, int empty_expert, uint64_t seed) {
  const std::vector<int32_t> routing = random_routing(rows, 1, E, seed, empty_expert);
  std::vector<int> counts(E, 0);
  for (int32_t e : routing) counts[e]++;
  return counts;
}

std::vector<int> all_rows_to(int E, int expert, int rows) {
  std::vector<int> counts(E, 0);
  counts[expert] = rows;
  return counts;
}

std::vector<GroupedCase> grouped_cases() {
  return {
      {"fixture gate/up (C=32 -> 16)", 32, 16, random_counts(8, 32, 3, 11)},
      {"fixture down (16 -> 32)", 16, 32, random_counts(8, 32, 0, 12)},
      {"fixture, all rows in one expert", 32, 16, all_rows_to(8, 5, 32)},
      {"odd multiples of 8 (C=40 -> 24), 1001 rows", 40, 24, random_counts(5, 1001, 4, 13)},
      {"C=24 -> 40, all 999 rows in the first expert", 24, 40, all_rows_to(4, 0, 999)},
      {"not multiples of 8 (C=20 -> 12): SIMT for bf16 too", 20, 12, random_counts(3, 77, 1, 14)},
      {"no rows at all: the weight gradients stay as they were", 32, 16, std::vector<int>(4, 0)},
      {"bench gate/up (1024 -> 512), 32768 rows over 16 experts", 1024, 512, random_counts(16, 32768, 7, 15)},
      {"bench down (512 -> 1024)", 512, 1024, random_counts(16, 32768, -1, 16)},
  };
}

std::vector<int32_t> offsets_of(const std::vector<int>& counts) {
  std::vector<int32_t> offsets(counts.size() + 1, 0);
  for (size_t e = 0; e < counts.size(); e++) offsets[e + 1] = offsets[e] + counts[e];
  return offsets;
}

// The reference: cpu::matmul_forward / matmul_backward on each expert's rows (rows of expert e
// are offsets[e]..offsets[e+1]; W_e at e * stride). dinp and dweight accumulate.
struct HostGrouped {
  std::vector<float> out, dinp, dweight;
};

void host_grouped(HostGrouped& h, const std::vector<float>& inp, const std::vector<float>& weight,
                  const std::vector<float>& dout, const std::vector<int32_t>& offsets, int64_t stride, int C, int OC) {
  for (size_t e = 0; e + 1 < offsets.size(); e++) {
    const int begin = offsets[e], n = offsets[e + 1] - begin;
    if (n == 0) continue;
    const float* w = weight.data() + e * stride;
    cpu::matmul_forward(h.out.data() + (int64_t)begin * OC, inp.data() + (int64_t)begin * C, w, nullptr, n, C, OC);
    cpu::matmul_backward(h.dinp.data() + (int64_t)begin * C, h.dweight.data() + e * stride, nullptr,
                         dout.data() + (int64_t)begin * OC, inp.data() + (int64_t)begin * C, w, n, C, OC);
  }
}

// ---- aux loss

std::vector<float> sigmoid_scores(int N, int E, uint64_t seed) {
  std::vector<float> s = random_floats((size_t)N * E, seed, 2.0f);
  for (float& x : s) x = host_sigmoid(x);
  return s;
}

}  // namespace

TEST_CASE_TEMPLATE("moe_route_forward picks the CPU's experts, weights and scores", T, float, bf16) {
  uint64_t seed = 100;
  for (const RouterCase& c : kRouterCases) {
    CAPTURE(c.name);
    const cpu::RouterConfig& r = c.config;
    const int N = c.N, E = r.n_experts, K = r.top_k;
    const std::vector<float> bias = random_floats(E, seed++, 0.05f);
    const std::vector<float> logits = separated_logits<T>(N, bias, r, seed);
    seed += 100000;
    const Routing want = cpu_route(logits, bias, r, N);

    DeviceBuffer<T> logits_d(logits.size());
    DeviceBuffer<float> bias_d(E), scores_d((size_t)N * E), weights_d((size_t)N * K);
    DeviceBuffer<int32_t> experts_d((size_t)N * K);
    upload(logits_d, logits);
    upload(bias_d, bias);
    scores_d.poison();
    weights_d.poison();
    experts_d.poison();
    cuda::moe_route_forward(scores_d.get(), experts_d.get(), weights_d.get(), logits_d.get(), bias_d.get(), r, N, 0);
    const std::vector<int32_t> got = to_host(experts_d);
    CHECK(got == want.experts);
    check_close("scores", download(scores_d), want.scores, kFp32Tolerance);
    check_close("weights", download(weights_d), want.weights, kFp32Tolerance);
    // When top_k exceeds the experts of the best groups, masked experts (score 0) are picked too,
    // as HF does: the group limit holds only while the best groups have enough experts.
    if (r.topk_group < r.n_group && r.top_k <= r.topk_group * (r.n_experts / r.n_group))
      check_group_limit(got, r, N);
  }
}

TEST_CASE_TEMPLATE("moe_route_backward accumulates the CPU's logit gradient", T, float, bf16) {
  uint64_t seed = 200;
  for (const RouterCase& c : kRouterCases) {
    CAPTURE(c.name);
    const cpu::RouterConfig& r = c.config;
    const int N = c.N, E = r.n_experts;
    const std::vector<float> bias = random_floats(E, seed++, 0.05f);
    const Routing routing = cpu_route(random_floats((size_t)N * E, seed++, 2.0f), bias, r, N);
    const std::vector<float>& scores = routing.scores;
    const std::vector<int32_t>& experts = routing.experts;
    const std::vector<float> dweights = random_floats(routing.weights.size(), seed++);
    // Small starting values: the K gradients of a row must not drown in E - K untouched ones.
    std::vector<float> dlogits = rounded<T>(random_floats(scores.size(), seed++, 0.01f));

    DeviceBuffer<T> dlogits_d(dlogits.size());
    DeviceBuffer<float> dweights_d(dweights.size()), scores_d(scores.size());
    DeviceBuffer<int32_t> experts_d(experts.size());
    upload(dlogits_d, dlogits);
    upload(dweights_d, dweights);
    upload(scores_d, scores);
    to_device(experts_d, experts);
    cuda::moe_route_backward(dlogits_d.get(), dweights_d.get(), scores_d.get(), experts_d.get(), r, N, 0);
    cpu::moe_route_backward(dlogits.data(), dweights.data(), scores.data(), experts.data(), r, N);
    check_close("dlogits", download(dlogits_d), dlogits, default_tolerance<T>());
  }
}

TEST_CASE("moe_route_forward refuses configurations beyond its limits") {
  DeviceBuffer<float> scratch(1);
  DeviceBuffer<int32_t> experts(1);
  const cpu::RouterConfig too_many{512, 8, 8, 4, true, 1.0f}, uneven{10, 2, 4, 2, true, 1.0f};
  for (const cpu::RouterConfig& r : {too_many, uneven})
    CHECK_THROWS_AS(cuda::moe_route_forward<float>(scratch.get(), experts.get(), scratch.get(), scratch.get(),
                                                   scratch.get(), r, 1, 0),
                    UsageError);
}

TEST_CASE("moe_permute is the host's stable counting sort, and counts the load") {
  struct Case {
    const char* name;
    int N, K, E, unused;
  };
  const Case cases[] = {
      {"fixture, expert 3 unused", 16, 2, 8, 3},
      {"bench", 8192, 4, 16, -1},
      {"1000 tokens of 6 out of 64 (chunks not full)", 1000, 6, 64, 63},
      {"DeepSeek-V3 size", 8192, 8, 256, 0},
      {"one expert takes everything", 3000, 1, 1, -1},
      {"no tokens", 0, 4, 16, -1},
  };
  uint64_t seed = 300;
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const int pairs = c.N * c.K;
    const std::vector<int32_t> experts = random_routing(c.N, c.K, c.E, seed++, c.unused);
    std::mt19937_64 rng(seed++);
    std::vector<int64_t> load(c.E);
    for (int64_t& x : load) x = int64_t(rng() % 1000);
    const HostPermutation want = host_permute(experts, c.N, c.K, c.E, load);

    DeviceBuffer<int32_t> experts_d(pairs), offsets_d(c.E + 1), order_d(pairs), row_of_d(pairs);
    DeviceBuffer<int64_t> load_d(c.E);
    DeviceBuffer<unsigned char> scratch(cuda::moe_permute_scratch_bytes(pairs, c.E));
    to_device(experts_d, experts);
    to_device(load_d, load);
    offsets_d.poison();
    order_d.poison();
    row_of_d.poison();
    cuda::moe_permute(offsets_d.get(), order_d.get(), row_of_d.get(), load_d.get(), experts_d.get(), c.N, c.K, c.E,
                      scratch.get(), 0);
    CHECK(to_host(offsets_d) == want.offsets);
    CHECK(to_host(order_d) == want.order);
    CHECK(to_host(row_of_d) == want.row_of);
    CHECK(to_host(load_d) == want.load);
  }
}

TEST_CASE_TEMPLATE("grouped GEMMs equal cpu::matmul expert by expert", T, float, bf16) {
  uint64_t seed = 400;
  for (const GroupedCase& c : grouped_cases()) {
    CAPTURE(c.name);
    const int E = (int)c.counts.size(), C = c.C, OC = c.OC;
    const std::vector<int32_t> offsets = offsets_of(c.counts);
    const int rows = offsets[E];
    const int64_t stride = (int64_t)OC * C + 8;  // a gap between experts, which must stay untouched
    const std::vector<float> inp = rounded<T>(random_floats((size_t)rows * C, seed++));
    const std::vector<float> weight = rounded<T>(random_floats(E * stride, seed++, 0.05f));
    const std::vector<float> dout = rounded<T>(random_floats((size_t)rows * OC, seed++));
    HostGrouped want{std::vector<float>((size_t)rows * OC), rounded<T>(random_floats((size_t)rows * C, seed++)),
                     random_floats(E * stride, seed++)};

    DeviceBuffer<T> inp_d(inp.size()), weight_d(weight.size()), dout_d(dout.size()), out_d(want.out.size()),
        dinp_d(want.dinp.size());
    DeviceBuffer<float> dweight_d(want.dweight.size());
    DeviceBuffer<int32_t> offsets_d(E + 1);
    upload(inp_d, inp);
    upload(weight_d, weight);
    upload(dout_d, dout);
    upload(dinp_d, want.dinp);
    upload(dweight_d, want.dweight);
    to_device(offsets_d, offsets);
    out_d.poison();
    cuda::grouped_matmul_forward(out_d.get(), inp_d.get(), weight_d.get(), stride, offsets_d.get(), E, rows, C, OC, 0);
    cuda::grouped_matmul_backward_input(dinp_d.get(), dout_d.get(), weight_d.get(), stride, offsets_d.get(), E, rows,
                                        C, OC, 0);
    cuda::grouped_matmul_backward_weight(dweight_d.get(), stride, dout_d.get(), inp_d.get(), offsets_d.get(), E, rows,
                                         C, OC, 0);
    host_grouped(want, inp, weight, dout, offsets, stride, C, OC);
    check_close("out", download(out_d), want.out, default_tolerance<T>());
    check_close("dinp", download(dinp_d), want.dinp, default_tolerance<T>());
    check_close("dweight", download(dweight_d), want.dweight, default_tolerance<T>());
  }
}

TEST_CASE_TEMPLATE("gather, combine and their backward passes equal the CPU's", T, float, bf16) {
  struct Case {
    int N, K, C;
  };
  uint64_t seed = 500;
  for (const Case& c : {Case{16, 2, 32}, Case{8192, 4, 1024}, Case{100, 3, 20}, Case{37, 6, 8}}) {
    CAPTURE(c.N);
    CAPTURE(c.C);
    const int pairs = c.N * c.K, C = c.C, K = c.K;
    const HostPermutation perm = host_permute(random_routing(c.N, K, 16, seed++), c.N, K, 16);
    const std::vector<float> x = rounded<T>(random_floats((size_t)c.N * C, seed++));
    const std::vector<float> yp = rounded<T>(random_floats((size_t)pairs * C, seed++));
    const std::vector<float> dxp = rounded<T>(random_floats((size_t)pairs * C, seed++));
    const std::vector<float> dout = rounded<T>(random_floats((size_t)c.N * C, seed++));
    const std::vector<float> weights = random_floats(pairs, seed++);
    std::vector<float> dx = rounded<T>(random_floats((size_t)c.N * C, seed++));
    std::vector<float> out = rounded<T>(random_floats((size_t)c.N * C, seed++));

    DeviceBuffer<T> x_d(x.size()), xp_d(yp.size()), yp_d(yp.size()), dxp_d(dxp.size()), dout_d(dout.size()),
        dx_d(dx.size()), out_d(out.size()), dyp_d(yp.size());
    DeviceBuffer<float> weights_d(pairs), dweights_d(pairs);
    DeviceBuffer<int32_t> order_d(pairs), row_of_d(pairs);
    upload(x_d, x);
    upload(yp_d, yp);
    upload(dxp_d, dxp);
    upload(dout_d, dout);
    upload(dx_d, dx);
    upload(out_d, out);
    upload(weights_d, weights);
    to_device(order_d, perm.order);
    to_device(row_of_d, perm.row_of);
    xp_d.poison();
    dyp_d.poison();
    dweights_d.poison();
    cuda::moe_gather(xp_d.get(), x_d.get(), order_d.get(), c.N, K, C, 0);
    cuda::moe_gather_backward(dx_d.get(), dxp_d.get(), row_of_d.get(), c.N, K, C, 0);
    cuda::moe_combine_forward(out_d.get(), yp_d.get(), weights_d.get(), row_of_d.get(), c.N, K, C, 0);
    cuda::moe_combine_backward(dyp_d.get(), dweights_d.get(), dout_d.get(), yp_d.get(), weights_d.get(),
                               row_of_d.get(), c.N, K, C, 0);

    std::vector<float> xp((size_t)pairs * C), dyp((size_t)pairs * C), dweights(pairs);
    cpu::moe_gather(xp.data(), x.data(), perm.order.data(), c.N, K, C);
    cpu::moe_gather_backward(dx.data(), dxp.data(), perm.row_of.data(), c.N, K, C);
    cpu::moe_combine_forward(out.data(), yp.data(), weights.data(), perm.row_of.data(), c.N, K, C);
    cpu::moe_combine_backward(dyp.data(), dweights.data(), dout.data(), yp.data(), weights.data(), perm.row_of.data(),
                              c.N, K, C);
    CHECK(download(xp_d) == xp);  // a copy: exact
    check_close("dx", download(dx_d), dx, default_tolerance<T>());
    check_close("combined out", download(out_d), out, default_tolerance<T>());
    check_close("dyp", download(dyp_d), dyp, default_tolerance<T>());
    check_close("dweights", download(dweights_d), dweights, kFp32Tolerance);  // fp32 sums of the same inputs
  }
}

TEST_CASE_TEMPLATE("moe_sequence_aux_loss adds the CPU's loss and gradient", T, float, bf16) {
  struct Case {
    int B, length, E, K;  // length: T of the loss (T is the element type here)
  };
  uint64_t seed = 600;
  const float alpha = 0.003f;
  for (const Case& c : {Case{2, 8, 8, 2}, Case{8, 1024, 16, 4}, Case{3, 100, 64, 6}, Case{1, 5, 256, 8}}) {
    CAPTURE(c.length);
    CAPTURE(c.E);
    const int N = c.B * c.length;
    const std::vector<float> scores = sigmoid_scores(N, c.E, seed++);
    const std::vector<int32_t> experts = random_routing(N, c.K, c.E, seed++);
    // Starting values of the gradient's own size (alpha / (N E)), so that both count.
    std::vector<float> dlogits = rounded<T>(random_floats(scores.size(), seed++, alpha / float(N * c.E)));
    const float loss_before = 0.5f;

    DeviceBuffer<float> scores_d(scores.size()), loss_d(1), loss_only_d(1);
    DeviceBuffer<int32_t> experts_d(experts.size());
    DeviceBuffer<T> dlogits_d(dlogits.size());
    upload(scores_d, scores);
    to_device(experts_d, experts);
    upload(dlogits_d, dlogits);
    upload(loss_d, {loss_before});
    upload(loss_only_d, {loss_before});
    cuda::moe_sequence_aux_loss(loss_d.get(), dlogits_d.get(), scores_d.get(), experts_d.get(), c.B, c.length, c.E, c.K,
                                alpha, 0);
    cuda::moe_sequence_aux_loss<T>(loss_only_d.get(), nullptr, scores_d.get(), experts_d.get(), c.B, c.length, c.E, c.K,
                                   alpha, 0);
    const float want = loss_before + cpu::moe_sequence_aux_loss(dlogits.data(), scores.data(), experts.data(), c.B,
                                                                c.length, c.E, c.K, alpha);
    check_close("loss", download(loss_d), {want}, kFp32Tolerance);
    check_close("loss without gradient", download(loss_only_d), {want}, kFp32Tolerance);
    check_close("dlogits", download(dlogits_d), dlogits, default_tolerance<T>());
  }
}

TEST_CASE("moe_update_bias steps each bias as the CPU does") {
  const std::vector<int64_t> load = {10, 30, 20, 20, 0, 40, 20, 20};  // mean 20: four at the mean stay put
  const std::vector<float> bias = random_floats(load.size(), 700, 0.1f);
  const float speed = 0.001f;
  std::vector<float> want = bias;
  cpu::moe_update_bias(want.data(), load.data(), (int)load.size(), speed);
  DeviceBuffer<float> bias_d(bias.size());
  DeviceBuffer<int64_t> load_d(load.size());
  upload(bias_d, bias);
  to_device(load_d, load);
  cuda::moe_update_bias(bias_d.get(), load_d.get(), (int)load.size(), speed, 0);
  CHECK(download(bias_d) == want);
}

// Route, permute, gather, an expert MLP's two grouped projections (gate: C -> I, down: I -> C;
// no activation between, it is not under test), combine, and every backward at the bench size,
// twice from the same inputs: every output must have the same bits.
TEST_CASE_TEMPLATE("the MoE kernels are bit-exact from run to run", T, float, bf16) {
  const int B = 8, Tn = 1024, N = B * Tn, C = 1024, I = 512;
  const cpu::RouterConfig r{16, 4, 1, 1, true, 1.0f};
  const int E = r.n_experts, K = r.top_k, pairs = N * K;
  const int64_t stride = (int64_t)I * C;  // gate [I, C] and down [C, I] matrices alike
  DeviceBuffer<T> logits(N * E), x(N * C), gate(E * stride), down(E * stride), xp(pairs * C), hp(pairs * I),
      yp(pairs * C), out(N * C), dout(N * C), dyp(pairs * C), dhp(pairs * I), dxp(pairs * C), dx(N * C),
      dlogits(N * E);
  DeviceBuffer<float> bias(E), scores(N * E), weights(pairs), dweights(pairs), dgate(E * stride), ddown(E * stride),
      loss(1);
  DeviceBuffer<int32_t> experts(pairs), offsets(E + 1), order(pairs), row_of(pairs);
  DeviceBuffer<int64_t> load(E);
  DeviceBuffer<unsigned char> scratch(cuda::moe_permute_scratch_bytes(pairs, E));
  upload(logits, random_floats(N * E, 800, 2.0f));
  upload(bias, random_floats(E, 801, 0.05f));
  upload(x, random_floats(N * C, 802));
  upload(gate, random_floats(E * stride, 803, 0.03f));
  upload(down, random_floats(E * stride, 804, 0.03f));
  upload(dout, random_floats(N * C, 805));

  auto zero = [](auto& buffer) {
    DSK_CUDA_CHECK(cudaMemset(buffer.get(), 0, buffer.size() * sizeof(*buffer.get())));
  };
  auto run = [&] {
    for (auto* buffer : {&out, &dhp, &dxp, &dx, &dlogits}) zero(*buffer);
    for (auto* buffer : {&dgate, &ddown, &loss}) zero(*buffer);
    zero(load);
    cuda::moe_route_forward(scores.get(), experts.get(), weights.get(), logits.get(), bias.get(), r, N, 0);
    cuda::moe_permute(offsets.get(), order.get(), row_of.get(), load.get(), experts.get(), N, K, E, scratch.get(), 0);
    cuda::moe_gather(xp.get(), x.get(), order.get(), N, K, C, 0);
    cuda::grouped_matmul_forward(hp.get(), xp.get(), gate.get(), stride, offsets.get(), E, pairs, C, I, 0);
    cuda::grouped_matmul_forward(yp.get(), hp.get(), down.get(), stride, offsets.get(), E, pairs, I, C, 0);
    cuda::moe_combine_forward(out.get(), yp.get(), weights.get(), row_of.get(), N, K, C, 0);
    cuda::moe_combine_backward(dyp.get(), dweights.get(), dout.get(), yp.get(), weights.get(), row_of.get(), N, K, C,
                               0);
    cuda::grouped_matmul_backward_weight(ddown.get(), stride, dyp.get(), hp.get(), offsets.get(), E, pairs, I, C, 0);
    cuda::grouped_matmul_backward_input(dhp.get(), dyp.get(), down.get(), stride, offsets.get(), E, pairs, I, C, 0);
    cuda::grouped_matmul_backward_weight(dgate.get(), stride, dhp.get(), xp.get(), offsets.get(), E, pairs, C, I, 0);
    cuda::grouped_matmul_backward_input(dxp.get(), dhp.get(), gate.get(), stride, offsets.get(), E, pairs, C, I, 0);
    cuda::moe_gather_backward(dx.get(), dxp.get(), row_of.get(), N, K, C, 0);
    cuda::moe_route_backward(dlogits.get(), dweights.get(), scores.get(), experts.get(), r, N, 0);
    cuda::moe_sequence_aux_loss(loss.get(), dlogits.get(), scores.get(), experts.get(), B, Tn, E, K, 0.001f, 0);
    return std::vector<std::vector<unsigned char>>{bits_of(experts), bits_of(order), bits_of(out),
                                                   bits_of(dweights), bits_of(ddown), bits_of(dgate),
                                                   bits_of(dx), bits_of(dlogits), bits_of(loss), bits_of(load)};
  };
  const auto first = run();
  const auto second = run();
  const char* names[] = {"experts", "order", "out", "dweights", "ddown", "dgate", "dx", "dlogits", "loss", "load"};
  for (size_t i = 0; i < first.size(); i++) {
    CAPTURE(names[i]);
    CHECK(first[i] == second[i]);
  }
}
