// Launchers of the bf16 flash-attention kernels (attention_flash.cuh) for one padded head-dim pair
// and one tile configuration each. attention.cu calls them with the configuration it picks per
// head-dim pair; scripts/bench/attention_sweep.cu calls them with every candidate. Shapes and
// alignment are checked by attention.cu before any of these runs.
#pragma once

#include "core/error.hpp"
#include "cuda/attention_flash.cuh"

namespace dsk::kernels::cuda::flash {

// Kernels using more than 48 KB of dynamic shared memory must say so (per device, so every launch).
template <typename Kernel>
void allow_shared_memory(Kernel kernel, int bytes) {
  DSK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

inline dim3 grid(int rows, int tiles) { return dim3(unsigned(rows), unsigned(tiles)); }
inline int tiles(int length, int tile) { return (length + tile - 1) / tile; }

// D [B, H, Tq] = rowsum(dout * out) over Dv, the first step of every backward (the SIMT path's
// too): one warp per (b, t, h) row of out.
template <typename T>
__global__ void output_dot_kernel(float* dsum, const T* dout, const T* out, AttentionShape s) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;  // (b * Tq + t) * H + h
  const int lane = int(threadIdx.x) % 32;
  if (row >= int64_t(s.B) * s.Tq * s.H) return;
  float sum = 0.0f;
  for (int d = lane; d < s.Dv; d += 32) sum += to_float(dout[row * s.Dv + d]) * to_float(out[row * s.Dv + d]);
  for (int width = 16; width > 0; width /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, width);
  const int64_t h = row % s.H, bt = row / s.H, t = bt % s.Tq, b = bt / s.Tq;
  if (lane == 0) dsum[(b * s.H + h) * s.Tq + t] = sum;
}

template <typename T>
void launch_output_dot(float* dsum, const T* dout, const T* out, const AttentionShape& s, cudaStream_t stream) {
  constexpr int kThreads = 256;
  const int64_t rows = int64_t(s.B) * s.Tq * s.H;
  output_dot_kernel<T><<<blocks_for(rows * 32, kThreads), kThreads, 0, stream>>>(dsum, dout, out, s);
  DSK_CUDA_CHECK_LAUNCH();
}

// The kernel for s: with packed rows (kSegments) or without. kWithSegments false compiles only the
// plain one (the sweep's candidates, timed without packing) and rejects packed rows.
template <bool kWithSegments, typename Kernel>
Kernel pick_kernel(const AttentionShape& s, Kernel with_segments, Kernel plain) {
  if (!s.segment_start) return plain;
  if (!kWithSegments) throw InternalError("attention: packed rows given to a launcher compiled without them");
  return with_segments;
}

// out [B, Tq, H, Dv] (=), lse [B, H, Tq].
template <int DKP, int DVP, class Config, bool kWithSegments = true>
void launch_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const AttentionShape& s,
                    cudaStream_t stream) {
  using Tiles = ForwardTiles<DKP, DVP, Config>;
  auto kernel = pick_kernel<kWithSegments>(s, forward_kernel<DKP, DVP, Config, kWithSegments>,
                                           forward_kernel<DKP, DVP, Config, false>);
  allow_shared_memory(kernel, Tiles::kSmemBytes);
  kernel<<<grid(s.B * s.H, tiles(s.Tq, Tiles::kBlockM)), Tiles::kThreads, Tiles::kSmemBytes, stream>>>(out, lse, q,
                                                                                                       k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
}

// dk, dv += (one of them, or both: kDV, kDK); ORDERED_DQ: dq_accum +=, dq_turns (zeroed) used.
template <int DKP, int DVP, class Config, bool kDV, bool kDK, bool kWithSegments>
void launch_backward_kv(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
                        const bf16* k, const bf16* v, const AttentionShape& s, float* dq_accum, int* dq_turns,
                        cudaStream_t stream) {
  using Tiles = KeyTiles<DKP, DVP, kDV, kDK, Config>;
  auto kernel = pick_kernel<kWithSegments>(s, backward_kv_kernel<DKP, DVP, Config, kDV, kDK, kWithSegments>,
                                           backward_kv_kernel<DKP, DVP, Config, kDV, kDK, false>);
  const int bytes = Tiles::kSmemBytes + (s.segment_start ? Tiles::kSegmentBytes : 0);
  allow_shared_memory(kernel, bytes);
  kernel<<<grid(s.B * s.KVH, tiles(s.Tk, Tiles::kBlockN)), Tiles::kThreads, bytes, stream>>>(
      dk, dv, dout, lse, dsum, q, k, v, s, dq_accum, dq_turns);
  DSK_CUDA_CHECK_LAUNCH();
}

// dq +=.
template <int DKP, int DVP, class Config, bool kWithSegments = true>
void launch_backward_q(bf16* dq, const bf16* dout, const float* lse, const float* dsum, const bf16* q, const bf16* k,
                       const bf16* v, const AttentionShape& s, cudaStream_t stream) {
  using Tiles = QueryTiles<DKP, DVP, Config>;
  auto kernel = pick_kernel<kWithSegments>(s, backward_q_kernel<DKP, DVP, Config, kWithSegments>,
                                           backward_q_kernel<DKP, DVP, Config, false>);
  allow_shared_memory(kernel, Tiles::kSmemBytes);
  kernel<<<grid(s.B * s.H, tiles(s.Tq, Tiles::kBlockM)), Tiles::kThreads, Tiles::kSmemBytes, stream>>>(
      dq, dout, lse, dsum, q, k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
}

// dk, dv += without ORDERED_DQ: in one pass, or in two when their accumulators would not both fit
// in registers (DKP + DVP > 256).
template <int DKP, int DVP, class KeyConfig, bool kWithSegments = true>
void launch_backward_key_blocks(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum,
                                const bf16* q, const bf16* k, const bf16* v, const AttentionShape& s,
                                cudaStream_t stream) {
  static_assert(!KeyConfig::kOrderedDq, "launch_backward runs ORDERED_DQ configurations");
  if constexpr (DKP + DVP <= 256) {
    launch_backward_kv<DKP, DVP, KeyConfig, true, true, kWithSegments>(dk, dv, dout, lse, dsum, q, k, v, s, nullptr,
                                                                      nullptr, stream);
  } else {
    launch_backward_kv<DKP, DVP, KeyConfig, true, false, kWithSegments>(dk, dv, dout, lse, dsum, q, k, v, s, nullptr,
                                                                       nullptr, stream);
    launch_backward_kv<DKP, DVP, KeyConfig, false, true, kWithSegments>(dk, dv, dout, lse, dsum, q, k, v, s, nullptr,
                                                                       nullptr, stream);
  }
}

// dq (layout of q) += dq_accum [B, H, Tq, DKP] * scale: ORDERED_DQ's last step.
template <int DKP>
__global__ void add_dq_accumulator_kernel(bf16* dq, const float* dq_accum, AttentionShape s) {
  const int64_t pair = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // ((b * Tq + m) * H + h) * Dk / 2 + d / 2
  if (pair >= int64_t(s.B) * s.Tq * s.H * (s.Dk / 2)) return;
  const int d = int(pair % (s.Dk / 2)) * 2;
  const int64_t row = pair / (s.Dk / 2), h = row % s.H, bm = row / s.H, b = bm / s.Tq, m = bm % s.Tq;
  const float2 sum = *reinterpret_cast<const float2*>(dq_accum + ((b * s.H + h) * s.Tq + m) * DKP + d);
  auto* out = reinterpret_cast<__nv_bfloat162*>(dq + bm * s.q_stride + h * s.Dk + d);
  const float2 old = __bfloat1622float2(*out);
  *out = __floats2bfloat162_rn(old.x + sum.x * s.scale, old.y + sum.y * s.scale);
}

// The floats of workspace backward() needs beyond D: ORDERED_DQ's dq_accum and turns.
template <int DKP, int DVP, class KeyConfig>
size_t backward_workspace_floats(const AttentionShape& s) {
  if constexpr (!KeyConfig::kOrderedDq) {
    return 0;
  } else {
    using Tiles = KeyTiles<DKP, DVP, true, true, KeyConfig>;
    return size_t(s.B) * s.H * (size_t(s.Tq) * DKP + tiles(s.Tq, Tiles::kBlockM));
  }
}

// dq, dk, dv +=: the dK/dV kernel(s), then the dQ kernel, or with KeyConfig's ORDERED_DQ the one
// kernel for all three and dQ's conversion. workspace: backward_workspace_floats() floats.
template <int DKP, int DVP, class KeyConfig, class QueryConfig, bool kWithSegments = true>
void launch_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum,
                     const bf16* q, const bf16* k, const bf16* v, const AttentionShape& s, float* workspace,
                     cudaStream_t stream) {
  if constexpr (KeyConfig::kOrderedDq) {
    static_assert(DKP + DVP <= 256, "ORDERED_DQ needs dK and dV in one pass");
    float* dq_accum = workspace;
    int* dq_turns = reinterpret_cast<int*>(workspace + size_t(s.B) * s.H * s.Tq * DKP);
    const size_t bytes = backward_workspace_floats<DKP, DVP, KeyConfig>(s) * sizeof(float);
    DSK_CUDA_CHECK(cudaMemsetAsync(workspace, 0, bytes, stream));
    launch_backward_kv<DKP, DVP, KeyConfig, true, true, kWithSegments>(dk, dv, dout, lse, dsum, q, k, v, s, dq_accum,
                                                                      dq_turns, stream);
    constexpr int kThreads = 256;
    add_dq_accumulator_kernel<DKP><<<blocks_for(int64_t(s.B) * s.Tq * s.H * (s.Dk / 2), kThreads), kThreads, 0,
                                     stream>>>(dq, dq_accum, s);
    DSK_CUDA_CHECK_LAUNCH();
  } else {
    launch_backward_key_blocks<DKP, DVP, KeyConfig, kWithSegments>(dk, dv, dout, lse, dsum, q, k, v, s, stream);
    launch_backward_q<DKP, DVP, QueryConfig, kWithSegments>(dq, dout, lse, dsum, q, k, v, s, stream);
  }
}

}  // namespace dsk::kernels::cuda::flash
