// AdamW over one flat fp32 parameter buffer (llm.c style): fp32 master weights, first and second
// moments m and v of the same length, bias correction, weight decay decoupled from the gradient
// (Loshchilov & Hutter) and applied only where decay_mask[i] is true (not on norms, biases and
// embeddings by default: the caller builds the mask from the parameter names).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dsk::train {

struct AdamWSettings {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

class AdamW {
 public:
  AdamW(std::size_t parameter_count, AdamWSettings settings);

  // One update at learning rate lr: params -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * params).
  // decay_mask is empty (decay everything) or one flag per parameter.
  void step(std::span<float> params, std::span<const float> grads, std::span<const std::uint8_t> decay_mask,
            float lr);

  std::int64_t steps_taken() const { return step_; }
  std::vector<float>& first_moment() { return m_; }
  std::vector<float>& second_moment() { return v_; }
  // For resuming from saved state.
  void set_steps_taken(std::int64_t step) { step_ = step; }

 private:
  AdamWSettings settings_;
  std::vector<float> m_, v_;
  std::int64_t step_ = 0;
};

// Global L2 norm of grads; if it exceeds max_norm (> 0), scale grads down to max_norm.
// Returns the norm before clipping (what metrics.jsonl logs).
float clip_grad_norm(std::span<float> grads, float max_norm);

}  // namespace dsk::train
