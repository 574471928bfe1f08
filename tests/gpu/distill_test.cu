// The distillation kernels (kernels/cuda/distill.cu) against kernels/cpu/distill.cpp on the same
// (rounded) logits: the teacher's top K (ids exactly, logprobs and rest mass) and the student's
// divergences, cross-entropies and d(logits) for the three divergences, with ignored rows, K < V
// and K = V, tiny, odd, dense-124m (32000) and DeepSeek-V3 (129280) vocabularies; reruns are
// bit-identical.
// Tolerances (relative L2, parity.cuh): ids equal; teacher logprobs 1e-5; rest mass 1e-4 (a sum
// of small terms in fp32 against double); losses 1e-4 (fp32 sums over V against double);
// d(logits) 1e-4 for fp32 storage, 1e-2 for bf16.
#include <cmath>

#include "cpu/distill.hpp"
#include "cuda/distill.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

constexpr int kIgnore = -100;
constexpr double kLossTolerance = 1e-4;

struct Shape {
  int rows, V, K;
};
const Shape kShapes[] = {{3, 8, 8}, {5, 13, 4}, {7, 97, 16}, {64, 32000, 32}, {9, 129280, 64}, {4, 2000, 1024}};

struct TeacherOut {
  std::vector<int32_t> ids;
  std::vector<float> logprobs, rest;
};

template <typename T>
TeacherOut gpu_teacher(const std::vector<float>& logits, const Shape& s, float tau) {
  DeviceBuffer<T> z(logits.size());
  DeviceBuffer<int32_t> ids(size_t(s.rows) * s.K);
  DeviceBuffer<float> logprobs(size_t(s.rows) * s.K), rest(s.rows);
  upload(z, logits);
  cuda::teacher_top_k_chunk<T>(ids.get(), logprobs.get(), rest.get(), z.get(), s.rows, s.V, s.K, tau, nullptr);
  std::vector<int32_t> host_ids(ids.size());
  DSK_CUDA_CHECK(cudaMemcpy(host_ids.data(), ids.get(), ids.size() * 4, cudaMemcpyDeviceToHost));
  return {host_ids, download(logprobs), download(rest)};
}

TeacherOut cpu_teacher(const std::vector<float>& logits, const Shape& s, float tau) {
  TeacherOut t{std::vector<int32_t>(size_t(s.rows) * s.K), std::vector<float>(size_t(s.rows) * s.K),
               std::vector<float>(s.rows)};
  cpu::teacher_top_k_rows(t.ids.data(), t.logprobs.data(), t.rest.data(), logits.data(), s.rows, s.V, s.K, tau);
  return t;
}

struct StudentOut {
  std::vector<float> divergences, ces, logits;
};

template <typename T>
StudentOut gpu_student(const std::vector<float>& logits, const std::vector<int32_t>& targets, const TeacherOut& t,
                       const Shape& s, const cpu::DistillLoss& loss, float dscale) {
  DeviceBuffer<T> z(logits.size());
  DeviceBuffer<int32_t> target(targets.size()), ids(t.ids.size());
  DeviceBuffer<float> logprobs(t.logprobs.size()), rest(t.rest.size()), divergences(s.rows), ces(s.rows);
  upload(z, logits);
  upload(logprobs, t.logprobs);
  upload(rest, t.rest);
  DSK_CUDA_CHECK(cudaMemcpy(target.get(), targets.data(), targets.size() * 4, cudaMemcpyHostToDevice));
  DSK_CUDA_CHECK(cudaMemcpy(ids.get(), t.ids.data(), t.ids.size() * 4, cudaMemcpyHostToDevice));
  divergences.poison();
  ces.poison();
  cuda::distill_chunk<T>(divergences.get(), ces.get(), z.get(), target.get(), ids.get(), logprobs.get(), rest.get(),
                         s.rows, s.V, s.K, kIgnore, loss, dscale, nullptr);
  return {download(divergences), download(ces), download(z)};
}

std::vector<int32_t> random_targets(const Shape& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> targets(s.rows);
  for (int r = 0; r < s.rows; r++) targets[r] = r > 0 && rng() % 5 == 0 ? kIgnore : int32_t(rng() % s.V);
  return targets;
}

}  // namespace

TEST_CASE_TEMPLATE("teacher_top_k_chunk matches the CPU and repeats bit for bit", T, float, bf16) {
  uint64_t seed = 2000;
  for (const Shape& s : kShapes) {
    CAPTURE(s.V);
    CAPTURE(s.K);
    const std::vector<float> logits = rounded<T>(random_floats(size_t(s.rows) * s.V, seed++, 3.0f));
    for (const float tau : {1.0f, 2.0f}) {
      const TeacherOut want = cpu_teacher(logits, s, tau), got = gpu_teacher<T>(logits, s, tau);
      CHECK(got.ids == want.ids);
      check_close("logprobs", got.logprobs, want.logprobs, 1e-5);
      check_close("rest", got.rest, want.rest, 1e-4);
      const TeacherOut again = gpu_teacher<T>(logits, s, tau);
      CHECK(again.logprobs == got.logprobs);
      CHECK(again.rest == got.rest);
    }
  }
}

TEST_CASE_TEMPLATE("distill_chunk matches the CPU and repeats bit for bit", T, float, bf16) {
  const cpu::DistillLoss losses[] = {{cpu::Divergence::forward_kl, 0.5f, 2.0f, 0.5f},
                                     {cpu::Divergence::reverse_kl, 0.7f, 1.0f, 0.5f},
                                     {cpu::Divergence::jsd, 0.9f, 1.5f, 0.3f}};
  uint64_t seed = 3000;
  for (const Shape& s : kShapes) {
    CAPTURE(s.V);
    CAPTURE(s.K);
    const std::vector<int32_t> targets = random_targets(s, seed++);
    const std::vector<float> teacher_logits = rounded<T>(random_floats(size_t(s.rows) * s.V, seed++, 3.0f));
    const std::vector<float> student = rounded<T>(random_floats(size_t(s.rows) * s.V, seed++, 2.0f));
    int count = 0;
    for (int32_t t : targets) count += t != kIgnore;
    for (const cpu::DistillLoss& loss : losses) {
      CAPTURE(int(loss.divergence));
      const TeacherOut teacher = cpu_teacher(teacher_logits, s, loss.temperature);
      for (const float dscale : {1.0f / count, 0.0f}) {
        std::vector<float> divergences(s.rows), ces(s.rows), dlogits = student;
        cpu::distill_rows(divergences.data(), ces.data(), dlogits.data(), targets.data(), teacher.ids.data(),
                          teacher.logprobs.data(), teacher.rest.data(), s.rows, s.V, s.K, kIgnore, loss, dscale);
        const StudentOut got = gpu_student<T>(student, targets, teacher, s, loss, dscale);
        check_close("divergences", got.divergences, divergences, kLossTolerance);
        check_close("cross-entropies", got.ces, ces, kLossTolerance);
        if (dscale == 0.0f)
          CHECK(got.logits == student);
        else
          check_close("dlogits", got.logits, dlogits, sizeof(T) == 4 ? 1e-4 : 1e-2);
        const StudentOut again = gpu_student<T>(student, targets, teacher, s, loss, dscale);
        CHECK(again.divergences == got.divergences);
        CHECK(again.logits == got.logits);
      }
    }
  }
}
