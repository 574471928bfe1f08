// Causal flash attention, forward and backward (semantics: kernels/cpu/attention.cpp; API:
// attention.cuh). Two paths with one algorithm:
//   bf16: tensor cores (attention_flash.cuh), head dims padded to one of the compiled pairs below;
//   float, and bf16 tensors whose rows the tensor-core loads cannot take (not 16-byte aligned):
//         plain fp32 SIMT kernels (attention_simt.cuh).
// Backward first computes D = rowsum(dout * out) [B, H, Tq] into scratch, then dK/dV (one block
// per key tile) and dQ (one block per query tile): every gradient element has one owner, so the
// result is deterministic without atomics. Packed rows (s.segment_start): the tensor-core kernels
// are compiled with and without segments (kSegments), the SIMT ones test the pointer.
#include <cstdint>
#include <type_traits>

#include "core/error.hpp"
#include "cuda/attention.cuh"
#include "cuda/attention_flash.cuh"
#include "cuda/attention_simt.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr int kMaxHeadDim = 256;
constexpr unsigned kMaxGridY = 65535;

std::string describe(const AttentionShape& s) {
  return str("B=", s.B, " Tq=", s.Tq, " Tk=", s.Tk, " H=", s.H, " KVH=", s.KVH, " Dk=", s.Dk, " Dv=", s.Dv,
             " strides q=", s.q_stride, " k=", s.k_stride, " v=", s.v_stride);
}

// The shapes both paths support; anything else is a caller's bug, reported with the shape.
void check_shape(const AttentionShape& s, const char* op) {
  const bool head_dims_ok = s.Dk > 0 && s.Dv > 0 && s.Dk % 8 == 0 && s.Dv % 8 == 0 && s.Dk <= kMaxHeadDim &&
                            s.Dv <= kMaxHeadDim;
  const bool heads_ok = s.H > 0 && s.KVH > 0 && s.H % s.KVH == 0;
  const bool lengths_ok = s.B >= 0 && s.Tq >= 0 && s.Tq <= s.Tk &&
                          unsigned((s.Tq + simt::kQueries - 1) / simt::kQueries) <= kMaxGridY &&
                          unsigned((s.Tk + simt::kKeys - 1) / simt::kKeys) <= kMaxGridY;
  const bool strides_ok = s.q_stride >= s.H * s.Dk && s.k_stride >= s.KVH * s.Dk && s.v_stride >= s.KVH * s.Dv;
  if (!head_dims_ok || !heads_ok || !lengths_ok || !strides_ok)
    throw InternalError(str("attention ", op, ": unsupported shape ", describe(s),
                            " (want head dims multiples of 8 up to 256, H a multiple of KVH, Tq <= Tk, "
                            "strides at least the heads' width)"));
}

bool aligned_16(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 == 0; }

// The tensor-core path loads rows in 16-byte pieces: every tensor 16-byte aligned, every row
// stride a multiple of 8 elements (head dims are, so head offsets are too).
template <typename T>
bool tensor_core_path(const AttentionShape& s, std::initializer_list<const void*> tensors) {
  if constexpr (!std::is_same_v<T, bf16>) {
    return false;
  } else {
    for (const void* tensor : tensors)
      if (!aligned_16(tensor)) return false;
    return s.q_stride % 8 == 0 && s.k_stride % 8 == 0 && s.v_stride % 8 == 0;
  }
}

// Calls launch(integral_constant<DKP>, integral_constant<DVP>) with the first compiled pair of
// padded head dims holding Dk and Dv (smallest first: MLA's 96/64 and the common 64, 128 exactly;
// the tiny fixture dims in 16; DeepSeek-V3's 192/128).
template <int DKP, int DVP, typename Launch>
bool launch_if_fits(int Dk, int Dv, Launch& launch) {
  if (Dk > DKP || Dv > DVP) return false;
  launch(std::integral_constant<int, DKP>{}, std::integral_constant<int, DVP>{});
  return true;
}

template <typename Launch>
void with_padded_head_dims(int Dk, int Dv, Launch&& launch) {
  launch_if_fits<16, 16>(Dk, Dv, launch) || launch_if_fits<32, 32>(Dk, Dv, launch) ||
      launch_if_fits<64, 64>(Dk, Dv, launch) || launch_if_fits<96, 64>(Dk, Dv, launch) ||
      launch_if_fits<128, 128>(Dk, Dv, launch) || launch_if_fits<192, 128>(Dk, Dv, launch) ||
      launch_if_fits<256, 256>(Dk, Dv, launch);
}

// Kernels using more than 48 KB of dynamic shared memory must say so (per device, so every launch).
template <typename Kernel>
void allow_shared_memory(Kernel kernel, int bytes) {
  DSK_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

dim3 grid(int rows, int tiles) { return dim3(unsigned(rows), unsigned(tiles)); }
int tiles(int length, int tile) { return (length + tile - 1) / tile; }

// D [B, H, Tq] = rowsum(dout * out) over Dv: one warp per (b, t, h) row of out.
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

void flash_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const AttentionShape& s,
                   cudaStream_t stream) {
  with_padded_head_dims(s.Dk, s.Dv, [&](auto dk, auto dv) {
    constexpr int DKP = decltype(dk)::value, DVP = decltype(dv)::value;
    using Tiles = flash::ForwardTiles<DKP, DVP>;
    auto kernel = s.segment_start ? flash::forward_kernel<DKP, DVP, true> : flash::forward_kernel<DKP, DVP, false>;
    allow_shared_memory(kernel, Tiles::kSmemBytes);
    kernel<<<grid(s.B * s.H, tiles(s.Tq, Tiles::kBlockM)), flash::kThreads, Tiles::kSmemBytes, stream>>>(out, lse, q,
                                                                                                          k, v, s);
    DSK_CUDA_CHECK_LAUNCH();
  });
}

