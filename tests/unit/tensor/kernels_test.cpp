// Every CPU kernel's backward against central finite differences of L = sum(out * r), r random.
// fp32 forward, eps = 1e-2 on inputs of size ~1; tolerance: |analytic - numeric| <= 2e-2 * max(1, |numeric|)
// per element (fp32 rounding of the sum dominates the difference quotient's error).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "cpu/kernels.hpp"
#include "tensor/tensor.hpp"

using namespace dsk::kernels::cpu;
using Vec = std::vector<float>;

namespace {

Vec random_vec(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  Vec v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += (double)a[i] * b[i];
  return s;
}

void check_gradient(const char* what, Vec& input, const Vec& analytic, const std::function<double()>& loss,
                    float eps = 1e-2f) {
  REQUIRE(analytic.size() == input.size());
  for (size_t i = 0; i < input.size(); i++) {
    float saved = input[i];
    input[i] = saved + eps;
    double plus = loss();
    input[i] = saved - eps;
    double minus = loss();
    input[i] = saved;
    double numeric = (plus - minus) / (2 * eps);
    INFO(what << "[" << i << "] analytic " << analytic[i] << " numeric " << numeric);
    CHECK(std::fabs(analytic[i] - numeric) <= 2e-2 * std::max(1.0, std::fabs(numeric)));
  }
}

}  // namespace

TEST_CASE("matmul backward matches finite differences") {
  int N = 5, C = 7, OC = 6;
  Vec x = random_vec(N * C, 1), w = random_vec(OC * C, 2), b = random_vec(OC, 3), r = random_vec(N * OC, 4);
  Vec out(N * OC);
  auto loss = [&] { matmul_forward(out.data(), x.data(), w.data(), b.data(), N, C, OC); return dot(out, r); };
  Vec dx(N * C), dw(OC * C), db(OC);
  matmul_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), N, C, OC);
  check_gradient("dx", x, dx, loss);
  check_gradient("dw", w, dw, loss);
  check_gradient("db", b, db, loss);
  // += convention: a second backward doubles the parameter gradient.
  Vec dw2 = dw;
  matmul_backward(nullptr, dw2.data(), nullptr, r.data(), x.data(), w.data(), N, C, OC);
  CHECK(dw2[3] == doctest::Approx(2 * dw[3]));
}

TEST_CASE("matmul forward matches a naive loop on an odd-sized problem") {
  int N = 9, C = 13, OC = 5;
  Vec x = random_vec(N * C, 5), w = random_vec(OC * C, 6), out(N * OC);
  matmul_forward(out.data(), x.data(), w.data(), nullptr, N, C, OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += (double)x[n * C + c] * w[o * C + c];
      CHECK(out[n * OC + o] == doctest::Approx(s).epsilon(1e-5));
    }
}

TEST_CASE("matmul forward matches a naive loop across tile and block boundaries") {
  // Tiles of 16 rows x 256 columns, register blocks of 4 x 16, K in chunks of 128: partial ones
  // of each, with a bias. Against a float64 sum, to within 1e-6 of the sum of the terms' sizes
  // (a sum of 300 fp32 products that nearly cancel is only that exact).
  const int N = 37, C = 300, OC = 300;
  Vec x = random_vec(N * C, 14), w = random_vec(OC * C, 15), b = random_vec(OC, 16), out(N * OC);
  matmul_forward(out.data(), x.data(), w.data(), b.data(), N, C, OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = b[o], size = std::fabs(b[o]);
      for (int c = 0; c < C; c++) {
        s += (double)x[n * C + c] * w[o * C + c];
        size += std::fabs((double)x[n * C + c] * w[o * C + c]);
      }
      CHECK(std::fabs(out[n * OC + o] - s) <= 1e-6 * size);
    }
}

TEST_CASE("matmul backward matches naive loops across tile boundaries") {
  // The backward works in tiles of 16 rows x 256 columns: sizes that leave partial tiles in every
  // direction and more than one column tile. Tolerance as in the forward test above.
  const int N = 37, C = 300, OC = 19;
  Vec x = random_vec(N * C, 11), w = random_vec(OC * C, 12), dout = random_vec(N * OC, 13);
  Vec dx(N * C, 0.5f), dw(OC * C, -0.25f);  // nonzero: backward adds into what is there
  matmul_backward(dx.data(), dw.data(), nullptr, dout.data(), x.data(), w.data(), N, C, OC);
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) {
      double s = 0.5, size = 0.5;
      for (int o = 0; o < OC; o++) {
        s += (double)dout[n * OC + o] * w[o * C + c];
        size += std::fabs((double)dout[n * OC + o] * w[o * C + c]);
      }
      CHECK(std::fabs(dx[n * C + c] - s) <= 1e-6 * size);
    }
  for (int o = 0; o < OC; o++)
    for (int c = 0; c < C; c++) {
      double s = -0.25, size = 0.25;
      for (int n = 0; n < N; n++) {
        s += (double)dout[n * OC + o] * x[n * C + c];
        size += std::fabs((double)dout[n * OC + o] * x[n * C + c]);
      }
      CHECK(std::fabs(dw[o * C + c] - s) <= 1e-6 * size);
    }
}

