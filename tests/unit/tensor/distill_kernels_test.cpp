// kernels/cpu/distill.cpp: the distillation losses and their gradients.
//   - d(logits) against central finite differences of the row losses (eps = 1e-2 on logits of
//     size ~1, fp32 losses): |analytic - numeric| <= 2e-3 + 1e-2 |numeric| per element;
//   - closed forms: forward KL over the full distributions has gradient (q - p) / tau, and a
//     two-token case computed by hand;
//   - K = V: the bucketed divergence equals the divergence of the full distributions (1e-6),
//     and the teacher's top-V has no rest mass;
//   - the teacher's top K: order, ties to the lower id, rest = 1 - the mass of the K.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "cpu/distill.hpp"

using namespace dsk::kernels::cpu;

namespace {

constexpr int kIgnore = -100;

std::vector<float> normal_floats(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

std::vector<double> softmax(const float* z, int V, double tau) {
  std::vector<double> p(V);
  double max = -INFINITY, sum = 0;
  for (int i = 0; i < V; i++) max = std::max(max, z[i] / tau);
  for (int i = 0; i < V; i++) sum += p[i] = std::exp(z[i] / tau - max);
  for (double& x : p) x /= sum;
  return p;
}

// The divergence of two full distributions, straight from the definitions.
double full_divergence(const std::vector<double>& P, const std::vector<double>& Q, const DistillLoss& loss) {
  auto kl = [](const std::vector<double>& a, const std::vector<double>& b) {
    double sum = 0;
    for (size_t i = 0; i < a.size(); i++)
      if (a[i] > 0) sum += a[i] * std::log(a[i] / b[i]);
    return sum;
  };
  if (loss.divergence == Divergence::forward_kl) return kl(P, Q);
  if (loss.divergence == Divergence::reverse_kl) return kl(Q, P);
  std::vector<double> M(P.size());
  for (size_t i = 0; i < P.size(); i++) M[i] = loss.beta * P[i] + (1 - loss.beta) * Q[i];
  return loss.beta * kl(P, M) + (1 - loss.beta) * kl(Q, M);
}

struct Teacher {
  std::vector<int32_t> ids;
  std::vector<float> logprobs, rest;
};
Teacher teacher_of(const std::vector<float>& logits, int rows, int V, int K, float tau) {
  Teacher t{std::vector<int32_t>(size_t(rows) * K), std::vector<float>(size_t(rows) * K), std::vector<float>(rows)};
  teacher_top_k_rows(t.ids.data(), t.logprobs.data(), t.rest.data(), logits.data(), rows, V, K, tau);
  return t;
}

// alpha * D + (1 - alpha) * CE summed over the rows (forward only).
double total_loss(const std::vector<float>& student, const std::vector<int32_t>& targets, const Teacher& t, int rows,
                  int V, int K, const DistillLoss& loss) {
  std::vector<float> logits = student, divergences(rows), ces(rows);
  distill_rows(divergences.data(), ces.data(), logits.data(), targets.data(), t.ids.data(), t.logprobs.data(),
               t.rest.data(), rows, V, K, kIgnore, loss, 0.0f);
  double sum = 0;
  for (int r = 0; r < rows; r++) sum += loss.alpha * double(divergences[r]) + (1 - loss.alpha) * double(ces[r]);
  return sum;
}

const DistillLoss kLosses[] = {
    {Divergence::forward_kl, 0.7f, 2.0f, 0.5f},
    {Divergence::reverse_kl, 0.6f, 1.5f, 0.5f},
    {Divergence::jsd, 0.8f, 2.0f, 0.3f},
    {Divergence::jsd, 1.0f, 1.0f, 0.5f},
};

}  // namespace

TEST_CASE("distill_rows: d(logits) matches central finite differences, with and without a rest bucket") {
  const int rows = 3, V = 11;
  const std::vector<int32_t> targets = {4, kIgnore, 9};
  for (const int K : {3, V}) {
    for (const DistillLoss& loss : kLosses) {
      CAPTURE(K);
      CAPTURE(int(loss.divergence));
      const Teacher teacher = teacher_of(normal_floats(size_t(rows) * V, 7, 2.0f), rows, V, K, loss.temperature);
      std::vector<float> student = normal_floats(size_t(rows) * V, 8, 1.5f);
      std::vector<float> gradient = student, divergences(rows), ces(rows);
      distill_rows(divergences.data(), ces.data(), gradient.data(), targets.data(), teacher.ids.data(),
                   teacher.logprobs.data(), teacher.rest.data(), rows, V, K, kIgnore, loss, 1.0f);
      CHECK(divergences[1] == 0.0f);
      CHECK(ces[1] == 0.0f);
      for (size_t i = 0; i < student.size(); i++) {
        const float saved = student[i], eps = 1e-2f;
        student[i] = saved + eps;
        const double plus = total_loss(student, targets, teacher, rows, V, K, loss);
        student[i] = saved - eps;
        const double minus = total_loss(student, targets, teacher, rows, V, K, loss);
        student[i] = saved;
        const double numeric = (plus - minus) / (2 * eps);
        CAPTURE(i);
        CHECK(std::abs(gradient[i] - numeric) <= 2e-3 + 1e-2 * std::abs(numeric));
      }
    }
  }
}

TEST_CASE("distill_rows: closed forms") {
  SUBCASE("forward KL over the full distributions has d(logits) = alpha (q - p) / tau") {
    const int V = 6;
    const float tau = 3.0f;
    const std::vector<float> teacher_logits = normal_floats(V, 3, 2.0f), student = normal_floats(V, 4, 2.0f);
    const Teacher teacher = teacher_of(teacher_logits, 1, V, V, tau);
    const DistillLoss loss{Divergence::forward_kl, 1.0f, tau, 0.5f};
    std::vector<float> gradient = student, divergence(1), ce(1);
    const std::vector<int32_t> target = {2};
    distill_rows(divergence.data(), ce.data(), gradient.data(), target.data(), teacher.ids.data(),
                 teacher.logprobs.data(), teacher.rest.data(), 1, V, V, kIgnore, loss, 1.0f);
    const std::vector<double> p = softmax(teacher_logits.data(), V, tau), q = softmax(student.data(), V, tau);
    for (int i = 0; i < V; i++) CHECK(gradient[i] == doctest::Approx((q[i] - p[i]) / tau).epsilon(1e-5));
  }
  SUBCASE("two tokens by hand: teacher (0.8, 0.2), student (0.5, 0.5)") {
    // Teacher logits log 0.8, log 0.2; student 0, 0; tau 1. Kept: the top 1 (id 0) and the rest.
    const std::vector<float> teacher_logits = {std::log(0.8f), std::log(0.2f)}, student = {0.0f, 0.0f};
    const Teacher teacher = teacher_of(teacher_logits, 1, 2, 1, 1.0f);
    CHECK(teacher.ids[0] == 0);
    CHECK(teacher.rest[0] == doctest::Approx(0.2).epsilon(1e-6));
    const std::vector<int32_t> target = {1};
    auto divergence_of = [&](Divergence kind, float beta) {
      std::vector<float> logits = student, divergence(1), ce(1);
      distill_rows(divergence.data(), ce.data(), logits.data(), target.data(), teacher.ids.data(),
                   teacher.logprobs.data(), teacher.rest.data(), 1, 2, 1, kIgnore, {kind, 0.5f, 1.0f, beta}, 0.0f);
      CHECK(ce[0] == doctest::Approx(std::log(2.0)).epsilon(1e-6));
      return double(divergence[0]);
    };
    const double forward = 0.8 * std::log(0.8 / 0.5) + 0.2 * std::log(0.2 / 0.5);
    const double reverse = 0.5 * std::log(0.5 / 0.8) + 0.5 * std::log(0.5 / 0.2);
    const double m0 = 0.5 * 0.8 + 0.5 * 0.5, m1 = 0.5 * 0.2 + 0.5 * 0.5;
    const double jsd = 0.5 * (0.8 * std::log(0.8 / m0) + 0.2 * std::log(0.2 / m1)) +
                       0.5 * (0.5 * std::log(0.5 / m0) + 0.5 * std::log(0.5 / m1));
    CHECK(divergence_of(Divergence::forward_kl, 0.5f) == doctest::Approx(forward).epsilon(1e-5));
    CHECK(divergence_of(Divergence::reverse_kl, 0.5f) == doctest::Approx(reverse).epsilon(1e-5));
    CHECK(divergence_of(Divergence::jsd, 0.5f) == doctest::Approx(jsd).epsilon(1e-5));
  }
}

TEST_CASE("distill_rows: with K = V the buckets are the full distributions") {
  const int rows = 4, V = 37;
  const std::vector<float> teacher_logits = normal_floats(size_t(rows) * V, 11, 2.5f);
  const std::vector<float> student = normal_floats(size_t(rows) * V, 12, 2.0f);
  const std::vector<int32_t> targets = {0, 5, 36, 17};
  for (const DistillLoss& loss : kLosses) {
    const Teacher teacher = teacher_of(teacher_logits, rows, V, V, loss.temperature);
    std::vector<float> logits = student, divergences(rows), ces(rows);
    distill_rows(divergences.data(), ces.data(), logits.data(), targets.data(), teacher.ids.data(),
                 teacher.logprobs.data(), teacher.rest.data(), rows, V, V, kIgnore, loss, 0.0f);
    for (int r = 0; r < rows; r++) {
      CHECK(teacher.rest[r] == 0.0f);
      const double want = full_divergence(softmax(&teacher_logits[size_t(r) * V], V, loss.temperature),
                                          softmax(&student[size_t(r) * V], V, loss.temperature), loss);
      CHECK(divergences[r] == doctest::Approx(want).epsilon(1e-5));
    }
  }
}

TEST_CASE("teacher_top_k_rows: descending, ties to the lower id, rest is the mass of the others") {
  const int V = 8, K = 3;
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.5f, 2.0f, 0.0f};
  const Teacher t = teacher_of(logits, 1, V, K, 2.0f);
  CHECK(t.ids == std::vector<int32_t>{1, 3, 2});
  const std::vector<double> p = softmax(logits.data(), V, 2.0);
  for (int j = 0; j < K; j++) CHECK(t.logprobs[j] == doctest::Approx(std::log(p[t.ids[j]])).epsilon(1e-6));
  CHECK(t.rest[0] == doctest::Approx(1.0 - p[1] - p[3] - p[2]).epsilon(1e-6));
}

TEST_CASE("distill_rows: a teacher id or a target outside the vocabulary gives a NaN, not a stray read") {
  const int V = 4, K = 2;
  std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f}, divergence(1), ce(1), logprobs = {-1.0f, -2.0f}, rest = {0.5f};
  const std::vector<int32_t> ids = {1, 4}, target = {0};
  distill_rows(divergence.data(), ce.data(), logits.data(), target.data(), ids.data(), logprobs.data(), rest.data(), 1,
               V, K, kIgnore, DistillLoss{}, 0.0f);
  CHECK(std::isnan(divergence[0]));
  const std::vector<int32_t> good_ids = {1, 2}, bad_target = {4};
  distill_rows(divergence.data(), ce.data(), logits.data(), bad_target.data(), good_ids.data(), logprobs.data(),
               rest.data(), 1, V, K, kIgnore, DistillLoss{}, 0.0f);
  CHECK(std::isfinite(divergence[0]));
  CHECK(std::isnan(ce[0]));
}
