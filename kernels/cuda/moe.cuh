// DeepSeekMoE on the GPU: the router (sigmoid scores, bias for selection only, group-limited
// top-k, renormalisation and routed scaling, as cpu::moe_route_forward), the permutation of
// (token, slot) pairs by expert, all routed experts' SwiGLU projections as grouped GEMMs over that
// permutation, the weighted combine, their backward passes, expert-load counts and the
// auxiliary-loss-free bias update. No host round trip: counts and offsets stay on the device.
//
// Expert e's weight of one projection is weight0 + e * expert_stride (elements): the parameter
// layout puts experts.e.{gate,up,down}_proj one after another, so each projection's matrices are
// evenly spaced.
#pragma once

#include "cpu/kernels.hpp"
#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

using RouterConfig = cpu::RouterConfig;

// logits [N,E] (T), bias [E] (fp32) -> scores [N,E] (sigmoid, fp32, kept), experts [N,K], weights [N,K] (fp32).
// Ties between equal scores go to the lower expert index, as the CPU reference does. Limits (else
// UsageError): E <= 256, K <= 16, n_group <= 32 dividing E. One warp per token.
template <typename T>
void moe_route_forward(float* scores, int32_t* experts, float* weights, const T* logits, const float* bias,
                       const RouterConfig& r, int N, cudaStream_t stream);
// dlogits [N,E] += through the selected sigmoid scores from dweights [N,K] (fp32).
template <typename T>
void moe_route_backward(T* dlogits, const float* dweights, const float* scores, const int32_t* experts,
                        const RouterConfig& r, int N, cudaStream_t stream);

// Groups the N*K (token, slot) pairs by expert, stably (ascending pair index within an expert):
// offsets [E+1] (rows of expert e are offsets[e]..offsets[e+1] of the permuted order),
// order [N*K] (permuted row i holds pair order[i]), row_of [N*K] (pair p sits at permuted row
// row_of[p]). load [E] (int64) += the counts (the expert-load statistics). scratch holds
// moe_permute_scratch_bytes(N*K, E) bytes. E <= 1024; experts must lie in [0, E).
size_t moe_permute_scratch_bytes(int pairs, int E);
void moe_permute(int32_t* offsets, int32_t* order, int32_t* row_of, int64_t* load, const int32_t* experts, int N,
                 int K, int E, void* scratch, cudaStream_t stream);

// xp [N*K, C]: xp[i] = x[order[i] / K].
template <typename T>
void moe_gather(T* xp, const T* x, const int32_t* order, int N, int K, int C, cudaStream_t stream);
// dx [N,C] += sum over slots k (in order) of dxp[row_of[n*K + k]].
template <typename T>
void moe_gather_backward(T* dx, const T* dxp, const int32_t* row_of, int N, int K, int C, cudaStream_t stream);

// Grouped GEMM over the permuted rows: for each expert e and its rows i in [offsets[e], offsets[e+1]),
// out[i] = inp[i] @ W_e^T (written) with W_e = weight + e * expert_stride ([OC, C]). rows = N*K in all.
// bf16 runs on the tensor cores when C, OC and expert_stride are multiples of 8 and the matrices
// 16-byte aligned; otherwise (and for float, in strict fp32) on plain fp32 SIMT cores.
template <typename T>
void grouped_matmul_forward(T* out, const T* inp, const T* weight, int64_t expert_stride, const int32_t* offsets,
                            int E, int rows, int C, int OC, cudaStream_t stream);
// dinp [rows, C] += dout [rows, OC] @ W_e.
template <typename T>
void grouped_matmul_backward_input(T* dinp, const T* dout, const T* weight, int64_t expert_stride,
                                   const int32_t* offsets, int E, int rows, int C, int OC, cudaStream_t stream);
// dW_e [OC, C] (fp32, dweight + e * expert_stride) += dout_e^T @ inp_e.
template <typename T>
void grouped_matmul_backward_weight(float* dweight, int64_t expert_stride, const T* dout, const T* inp,
                                    const int32_t* offsets, int E, int rows, int C, int OC, cudaStream_t stream);

// out [N,C] += sum over slots k (in order) of weights[n,k] * yp[row_of[n*K+k]].
template <typename T>
void moe_combine_forward(T* out, const T* yp, const float* weights, const int32_t* row_of, int N, int K, int C,
                         cudaStream_t stream);
// dyp[row_of[p]] = weights[p] * dout[p / K] (written); dweights[p] = dot(dout[p / K], yp[row_of[p]]) (written).
template <typename T>
void moe_combine_backward(T* dyp, float* dweights, const T* dout, const T* yp, const float* weights,
                          const int32_t* row_of, int N, int K, int C, cudaStream_t stream);

// Auxiliary-loss-free balancing: bias[e] += speed * sign(mean(load) - load[e]) for the E experts
// of one layer (load as moe_permute counted it).
void moe_update_bias(float* bias, const int64_t* load, int E, float speed, cudaStream_t stream);

// DeepSeek-V3's sequence-wise balance loss of one layer (layers.hpp, sequence_aux_loss): adds
// alpha * mean over the B sequences of sum_e f_e P_e into loss[0] (fp32), and its gradient into
// dlogits [N,E] (when not null) through the sigmoid. scores [N,E], experts [N,K], N = B*T.
// (Elem is the element type T of the other ops; T here is the sequence length.)
template <typename Elem>
void moe_sequence_aux_loss(float* loss, Elem* dlogits, const float* scores, const int32_t* experts, int B, int T,
                           int E, int K, float alpha, cudaStream_t stream);

}  // namespace dsk::kernels::cuda