TEST_CASE("rmsnorm backward matches finite differences") {
  int N = 4, C = 8;
  Vec x = random_vec(N * C, 7), w = random_vec(C, 8), r = random_vec(N * C, 9), out(N * C), rstd(N);
  auto loss = [&] { rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-6f); return dot(out, r); };
  loss();
  Vec dx(N * C), dw(C);
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
  check_gradient("dx", x, dx, loss);
  check_gradient("dw", w, dw, loss);
}

TEST_CASE("rope backward is the transpose of forward (both pairings)") {
  for (bool interleaved : {false, true}) {
    int N = 3, H = 2, stride = 10, offset = 2, rot = 8;
    Rope rope{{1.0f, 0.3f, 0.1f, 0.01f}, 1.3f, interleaved};
    std::vector<int32_t> pos = {0, 5, 17};
    Vec x = random_vec(N * H * stride, 10), r = random_vec(N * H * stride, 11);
    auto loss = [&] { Vec y = x; rope_forward(y.data(), pos.data(), rope, N, H, stride, offset, rot); return dot(y, r); };
    Vec dx = r;
    rope_backward(dx.data(), pos.data(), rope, N, H, stride, offset, rot);
    check_gradient(interleaved ? "interleaved dx" : "dx", x, dx, loss);
  }
}

TEST_CASE("attention backward matches finite differences (GQA, causal, KV-cache shape)") {
  for (int Tq : {5, 2}) {
    AttentionShape s{2, Tq, 5, 4, 2, 3, 2, 0, 0, 0, 0.6f};
    s.q_stride = s.H * s.Dk;
    s.k_stride = s.KVH * s.Dk + 1;  // a padded row, as when K lives inside a wider projection
    s.v_stride = s.KVH * s.Dv;
    Vec q = random_vec(s.B * s.Tq * s.q_stride, 12), k = random_vec(s.B * s.Tk * s.k_stride, 13);
    Vec v = random_vec(s.B * s.Tk * s.v_stride, 14), r = random_vec(s.B * s.Tq * s.H * s.Dv, 15);
    Vec out(r.size()), probs(s.B * s.H * s.Tq * s.Tk);
    auto loss = [&] { attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), s); return dot(out, r); };
    loss();
    Vec dq(q.size()), dk(k.size()), dv(v.size());
    attention_backward(dq.data(), dk.data(), dv.data(), r.data(), probs.data(), q.data(), k.data(), v.data(), s);
    check_gradient("dq", q, dq, loss);
    check_gradient("dk", k, dk, loss);
    check_gradient("dv", v, dv, loss);
  }
}

TEST_CASE("swiglu backward matches finite differences") {
  int n = 20;
  Vec g = random_vec(n, 16), u = random_vec(n, 17), r = random_vec(n, 18), out(n);
  auto loss = [&] { swiglu_forward(out.data(), g.data(), u.data(), n); return dot(out, r); };
  Vec dg(n), du(n);
  swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  check_gradient("dgate", g, dg, loss);
  check_gradient("dup", u, du, loss);
}

TEST_CASE("tanh backward (from the forward's output) matches finite differences and accumulates") {
  int n = 20;
  Vec x = random_vec(n, 21), r = random_vec(n, 22), out(n);
  auto loss = [&] { tanh_forward(out.data(), x.data(), n); return dot(out, r); };
  loss();
  CHECK(out[3] == doctest::Approx(std::tanh(x[3])));
  Vec dx(n, 1.0f);
  tanh_backward(dx.data(), r.data(), out.data(), n);
  for (float& v : dx) v -= 1.0f;
  check_gradient("dx", x, dx, loss);
}

TEST_CASE("embedding backward scatters repeated tokens") {
  int V = 4, C = 3, N = 3;
  Vec table = random_vec(V * C, 19), out(N * C), dtable(V * C);
  std::vector<int32_t> tokens = {2, 0, 2};
  embedding_forward(out.data(), tokens.data(), table.data(), N, C);
  CHECK(out[C + 1] == table[1]);
  Vec dout(N * C, 1.0f);
  embedding_backward(dtable.data(), dout.data(), tokens.data(), N, C);
  CHECK(dtable[2 * C] == 2.0f);
  CHECK(dtable[1 * C] == 0.0f);
}

