// What a training run optimizes. Pre-training, fine-tuning and distillation share one training
// loop (trainer.hpp: data, schedule, clipping, NaN guard, eval cadence, metrics, checkpoints,
// resume, signals) and differ here: in the loss of a micro-batch and in the parameters it trains.
// dsk-train's objective is NextTokenObjective: next-token cross-entropy over every parameter of a
// model, with DeepSeekMoE's balancing; a fine-tuning objective trains adapter tensors over a
// frozen base, a distillation objective puts a teacher's distribution in the loss.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/config.hpp"
#include "model/model.hpp"
#include "train/checkpoint.hpp"
#include "train/evaluate.hpp"

namespace dsk::train {

// The trainable parameters as flat buffers in the backend's memory, one layout for the three:
// f32 master weights (what AdamW updates), the working copy the model reads (may alias master),
// f32 gradients. decay_mask: one flag per parameter, or empty to decay all (host memory, owned by
// the objective).
struct TrainableSet {
  tensor::Buf master, working, grads;
  std::span<const uint8_t> decay_mask;
};

class Objective {
 public:
  virtual ~Objective() = default;
  virtual TrainableSet trainable() = 0;
  // Before the micro-batches of a step: clear the gradients (and per-step statistics).
  virtual void start_step() = 0;
  // The loss of one micro-batch ([B,T] tokens and next-token targets); adds loss_scale times its
  // gradient into trainable().grads.
  virtual double forward_backward(const Batch& batch, int B, int T, float loss_scale) = 0;
  // The validation loss of one micro-batch, no gradient.
  virtual double evaluate(const Batch& batch, int B, int T) = 0;
  // After the optimizer's update of a step that was not skipped.
  virtual void finish_step() {}
  // What checkpoints hold of the trained weights; nullopt: the whole model as an HF checkpoint
  // (dsk-train's). An objective that trains adapters returns their own format here.
  virtual std::optional<CheckpointContent> checkpoint_content() { return std::nullopt; }
};

// Next-token cross-entropy over all of `model`'s parameters (weight decay on matrices only,
// unless optim.decay_norms_biases_embeddings), the sequence-wise balance loss of moe.aux_loss_alpha
// in training (not in evaluation), and after each step the aux-loss-free routing-bias update of
// moe.bias_update_speed.
class NextTokenObjective : public Objective {
 public:
  NextTokenObjective(model::Model& model, const Config& config);
  TrainableSet trainable() override;
  void start_step() override;
  double forward_backward(const Batch& batch, int B, int T, float loss_scale) override;
  double evaluate(const Batch& batch, int B, int T) override;
  void finish_step() override;

 private:
  model::Model& model_;
  std::vector<uint8_t> decay_mask_;
  float aux_alpha_, bias_update_speed_;
};

// Makes the objective of a run for its model and config (run_training's hook).
using ObjectiveFactory = std::function<std::unique_ptr<Objective>(model::Model&, const Config&)>;

}  // namespace dsk::train