template <int DKP, int DVP, bool kDV, bool kDK>
void launch_flash_backward_kv(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
                              const bf16* k, const bf16* v, const AttentionShape& s, cudaStream_t stream) {
  using Tiles = flash::KeyTiles<DKP, DVP, kDV, kDK>;
  auto kernel = s.segment_start ? flash::backward_kv_kernel<DKP, DVP, kDV, kDK, true>
                                : flash::backward_kv_kernel<DKP, DVP, kDV, kDK, false>;
  const int bytes = Tiles::kSmemBytes + (s.segment_start ? Tiles::kSegmentBytes : 0);
  allow_shared_memory(kernel, bytes);
  kernel<<<grid(s.B * s.KVH, tiles(s.Tk, Tiles::kBlockN)), flash::kThreads, bytes, stream>>>(dk, dv, dout, lse, dsum, q,
                                                                                             k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
}

void flash_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
                    const bf16* k, const bf16* v, const AttentionShape& s, cudaStream_t stream) {
  with_padded_head_dims(s.Dk, s.Dv, [&](auto dk_dim, auto dv_dim) {
    constexpr int DKP = decltype(dk_dim)::value, DVP = decltype(dv_dim)::value;
    if constexpr (DKP + DVP <= 256) {
      launch_flash_backward_kv<DKP, DVP, true, true>(dk, dv, dout, lse, dsum, q, k, v, s, stream);
    } else {  // dK and dV accumulators would not both fit in registers: one pass each
      launch_flash_backward_kv<DKP, DVP, true, false>(dk, dv, dout, lse, dsum, q, k, v, s, stream);
      launch_flash_backward_kv<DKP, DVP, false, true>(dk, dv, dout, lse, dsum, q, k, v, s, stream);
    }
    using Tiles = flash::QueryTiles<DKP, DVP>;
    auto kernel =
        s.segment_start ? flash::backward_q_kernel<DKP, DVP, true> : flash::backward_q_kernel<DKP, DVP, false>;
    allow_shared_memory(kernel, Tiles::kSmemBytes);
    kernel<<<grid(s.B * s.H, tiles(s.Tq, Tiles::kBlockM)), flash::kThreads, Tiles::kSmemBytes, stream>>>(
        dq, dout, lse, dsum, q, k, v, s);
    DSK_CUDA_CHECK_LAUNCH();
  });
}

template <typename T>
void simt_forward(T* out, float* lse, const T* q, const T* k, const T* v, const AttentionShape& s,
                  cudaStream_t stream) {
  const int bytes = simt::forward_smem_floats(s) * int(sizeof(float));
  allow_shared_memory(simt::forward_kernel<T>, bytes);
  simt::forward_kernel<T><<<grid(s.B * s.H, tiles(s.Tq, simt::kQueries)), simt::kThreads, bytes, stream>>>(
      out, lse, q, k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
void simt_backward(T* dq, T* dk, T* dv, const T* dout, const float* lse, const float* dsum, const T* q, const T* k,
                   const T* v, const AttentionShape& s, cudaStream_t stream) {
  const int kv_bytes = simt::backward_kv_smem_floats(s) * int(sizeof(float));
  allow_shared_memory(simt::backward_kv_kernel<T>, kv_bytes);
  simt::backward_kv_kernel<T><<<grid(s.B * s.KVH, tiles(s.Tk, simt::kKeys)), simt::kThreads, kv_bytes, stream>>>(
      dk, dv, dout, lse, dsum, q, k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
  const int q_bytes = simt::backward_q_smem_floats(s) * int(sizeof(float));
  allow_shared_memory(simt::backward_q_kernel<T>, q_bytes);
  simt::backward_q_kernel<T><<<grid(s.B * s.H, tiles(s.Tq, simt::kQueries)), simt::kThreads, q_bytes, stream>>>(
      dq, dout, lse, dsum, q, k, v, s);
  DSK_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename T>
void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, const AttentionShape& s,
                       cudaStream_t stream) {
  check_shape(s, "forward");
  if (s.B == 0 || s.Tq == 0) return;
  if constexpr (std::is_same_v<T, bf16>) {
    if (tensor_core_path<T>(s, {out, q, k, v})) return flash_forward(out, lse, q, k, v, s, stream);
  }
  simt_forward(out, lse, q, k, v, s, stream);
}

size_t attention_backward_scratch_floats(const AttentionShape& s) { return size_t(s.B) * s.H * s.Tq; }

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& s, float* scratch, cudaStream_t stream) {
  check_shape(s, "backward");
  if (s.B == 0 || s.Tq == 0) return;
  float* dsum = scratch;
  launch_output_dot(dsum, dout, out, s, stream);
  if constexpr (std::is_same_v<T, bf16>) {
    if (tensor_core_path<T>(s, {dq, dk, dv, dout, q, k, v}))
      return flash_backward(dq, dk, dv, dout, lse, dsum, q, k, v, s, stream);
  }
  simt_backward(dq, dk, dv, dout, lse, dsum, q, k, v, s, stream);
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                       const AttentionShape&, cudaStream_t);
template void attention_forward<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, const AttentionShape&,
                                      cudaStream_t);
template void attention_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                        const float*, const float*, const float*, const AttentionShape&, float*,
                                        cudaStream_t);
template void attention_backward<bf16>(bf16*, bf16*, bf16*, const bf16*, const bf16*, const float*, const bf16*,
                                       const bf16*, const bf16*, const AttentionShape&, float*, cudaStream_t);

}  // namespace dsk::kernels::cuda
