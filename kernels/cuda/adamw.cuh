// The optimizer's GPU half: a fused AdamW over the flat fp32 parameter buffer (master weights,
// moments m and v) that also refreshes the working copy in T (bf16 weights the model reads), and
// the global gradient norm with clipping. Same math as kernels/cpu/adamw.cpp in the same order,
// with every fp32 operation rounded alone (no fused multiply-adds) and the bias corrections
// divided in double as there: the fp32 state after a GPU step equals the CPU's bit for bit.
#pragma once

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta1^t, 1 - beta2^t for this step t (as tensor::AdamWStep)
};

// For i < n: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; m_hat = float(m / bc1), v_hat = float(v / bc2)
// (double divisions); p -= lr * (m_hat / (sqrt(v_hat) + eps) + (decay_mask[i] ? wd * p : 0));
// working[i] = p (as T).
// decay_mask may be null (decay everything); working may be null (no copy: fp32 working == master).
template <typename T>
void adamw_step(float* params, T* working, const float* grads, float* m, float* v, const uint8_t* decay_mask,
                int64_t n, const AdamWStep& step, cudaStream_t stream);

// sum_sq[0] = sum of grads[i]^2 for i < n, deterministic (fixed block partials in scratch, then a
// fixed-order sum). scratch holds grad_norm_scratch_floats(n) floats.
size_t grad_norm_scratch_floats(int64_t n);
void grad_sum_of_squares(float* sum_sq, const float* grads, int64_t n, float* scratch, cudaStream_t stream);
// grads *= scale.
void scale_floats(float* values, float scale, int64_t n, cudaStream_t stream);

}  // namespace dsk::kernels::cuda
