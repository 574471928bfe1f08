// Attention over packed rows (AttentionShape::segment_start) against a brute-force reference that
// builds each query's visible key set from the definition in kernels.hpp, and its backward
// against central finite differences. Tolerances: forward 1e-5 absolute (fp32, scores of size ~1);
// gradients as kernels_test.cpp (2e-2 * max(1, |numeric|), eps 1e-2).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/kernels.hpp"

using namespace dsk::kernels::cpu;
using Vec = std::vector<float>;

namespace {

Vec random_vec(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Vec v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += double(a[i]) * b[i];
  return s;
}

// segment_start of rows whose examples have the given lengths (one list per row).
std::vector<int32_t> segment_starts(const std::vector<std::vector<int>>& rows, int T) {
  std::vector<int32_t> starts;
  for (const std::vector<int>& lengths : rows) {
    int first = 0;
    for (int length : lengths) {
      for (int i = 0; i < length; i++) starts.push_back(first);
      first += length;
    }
    for (int t = first; t < T; t++) starts.push_back(first);  // the row's tail: one more example
  }
  return starts;
}

// out [B,Tq,H,Dv] by the definition: query t of row b sees key j when j < Tk - Tq (before the query
// part) or Tk - Tq + segment_start[b,t] <= j <= Tk - Tq + t. Double precision.
Vec brute_force(const Vec& q, const Vec& k, const Vec& v, const AttentionShape& s) {
  Vec out(size_t(s.B) * s.Tq * s.H * s.Dv);
  const int offset = s.Tk - s.Tq, group = s.H / s.KVH;
  for (int b = 0; b < s.B; b++)
    for (int h = 0; h < s.H; h++)
      for (int t = 0; t < s.Tq; t++) {
        const int first = offset + s.segment_start[b * s.Tq + t];
        std::vector<double> score(s.Tk, -INFINITY);
        double top = -INFINITY;
        for (int j = 0; j < s.Tk; j++) {
          if (!(j < offset || (j >= first && j <= offset + t))) continue;
          double d = 0;
          for (int c = 0; c < s.Dk; c++)
            d += double(q[(b * s.Tq + t) * s.q_stride + h * s.Dk + c]) * k[(b * s.Tk + j) * s.k_stride + (h / group) * s.Dk + c];
          score[j] = d * s.scale;
          top = std::max(top, score[j]);
        }
        double sum = 0;
        for (int j = 0; j < s.Tk; j++) sum += std::exp(score[j] - top);
        for (int c = 0; c < s.Dv; c++) {
          double o = 0;
          for (int j = 0; j < s.Tk; j++)
            o += std::exp(score[j] - top) / sum * v[(b * s.Tk + j) * s.v_stride + (h / group) * s.Dv + c];
          out[((b * s.Tq + t) * s.H + h) * s.Dv + c] = float(o);
        }
      }
  return out;
}

AttentionShape shape(int B, int Tq, int Tk) {
  AttentionShape s{B, Tq, Tk, 4, 2, 3, 2, 0, 0, 0, 0.6f};
  s.q_stride = s.H * s.Dk;
  s.k_stride = s.KVH * s.Dk + 1;  // a padded row
  s.v_stride = s.KVH * s.Dv;
  return s;
}

}  // namespace

TEST_CASE("packed attention keeps each query within its example (and the keys before the query part)") {
  const int T = 9;
  const std::vector<int32_t> starts = segment_starts({{3, 1, 4}, {9}}, T);  // row 1: a single example
  for (int prefix : {0, 3}) {  // 3: keys before the query part, visible to every example
    AttentionShape s = shape(2, T, T + prefix);
    s.segment_start = starts.data();
    Vec q = random_vec(size_t(s.B) * s.Tq * s.q_stride, 1), k = random_vec(size_t(s.B) * s.Tk * s.k_stride, 2);
    Vec v = random_vec(size_t(s.B) * s.Tk * s.v_stride, 3);
    Vec out(size_t(s.B) * s.Tq * s.H * s.Dv), probs(size_t(s.B) * s.H * s.Tq * s.Tk);
    attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), s);
    const Vec expected = brute_force(q, k, v, s);
    for (size_t i = 0; i < out.size(); i++) CHECK(std::abs(out[i] - expected[i]) < 1e-5f);
    // A hidden key has probability exactly 0: query 3 of row 0 (the second example) sees only itself
    // among the query part's keys.
    const float* p = probs.data() + 3 * s.Tk;  // b 0, h 0, t 3
    for (int j = prefix; j < prefix + 3; j++) CHECK(p[j] == 0.0f);
    if (prefix == 0) CHECK(p[3] == 1.0f);
  }
}

