#include "distill/distill_eval.hpp"

#include <chrono>
#include <cmath>
#include <random>

#include "core/error.hpp"
#include "distill/teacher_rows.hpp"
#include "model/generate.hpp"
#include "model/model.hpp"
#include "tensor/allocation.hpp"
#include "tensor/device.hpp"
#include "train/evaluate.hpp"
#include "train/token_windows.hpp"
#include "train/train_data.hpp"

namespace dsk::distill {
namespace fs = std::filesystem;
using tensor::Buf;
using tensor::DType;

namespace {

constexpr int kMaxTopK = 1024;

uint64_t weight_bytes(const fs::path& checkpoint) {
  uint64_t bytes = 0;
  for (const auto& entry : fs::directory_iterator(checkpoint))
    if (entry.path().extension() == ".safetensors") bytes += entry.file_size();
  return bytes;
}

// Greedy tokens/s of `tokens` new tokens after `prompt`, batch 1, after a short warm-up.
double decode_speed(model::Model& model, const std::vector<int32_t>& prompt, int tokens) {
  const model::SamplingSettings greedy{0.0f, 0, 1.0f, 0};
  std::mt19937_64 rng(1);
  model::generate_tokens(model, prompt, 4, greedy, rng);
  model.ops().synchronize();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<uint32_t> made = model::generate_tokens(model, prompt, tokens, greedy, rng);
  model.ops().synchronize();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return double(made.size()) / std::max(seconds, 1e-9);
}

// Per-position buffers in the student's backend, exactly N of each (no arena rounding: the
// student_memory_bytes of the report counts them as they are). Owned, so that a throw between
// two of them gives back the ones taken.
struct StudentBuffers {
  const tensor::Allocation targets, divergences, cross_entropies, top1_ids, top1_logprobs, top1_rest;
  StudentBuffers(tensor::Ops& ops, int64_t N)
      : targets(ops, DType::i32, N, "eval targets"),
        divergences(ops, DType::f32, N, "eval divergences"),
        cross_entropies(ops, DType::f32, N, "eval cross-entropies"),
        top1_ids(ops, DType::i32, N, "eval top-1 ids"),
        top1_logprobs(ops, DType::f32, N, "eval top-1 logprobs"),
        top1_rest(ops, DType::f32, N, "eval top-1 rest") {}
};

}  // namespace

DistillReport evaluate_distillation(const fs::path& teacher_dir, const fs::path& student_dir, const std::string& data,
                                    const EvalSettings& settings) {
  const train::TrainData shards = train::resolve_train_data({data}, {});
  const bool held_out = !shards.val.empty();
  const int B = settings.batch, T = settings.seq_len;
  const int64_t N = int64_t(B) * T;
  // Each model on its own backend instance, so that each one's memory is its own.
  model::Model teacher =
      model::Model::load_hf_checkpoint(teacher_dir, tensor::make_ops(settings.device, settings.precision));
  model::Model student =
      model::Model::load_hf_checkpoint(student_dir, tensor::make_ops(settings.device, settings.precision));
  const int V = teacher.architecture().vocab;
  if (student.architecture().vocab != V)
    throw UsageError(str("the teacher's vocabulary is ", V, " but the student's ", student.architecture().vocab,
                         ": they cannot be compared token for token"));
  if (shards.vocab_size > uint64_t(V))
    throw UsageError(str("the shards use a vocabulary of ", shards.vocab_size, " tokens but the models have ", V));
  const train::TokenWindows windows(held_out ? shards.val : shards.train, T, settings.seed ^ 0x5eedull);

  DistillReport report;
  report.split = held_out ? "val" : "train";
  report.device = student.ops().describe();
  report.top_k = std::min(V, kMaxTopK);
  report.bar = settings.bar;
  TeacherRows teacher_rows(teacher.ops(), N, report.top_k), student_copy(student.ops(), N, report.top_k);
  StudentBuffers buffers(student.ops(), N);
  std::vector<int32_t> ids(size_t(N) * report.top_k), student_top1(N);
  std::vector<float> logprobs(size_t(N) * report.top_k), rest(N);
  const kernels::cpu::DistillLoss forward_kl{kernels::cpu::Divergence::forward_kl, 1.0f, 1.0f, 0.5f};
  const model::Architecture& arch = student.architecture();
  double agreement = 0, kl = 0, student_loss = 0;
  const train::EvalResult teacher_result = train::evaluate_windows(
      windows, B, T, settings.batches, [&](const train::Batch& batch) {
        teacher_rows.compute(teacher, batch.tokens.data(), B, T, 1.0f);
        teacher_rows.download(ids.data(), logprobs.data(), rest.data(), N);
        const double teacher_loss = teacher.forward(batch.tokens.data(), batch.targets.data(), B, T);
        student.forward_hidden(batch.tokens.data(), B, T, /*training=*/false);
        student_copy.upload(ids.data(), logprobs.data(), rest.data(), N);
        student.ops().copy_from_host(buffers.targets.buf(), batch.targets.data());
        student.ops().lm_head_distill_loss(buffers.divergences.buf(), buffers.cross_entropies.buf(), Buf{}, Buf{},
                                           student.hidden(), student.lm_head_weight(), buffers.targets.buf(),
                                           student_copy.ids(N), student_copy.logprobs(N), student_copy.rest(N), int(N),
                                           arch.hidden, V, report.top_k, -100, forward_kl, 0.0f);
        student.ops().lm_head_top_k(buffers.top1_ids.buf(), buffers.top1_logprobs.buf(), buffers.top1_rest.buf(),
                                    student.hidden(), student.lm_head_weight(), int(N), arch.hidden, V, 1, 1.0f);
        student.ops().copy_to_host(student_top1.data(), buffers.top1_ids.buf());
        int64_t agree = 0;
        for (int64_t n = 0; n < N; n++) agree += student_top1[n] == ids[size_t(n) * report.top_k];
        agreement += double(agree) / double(N);
        kl += student.ops().sum(buffers.divergences.buf()) / double(N);
        student_loss += student.ops().sum(buffers.cross_entropies.buf()) / double(N);
        return teacher_loss;
      });
  teacher.reset_expert_load();
  student.reset_expert_load();
  const double batches = double(settings.batches);
  report.tokens = teacher_result.tokens;
  report.top1_agreement = agreement / batches;
  report.kl = kl / batches;
  report.teacher.val_loss = teacher_result.loss;
  report.student.val_loss = student_loss / batches;
  report.retained_quality = report.teacher.val_loss / report.student.val_loss;
  report.bar_met = report.retained_quality >= settings.bar;

  std::vector<uint32_t> first;
  windows.window(0, first);
  const std::vector<int32_t> prompt(first.begin(), first.begin() + std::min<size_t>(16, first.size() - 1));
  for (auto [model, out, dir] : {std::tuple{&teacher, &report.teacher, teacher_dir},
                                 std::tuple{&student, &report.student, student_dir}}) {
    out->path = dir;
    out->parameters = int64_t(model->parameter_count());
    out->weight_bytes = weight_bytes(dir);
    out->perplexity = std::exp(out->val_loss);
    // Prompt and new tokens within the positions the model was made for.
    const int room = int(model->architecture().max_position_embeddings) - int(prompt.size());
    out->decode_tokens_per_s = decode_speed(*model, prompt, std::max(1, std::min(settings.decode_tokens, room)));
    out->memory_bytes = model->ops().memory_in_use();
  }
  return report;
}

}  // namespace dsk::distill
