// The distillation loss through a whole model: the student's parameter gradients from
// forward_hidden + lm_head_distill_loss + backward_from_hidden against central finite differences
// of the loss (CPU, fp32, eps = 1e-2 on weights ~0.02-1; |analytic - numeric| <= 1e-3 + 5e-2 |numeric|),
// for each divergence, with a teacher of another shape (fewer layers, a smaller hidden size).
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "../model/tiny_models.hpp"
#include "model/model.hpp"
#include "tensor/ops.hpp"

using namespace dsk;
using tensor::Buf;
using tensor::DType;

namespace {

constexpr int B = 2, T = 5, K = 6;

struct Fixture {
  model::Model student{model::testing::tiny_llama(), 3, 0.3f};
  model::Model teacher;
  std::vector<int32_t> tokens, targets;
  std::vector<int32_t> ids = std::vector<int32_t>(B * T * K);
  std::vector<float> logprobs = std::vector<float>(B * T * K), rest = std::vector<float>(B * T);
  std::vector<float> divergences = std::vector<float>(B * T), ces = std::vector<float>(B * T);

  static model::Architecture teacher_shape() {
    model::Architecture a = model::testing::tiny_llama();
    a.layers = 1;
    a.hidden = 12;
    return a;
  }
  Fixture() : teacher(teacher_shape(), 4, 0.5f) {
    std::mt19937 rng(5);
    for (int i = 0; i < B * T; i++) {
      tokens.push_back(int32_t(rng() % 32));
      targets.push_back(int32_t(rng() % 32));
    }
    teacher.forward_hidden(tokens.data(), B, T, false);
    teacher.ops().lm_head_top_k(buf(ids), buf(logprobs), buf(rest), teacher.hidden(), teacher.lm_head_weight(), B * T,
                                12, 32, K, 1.5f);
  }
  template <typename E>
  static Buf buf(std::vector<E>& v) {
    return Buf{v.data(), int64_t(v.size()), sizeof(E) == 4 && std::is_integral_v<E> ? DType::i32 : DType::f32};
  }
  // Mean of alpha D + (1 - alpha) CE over the positions; with `backward`, its gradient too.
  double loss(const kernels::cpu::DistillLoss& kind, bool backward) {
    student.forward_hidden(tokens.data(), B, T, backward);
    const float dscale = backward ? 1.0f / (B * T) : 0.0f;
    student.ops().lm_head_distill_loss(buf(divergences), buf(ces), backward ? student.hidden_gradient() : Buf{},
                                       backward ? student.lm_head_gradient() : Buf{}, student.hidden(),
                                       student.lm_head_weight(), buf(targets), buf(ids), buf(logprobs), buf(rest),
                                       B * T, 16, 32, K, -100, kind, dscale);
    if (backward) student.backward_from_hidden();
    double sum = 0;
    for (int i = 0; i < B * T; i++) sum += kind.alpha * double(divergences[i]) + (1 - kind.alpha) * double(ces[i]);
    return sum / (B * T);
  }
};

}  // namespace

TEST_CASE("the distillation loss's parameter gradients through the model match finite differences") {
  using kernels::cpu::Divergence;
  const kernels::cpu::DistillLoss kinds[] = {{Divergence::forward_kl, 0.7f, 1.5f, 0.5f},
                                             {Divergence::reverse_kl, 1.0f, 1.5f, 0.5f},
                                             {Divergence::jsd, 0.5f, 1.5f, 0.4f}};
  Fixture f;
  for (const auto& kind : kinds) {
    CAPTURE(int(kind.divergence));
    f.student.zero_grad();
    f.loss(kind, true);
    const std::vector<float> analytic = f.student.copy_gradients();
    std::span<float> params = f.student.parameters();
    std::mt19937 rng(9);
    for (int probe = 0; probe < 40; probe++) {
      const size_t i = rng() % params.size();
      const float saved = params[i], eps = 1e-2f;
      std::vector<float> p = f.student.copy_parameters();
      p[i] = saved + eps;
      f.student.set_parameters(p);
      const double plus = f.loss(kind, false);
      p[i] = saved - eps;
      f.student.set_parameters(p);
      const double minus = f.loss(kind, false);
      p[i] = saved;
      f.student.set_parameters(p);
      const double numeric = (plus - minus) / (2 * eps);
      CAPTURE(i);
      CHECK(std::abs(analytic[i] - numeric) <= 1e-3 + 5e-2 * std::abs(numeric));
    }
  }
}
