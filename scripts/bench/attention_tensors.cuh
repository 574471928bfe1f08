// What the flash-attention benches share: a bench shape, the four shapes of attention_bench.cu and
// attention_sweep.cu, the causal AttentionShape over a shape, and the device tensors of one forward
// and backward (attention_bench.cu, packed_attention_bench.cu).
#pragma once

#include <cmath>

#include "cuda/attention.cuh"
#include "cuda_timing.cuh"

namespace dsk::bench {

struct BenchShape {
  const char* name;
  int B, T, H, Dk, Dv;
};

// dense-124m llama; moe-16e deepseek_v3 (MLA: Dk = 64 nope + 32 rope, Dv = 64); a long sequence;
// llama-1b.
inline constexpr BenchShape kAttentionShapes[] = {
    {"dense-124m", 16, 1024, 12, 64, 64},
    {"moe-16e-mla", 8, 1024, 16, 96, 64},
    {"long-4k", 4, 4096, 12, 64, 64},
    {"llama-1b", 4, 2048, 16, 128, 128},
};

// Self-attention over rows of T positions, as many key heads as query heads, (B, T, H, D) rows.
inline kernels::cuda::AttentionShape causal_attention_shape(const BenchShape& shape) {
  const int B = shape.B, length = shape.T, H = shape.H;
  return kernels::cuda::AttentionShape{B, length, length, H, H, shape.Dk, shape.Dv, H * shape.Dk, H * shape.Dk,
                                       H * shape.Dv, 1.0f / std::sqrt(float(shape.Dk))};
}

// q, k, v and dout random (seeds 1 to 4); out, the gradients, lse and the backward's scratch
// uninitialized. Freed with the object.
template <typename T>
struct AttentionTensors {
  size_t qk_size, v_size;
  T *q, *k, *v, *dout, *out, *dq, *dk, *dv;
  float *lse, *scratch;

  AttentionTensors(const BenchShape& shape, const kernels::cuda::AttentionShape& s)
      : qk_size(size_t(shape.B) * shape.T * shape.H * shape.Dk),
        v_size(size_t(shape.B) * shape.T * shape.H * shape.Dv) {
    q = device_random<T>(qk_size, 1);
    k = device_random<T>(qk_size, 2);
    v = device_random<T>(v_size, 3);
    dout = device_random<T>(v_size, 4);
    DSK_CUDA_CHECK(cudaMalloc(&out, v_size * sizeof(T)));
    DSK_CUDA_CHECK(cudaMalloc(&dq, qk_size * sizeof(T)));
    DSK_CUDA_CHECK(cudaMalloc(&dk, qk_size * sizeof(T)));
    DSK_CUDA_CHECK(cudaMalloc(&dv, v_size * sizeof(T)));
    DSK_CUDA_CHECK(cudaMalloc(&lse, size_t(shape.B) * shape.H * shape.T * sizeof(float)));
    DSK_CUDA_CHECK(cudaMalloc(&scratch, kernels::cuda::attention_backward_scratch_floats(s) * sizeof(float)));
  }
  ~AttentionTensors() {
    // Unchecked: a destructor must not throw, and a sticky CUDA error shows at the next checked call.
    for (void* p : {(void*)q, (void*)k, (void*)v, (void*)dout, (void*)out, (void*)dq, (void*)dk, (void*)dv,
                    (void*)lse, (void*)scratch})
      cudaFree(p);
  }
  AttentionTensors(const AttentionTensors&) = delete;
  AttentionTensors& operator=(const AttentionTensors&) = delete;
};

}  // namespace dsk::bench