TEST_CASE("packed attention with every example one row long equals plain causal attention bit for bit") {
  const int T = 6;
  AttentionShape plain = shape(2, T, T), packed = plain;
  const std::vector<int32_t> starts(size_t(2) * T, 0);
  packed.segment_start = starts.data();
  Vec q = random_vec(size_t(plain.B) * T * plain.q_stride, 4), k = random_vec(size_t(plain.B) * T * plain.k_stride, 5);
  Vec v = random_vec(size_t(plain.B) * T * plain.v_stride, 6), dout = random_vec(size_t(plain.B) * T * plain.H * plain.Dv, 7);
  Vec out_a(dout.size()), out_b(dout.size()), probs_a(size_t(2) * plain.H * T * T), probs_b(probs_a.size());
  attention_forward(out_a.data(), probs_a.data(), q.data(), k.data(), v.data(), plain);
  attention_forward(out_b.data(), probs_b.data(), q.data(), k.data(), v.data(), packed);
  CHECK(out_a == out_b);
  Vec dq_a(q.size()), dk_a(k.size()), dv_a(v.size()), dq_b(q.size()), dk_b(k.size()), dv_b(v.size());
  attention_backward(dq_a.data(), dk_a.data(), dv_a.data(), dout.data(), probs_a.data(), q.data(), k.data(), v.data(), plain);
  attention_backward(dq_b.data(), dk_b.data(), dv_b.data(), dout.data(), probs_b.data(), q.data(), k.data(), v.data(), packed);
  CHECK(dq_a == dq_b);
  CHECK(dk_a == dk_b);
  CHECK(dv_a == dv_b);
}

TEST_CASE("packed attention backward matches finite differences") {
  const int T = 7;
  const std::vector<int32_t> starts = segment_starts({{2, 3, 2}, {4, 3}}, T);
  for (int prefix : {0, 2}) {
    AttentionShape s = shape(2, T, T + prefix);
    s.segment_start = starts.data();
    Vec q = random_vec(size_t(s.B) * s.Tq * s.q_stride, 8), k = random_vec(size_t(s.B) * s.Tk * s.k_stride, 9);
    Vec v = random_vec(size_t(s.B) * s.Tk * s.v_stride, 10), r = random_vec(size_t(s.B) * s.Tq * s.H * s.Dv, 11);
    Vec out(r.size()), probs(size_t(s.B) * s.H * s.Tq * s.Tk);
    auto loss = [&] {
      attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), s);
      return dot(out, r);
    };
    loss();
    Vec dq(q.size()), dk(k.size()), dv(v.size());
    attention_backward(dq.data(), dk.data(), dv.data(), r.data(), probs.data(), q.data(), k.data(), v.data(), s);
    const float eps = 1e-2f;
    for (auto [input, analytic] : {std::pair{&q, &dq}, std::pair{&k, &dk}, std::pair{&v, &dv}}) {
      for (size_t i = 0; i < input->size(); i++) {
        const float saved = (*input)[i];
        (*input)[i] = saved + eps;
        const double plus = loss();
        (*input)[i] = saved - eps;
        const double minus = loss();
        (*input)[i] = saved;
        const double numeric = (plus - minus) / (2 * eps);
        CHECK(std::abs((*analytic)[i] - numeric) <= 2e-2 * std::max(1.0, std::abs(numeric)));
      }
    }
  }
}