TEST_CASE("cross-entropy rows: the gradient matches finite differences and ignore_index rows are skipped") {
  int N = 4, V = 6;
  Vec z = random_vec(N * V, 20), losses(N);
  std::vector<int32_t> targets = {1, -100, 5, 0};
  auto loss = [&] {
    Vec logits = z;
    cross_entropy_rows(losses.data(), logits.data(), targets.data(), N, V, -100, 0.0f);
    double total = 0;
    for (float x : losses) total += x;
    return total / 3;  // the mean over the 3 counted rows
  };
  double l = loss();
  CHECK(l > 0);
  CHECK(losses[1] == 0.0f);
  Vec dz = z;
  cross_entropy_rows(losses.data(), dz.data(), targets.data(), N, V, -100, 1.0f / 3);
  check_gradient("dlogits", z, dz, loss, 1e-2f);
  for (int i = 0; i < V; i++) CHECK(dz[V + i] == 0.0f);
}

TEST_CASE("moe dispatch: permute, gather and combine are the per-expert loops") {
  const int N = 5, K = 2, E = 3, C = 4;
  std::vector<int32_t> experts = {2, 0, 1, 2, 0, 1, 2, 2, 1, 0};
  std::vector<int32_t> offsets(E + 1), order(N * K), row_of(N * K);
  std::vector<int64_t> load(E, 10);
  moe_permute(offsets.data(), order.data(), row_of.data(), load.data(), experts.data(), N, K, E);
  CHECK(offsets == std::vector<int32_t>{0, 3, 6, 10});
  CHECK(order == std::vector<int32_t>{1, 4, 9, 2, 5, 8, 0, 3, 6, 7});
  CHECK(load == std::vector<int64_t>{13, 13, 14});
  for (int p = 0; p < N * K; p++) CHECK(order[row_of[p]] == p);
  Vec x = random_vec(N * C, 31), xp(N * K * C), w = random_vec(N * K, 32), out(N * C, 0.0f);
  moe_gather(xp.data(), x.data(), order.data(), N, K, C);
  for (int i = 0; i < N * K; i++) CHECK(xp[i * C + 1] == x[(order[i] / K) * C + 1]);
  moe_combine_forward(out.data(), xp.data(), w.data(), row_of.data(), N, K, C);
  for (int n = 0; n < N; n++) CHECK(out[n * C] == doctest::Approx((w[n * K] + w[n * K + 1]) * x[n * C]));
}

TEST_CASE("moe routing: group-limited selection and weight gradients") {
  RouterConfig cfg{8, 2, 4, 2, true, 2.5f};
  int N = 3;
  Vec logits = random_vec(N * 8, 21), bias = random_vec(8, 22, 0.1f), r = random_vec(N * 2, 23);
  Vec scores(N * 8), weights(N * 2);
  std::vector<int32_t> experts(N * 2);
  moe_route_forward(scores.data(), experts.data(), weights.data(), logits.data(), bias.data(), cfg, N);
  for (int n = 0; n < N; n++) CHECK(weights[n * 2] + weights[n * 2 + 1] == doctest::Approx(2.5f));
  std::vector<int32_t> fixed = experts;
  // Selection is discrete: differentiate with the selection held (small eps does not flip it here).
  auto loss = [&] {
    moe_route_forward(scores.data(), experts.data(), weights.data(), logits.data(), bias.data(), cfg, N);
    REQUIRE(experts == fixed);
    return dot(weights, r);
  };
  loss();
  Vec dlogits(N * 8);
  moe_route_backward(dlogits.data(), r.data(), scores.data(), experts.data(), cfg, N);
  check_gradient("dlogits", logits, dlogits, loss, 1e-3f);
}

TEST_CASE("moe routing masks experts outside the best groups") {
  // 4 groups of 2; groups 1 and 3 hold the best pairs, expert 0 alone is best but its group loses.
  RouterConfig cfg{8, 2, 4, 2, false, 1.0f};
  Vec logits = {4.0f, -9.0f, 1.0f, 1.0f, -9.0f, -9.0f, 2.0f, 2.0f};
  Vec bias(8, 0.0f), scores(8), weights(2);
  std::vector<int32_t> experts(2);
  moe_route_forward(scores.data(), experts.data(), weights.data(), logits.data(), bias.data(), cfg, 1);
  CHECK(experts[0] == 6);
  CHECK(experts[1] == 7);
}

TEST_CASE("tensor resize zero-fills and reports its shape") {
  dsk::tensor::Tensor t({2, 3});
  CHECK(t.numel() == 6);
  CHECK(t.shape_string() == "[2,3]");
  t.data()[4] = 1;
  t.resize({3, 2});
  CHECK(t.data()[4] == 0);
  CHECK(t.at(1) - t.data() == 2);
}
