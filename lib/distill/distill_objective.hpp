// What `dsk-distill train` optimizes, on lib/train's shared loop (run_training: resume, signals,
// NaN guard, schedule, eval cadence, metrics, checkpoints): every parameter of the student, with
//   loss = alpha * D(teacher || student) + (1 - alpha) * cross-entropy on the data
// per position (kernels/cpu/distill.hpp: D over the teacher's top-K and one rest bucket at the
// temperature), from the teacher cache (distill.cache) or from the teacher run online on each
// micro-batch (distill.teacher, inference only). The validation loss is the student's plain
// next-token cross-entropy, comparable with the teacher's and with dsk-train's. DeepSeekMoE
// students keep the aux-loss-free routing-bias update; the sequence-wise aux loss is not used.
#pragma once

#include <memory>
#include <optional>

#include "core/config.hpp"
#include "distill/teacher_cache.hpp"
#include "distill/teacher_rows.hpp"
#include "tensor/allocation.hpp"
#include "train/objective.hpp"

namespace dsk::distill {

class DistillObjective : public train::NextTokenObjective {
 public:
  // UsageError / DataError when the teacher or its cache does not fit the student and the data:
  // another vocabulary size, temperature or top_k, or a cache made by another teacher (when
  // distill.teacher is given) or from shards of another tokenizer.
  DistillObjective(model::Model& student, const Config& config);
  double forward_backward(const train::Batch& batch, int B, int T, float loss_scale) override;
  double evaluate(const train::Batch& batch, int B, int T) override;

 private:
  // The loss's per-position buffers in the student's backend, exactly N of each (no arena
  // rounding: the logged peak counts them as they are).
  struct LossBuffers {
    LossBuffers(tensor::Ops& ops, int64_t N);
    const tensor::Allocation targets, divergences, cross_entropies;
  };

  void fill_teacher_rows(const train::Batch& batch, int B, int T);

  model::Model& student_;
  kernels::cpu::DistillLoss loss_;
  int top_k_;
  std::optional<model::Model> teacher_;  // online
  std::unique_ptr<TeacherCache> cache_;
  std::unique_ptr<TeacherRows> rows_;
  std::optional<LossBuffers> buffers_;  // for planned_rows_ positions; none before the first batch
  int64_t planned_rows_ = 0;
  std::vector<int32_t> host_ids_;
  std::vector<float> host_logprobs_, host_rest_;
  std::vector<uint32_t> window_;
};

// run_training's hook for dsk-distill.
train::ObjectiveFactory distill_objective_factory();

}  // namespace dsk::distill
