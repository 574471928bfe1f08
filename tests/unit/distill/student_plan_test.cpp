// plan_student: layers and experts at even spacing, DeepSeek's dense-first layers kept first,
// group-limited routing switched off when the experts no longer split into the groups, a target
// parameter count met as closely as the searched shapes allow, bad requests refused.
#include <doctest/doctest.h>

#include <cmath>

#include "../model/tiny_models.hpp"
#include "core/error.hpp"
#include "distill/student_init.hpp"

using namespace dsk;
using distill::plan_student;
using distill::StudentRequest;

TEST_CASE("plan_student: layers at even spacing, the first and the last kept") {
  model::Architecture teacher = model::testing::tiny_llama();
  teacher.layers = 9;
  StudentRequest request;
  request.layers = 3;
  CHECK(plan_student(teacher, request).layer_sources == std::vector<int>{0, 4, 8});
  request.layers = 1;
  CHECK(plan_student(teacher, request).layer_sources == std::vector<int>{0});
  request.layers = 9;
  const distill::StudentPlan same = plan_student(teacher, request);
  CHECK(same.parameters == same.teacher_parameters);
}

TEST_CASE("plan_student: MoE experts at even spacing, dense layers first, groups off when they no longer fit") {
  model::Architecture teacher = model::testing::tiny_deepseek(8, 4);  // layer 0 dense, 4 experts in 2 groups
  StudentRequest request;
  request.layers = 2;
  request.experts = 3;
  const distill::StudentPlan plan = plan_student(teacher, request);
  CHECK(plan.layer_sources == std::vector<int>{0, 3});
  CHECK(plan.arch.first_k_dense == 1);
  CHECK(plan.expert_sources == std::vector<int>{0, 2, 3});
  CHECK(plan.arch.n_routed == 3);
  CHECK(plan.arch.n_group == 1);
  CHECK(plan.arch.top_k == 2);
  request.experts = 2;  // 2 experts in 2 groups of 1, but top-2 needs both groups: off as well
  CHECK(plan_student(teacher, request).arch.n_group == 1);
}

TEST_CASE("plan_student: a target parameter count") {
  model::Architecture teacher = model::testing::tiny_llama();
  teacher.layers = 6;
  teacher.hidden = 64;
  teacher.head_dim = 16;
  teacher.intermediate = 128;
  StudentRequest request;
  request.ratio = 0.5;
  const distill::StudentPlan plan = plan_student(teacher, request);
  const double ratio = double(plan.parameters) / double(plan.teacher_parameters);
  CHECK(std::abs(ratio - 0.5) < 0.05);
  CHECK(plan.parameters == distill::parameter_count(plan.arch));
  request.ratio.reset();
  request.parameters = plan.teacher_parameters / 3;
  const distill::StudentPlan third = plan_student(teacher, request);
  CHECK(std::abs(double(third.parameters) / double(plan.teacher_parameters) - 1.0 / 3) < 0.05);
}

TEST_CASE("plan_student refuses what the teacher cannot give") {
  const model::Architecture teacher = model::testing::tiny_llama();
  StudentRequest more_layers;
  more_layers.layers = 3;
  CHECK_THROWS_AS(plan_student(teacher, more_layers), UsageError);
  StudentRequest odd_hidden;
  odd_hidden.hidden = 7;
  CHECK_THROWS_AS(plan_student(teacher, odd_hidden), UsageError);
  StudentRequest split_heads;  // even, but not a multiple of the heads
  split_heads.hidden = teacher.heads * 2 + 2;
  CHECK_THROWS_AS(plan_student(teacher, split_heads), UsageError);
  StudentRequest experts;
  experts.experts = 2;
  CHECK_THROWS_AS(plan_student(teacher, experts), UsageError);
  StudentRequest both;
  both.ratio = 0.5;
  both.parameters = 100;
  CHECK_THROWS_AS(plan_student(teacher, both), UsageError);
}

TEST_CASE("plan_student: a GPU-scale teacher halves with sizes the GEMMs want") {
  // scripts/device/distill-gpu.sh's teacher: llama d768 L12 (12 heads of 64, 4 KV heads) ff2048,
  // tied embeddings over 129280 tokens.
  model::Architecture teacher = model::testing::tiny_llama();
  teacher.vocab = 129280;
  teacher.hidden = 768;
  teacher.layers = 12;
  teacher.intermediate = 2048;
  teacher.heads = 12;
  teacher.kv_heads = 4;
  teacher.head_dim = 64;
  teacher.tied_embeddings = true;
  StudentRequest request;
  request.ratio = 0.5;
  const distill::StudentPlan plan = plan_student(teacher, request);
  MESSAGE("student: ", plan.arch.layers, " layers, hidden ", plan.arch.hidden, ", intermediate ",
          plan.arch.intermediate, ", ", plan.parameters, " of ", plan.teacher_parameters, " parameters");
  CHECK(plan.arch.layers >= 6);  // not one wide layer: the embeddings alone are over half at d640
  CHECK(plan.arch.hidden % 8 == 0);
  CHECK(plan.arch.hidden % teacher.heads == 0);  // transformers refuses a config otherwise
  CHECK(plan.arch.intermediate % 8 == 0);
  CHECK(std::abs(double(plan.parameters) / double(plan.teacher_parameters) - 0.5) < 0.01);
}
