// AdamW against a hand computation, gradient clipping, and the learning-rate schedules' values.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "tensor/cpu_ops.hpp"
#include "train/adamw.hpp"
#include "train/schedule.hpp"

using namespace dsk::train;
using dsk::tensor::Buf;
using dsk::tensor::DType;

namespace {
Buf view(std::vector<float>& v) { return Buf{v.data(), int64_t(v.size()), DType::f32}; }
}  // namespace

TEST_CASE("AdamW first two steps match a hand computation") {
  AdamWSettings settings{0.9f, 0.99f, 1e-8f, 0.1f};
  auto ops = dsk::tensor::make_cpu_ops();
  std::vector<std::uint8_t> decay{1, 0};  // the second parameter is not decayed
  AdamW adamw(*ops, 2, settings, decay);
  std::vector<float> params{1.0f, -2.0f};

  std::vector<float> grads{0.5f, 0.25f};
  adamw.step(view(params), view(params), view(grads), 0.01f);
  // step 1: m_hat = g, v_hat = g^2, so the Adam term is sign(g) (up to eps).
  CHECK(params[0] == doctest::Approx(1.0 - 0.01 * (1.0 + 0.1 * 1.0)).epsilon(1e-6));
  CHECK(params[1] == doctest::Approx(-2.0 - 0.01 * 1.0).epsilon(1e-6));

  std::vector<float> grads2{-0.5f, 0.25f};
  double p0 = params[0];
  adamw.step(view(params), Buf{}, view(grads2), 0.01f);
  double m = 0.9 * (0.1 * 0.5) + 0.1 * -0.5, v = 0.99 * (0.01 * 0.25) + 0.01 * 0.25;
  double m_hat = m / (1 - 0.81), v_hat = v / (1 - 0.9801);
  double expected = p0 - 0.01 * (m_hat / (std::sqrt(v_hat) + 1e-8) + 0.1 * p0);
  CHECK(params[0] == doctest::Approx(expected).epsilon(1e-6));
  CHECK(adamw.steps_taken() == 2);
}

TEST_CASE("AdamW rejects buffers of the wrong size") {
  auto ops = dsk::tensor::make_cpu_ops();
  AdamW adamw(*ops, 3, {});
  std::vector<float> params(2), grads(2);
  CHECK_THROWS_AS(adamw.step(view(params), Buf{}, view(grads), 0.1f), dsk::InternalError);
}

TEST_CASE("clip_grad_norm scales down only above the limit and returns the norm before") {
  auto ops = dsk::tensor::make_cpu_ops();
  std::vector<float> grads{3.0f, 4.0f};
  CHECK(clip_grad_norm(*ops, view(grads), 10.0f) == doctest::Approx(5.0));
  CHECK(grads[0] == 3.0f);
  CHECK(clip_grad_norm(*ops, view(grads), 1.0f) == doctest::Approx(5.0));
  CHECK(grads[0] == doctest::Approx(0.6));
  CHECK(grads[1] == doctest::Approx(0.8));
}

TEST_CASE("schedules: warmup, cosine, linear, constant, wsd") {
  Schedule s{DecayShape::cosine, 1.0, 0.1, 10, 110, 0.2};
  CHECK(s.lr_at(0) == doctest::Approx(0.1));
  CHECK(s.lr_at(9) == doctest::Approx(1.0));
  CHECK(s.lr_at(10) == doctest::Approx(1.0));
  CHECK(s.lr_at(60) == doctest::Approx(0.55));  // halfway: (lr + min_lr) / 2
  CHECK(s.lr_at(110) == doctest::Approx(0.1));
  CHECK(s.lr_at(500) == doctest::Approx(0.1));

  s.shape = DecayShape::linear;
  CHECK(s.lr_at(35) == doctest::Approx(1.0 - 0.9 * 0.25));

  s.shape = DecayShape::constant;
  CHECK(s.lr_at(100) == doctest::Approx(1.0));

  s.shape = DecayShape::wsd;  // decay over the last 22 of 110 steps: from step 88
  CHECK(s.lr_at(87) == doctest::Approx(1.0));
  CHECK(s.lr_at(99) == doctest::Approx(1.0 - 0.9 * 0.5));
  CHECK(s.lr_at(110) == doctest::Approx(0.1));
}

TEST_CASE("schedule names parse and a wrong one is a usage error naming the place") {
  CHECK(parse_decay_shape("wsd", "x") == DecayShape::wsd);
  CHECK_THROWS_WITH_AS(parse_decay_shape("cos", "run.yaml:4"), doctest::Contains("run.yaml:4"), dsk::UsageError);
}
