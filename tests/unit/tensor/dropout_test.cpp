// The counter-based dropout mask of kernels/cpu/dropout.cpp: the share dropped is p, the same
// seed gives the same mask (so backward and recomputation agree), another seed another mask,
// and backward adds the forward's factor where the forward kept an element.
#include <doctest/doctest.h>

#include <vector>

#include "cpu/kernels.hpp"

using namespace dsk::kernels::cpu;

TEST_CASE("dropout drops a share p of the elements, the same ones for the same seed") {
  const int64_t n = 100000;
  std::vector<float> ones(n, 1.0f), a(n), b(n), c(n);
  const float p = 0.3f;
  dropout_forward(a.data(), ones.data(), n, 2.0f, dropout_threshold(p), 5);
  dropout_forward(b.data(), ones.data(), n, 2.0f, dropout_threshold(p), 5);
  dropout_forward(c.data(), ones.data(), n, 2.0f, dropout_threshold(p), 6);
  int64_t dropped = 0, differ = 0;
  for (int64_t i = 0; i < n; i++) {
    CHECK((a[i] == 0.0f || a[i] == 2.0f));
    dropped += a[i] == 0.0f;
    differ += a[i] != c[i];
  }
  CHECK(a == b);
  CHECK(double(dropped) / n == doctest::Approx(p).epsilon(0.03));
  CHECK(differ > n / 4);

  std::vector<float> grad(n, 1.0f);
  dropout_backward(grad.data(), ones.data(), n, 2.0f, dropout_threshold(p), 5);
  for (int64_t i = 0; i < n; i++) REQUIRE(grad[i] == 1.0f + a[i]);

  dropout_forward(a.data(), ones.data(), n, 0.5f, dropout_threshold(0.0f), 5);  // p = 0: a scale
  for (float v : a) REQUIRE(v == 0.5f);
}
