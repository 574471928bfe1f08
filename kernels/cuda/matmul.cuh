// Linear layers on cuBLASLt: out = inp @ weight^T (+ bias), weight stored [OC, C] as HF does, and
// the two backward products. With T = bf16 the products run on the tensor cores with fp32
// accumulation; with T = float they run in strict fp32 (no TF32: parity tests). Weight and bias
// gradients are fp32 and accumulate (+=), as every backward does (common.cuh).
#pragma once

#include <cublasLt.h>

#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

// One cuBLASLt handle and its workspace, made once per backend (never in the step loop).
class Blas {
 public:
  Blas();
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cublasLtHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }

 private:
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

// out [N,OC] = inp [N,C] @ weight[OC,C]^T + bias [OC] (bias may be null); accumulate adds into out.
template <typename T>
void matmul_forward(const Blas& blas, T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC,
                    bool accumulate, cudaStream_t stream);
// dinp [N,C] += dout [N,OC] @ weight [OC,C].
template <typename T>
void matmul_backward_input(const Blas& blas, T* dinp, const T* dout, const T* weight, int N, int C, int OC,
                           cudaStream_t stream);
// dweight [OC,C] += dout^T @ inp (fp32); dbias [OC] += column sums of dout (may be null; scratch
// holds matmul_bias_scratch_floats(N, OC) floats for its deterministic two-pass sum).
size_t matmul_bias_scratch_floats(int N, int OC);
template <typename T>
void matmul_backward_weight(const Blas& blas, float* dweight, float* dbias, const T* dout, const T* inp, int N, int C,
                            int OC, float* scratch, cudaStream_t stream);

}  // namespace dsk::kernels::cuda
