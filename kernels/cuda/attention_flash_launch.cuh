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

// dk, dv += (one of them, or both: kDV, kDK).
template <int DKP, int DVP, class Config, bool kDV, bool kDK, bool kWithSegments>
void launch_backward_kv(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
                        const bf16* k, const bf16* v, const AttentionShape& s, cudaStream_t stream) {
  using Tiles = KeyTiles<DKP, DVP, kDV, kDK, Config>;
  auto kernel = pick_kernel<kWithSegments>(s, backward_kv_kernel<DKP, DVP, Config, kDV, kDK, kWithSegments>,
                                           backward_kv_kernel<DKP, DVP, Config, kDV, kDK, false>);
  const int bytes = Tiles::kSmemBytes + (s.segment_start ? Tiles::kSegmentBytes : 0);
  allow_shared_memory(kernel, bytes);
  kernel<<<grid(s.B * s.KVH, tiles(s.Tk, Tiles::kBlockN)), Tiles::kThreads, bytes, stream>>>(dk, dv, dout, lse, dsum,
                                                                                             q, k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
}

// dk, dv += in one pass, or in two when their accumulators would not both fit in registers
// (DKP + DVP > 256).
template <int DKP, int DVP, class Config, bool kWithSegments = true>
void launch_backward_key_blocks(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum,
                                const bf16* q, const bf16* k, const bf16* v, const AttentionShape& s,
                                cudaStream_t stream) {
  if constexpr (DKP + DVP <= 256) {
    launch_backward_kv<DKP, DVP, Config, true, true, kWithSegments>(dk, dv, dout, lse, dsum, q, k, v, s, stream);
  } else {
    launch_backward_kv<DKP, DVP, Config, true, false, kWithSegments>(dk, dv, dout, lse, dsum, q, k, v, s, stream);
    launch_backward_kv<DKP, DVP, Config, false, true, kWithSegments>(dk, dv, dout, lse, dsum, q, k, v, s, stream);
  }
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

}  // namespace dsk::kernels::cuda::flash
