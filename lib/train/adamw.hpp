// AdamW over one flat fp32 parameter buffer (llm.c style): fp32 master weights, first and second
// moments m and v of the same length in the backend's memory, bias correction, weight decay
// decoupled from the gradient (Loshchilov & Hutter) and applied only where the decay mask is 1
// (not on norms, biases and embeddings by default: the caller builds the mask from the parameter
// names). One fused op per step (tensor::Ops::adamw_step), which also refreshes the working copy
// of the weights the model reads.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tensor/arena.hpp"
#include "tensor/ops.hpp"

namespace dsk::train {

struct AdamWSettings {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

class AdamW {
 public:
  // decay_mask: empty (decay everything) or one flag per parameter. ops: the model's backend.
  AdamW(tensor::Ops& ops, std::size_t parameter_count, AdamWSettings settings,
        std::span<const std::uint8_t> decay_mask = {});

  // One update at learning rate lr: params -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * params);
  // working (may be empty or alias params) receives the updated weights in its dtype.
  void step(tensor::Buf params, tensor::Buf working, tensor::Buf grads, float lr);

  std::int64_t steps_taken() const { return step_; }
  std::vector<float> copy_first_moment() const;
  std::vector<float> copy_second_moment() const;
  // For resuming from saved state: the moments and the step count.
  void restore(std::span<const float> m, std::span<const float> v, std::int64_t steps);

 private:
  tensor::Ops& ops_;
  AdamWSettings settings_;
  std::size_t count_;
  tensor::Arena arena_;
  tensor::Buf m_, v_, mask_;
  std::int64_t step_ = 0;
};

// Global L2 norm of grads; if it exceeds max_norm (> 0), scale grads down to max_norm.
// Returns the norm before clipping (what metrics.jsonl logs).
float clip_grad_norm(tensor::Ops& ops, tensor::Buf grads, float max_norm);

}  // namespace dsk::train
