// Causal flash attention, forward and backward (semantics: kernels/cpu/attention.cpp; API:
// attention.cuh). Two paths with one algorithm:
//   bf16: tensor cores (attention_flash.cuh), head dims padded to one of the compiled pairs below;
//   float, and bf16 tensors whose rows the tensor-core loads cannot take (not 16-byte aligned):
//         plain fp32 SIMT kernels (attention_simt.cuh).
// Backward first computes D = rowsum(dout * out) [B, H, Tq] into scratch, then dK/dV (one block
// per key tile) and dQ (one block per query tile): every gradient element has one owner, so the
// result is deterministic without atomics; or, with a one-pass TileChoice (KeyConfig's
// ORDERED_DQ), the key-tile blocks add dQ parts into an fp32 accumulator in a fixed order.
// Packed rows (s.segment_start): the tensor-core kernels are compiled with and without segments
// (kSegments), the SIMT ones test the pointer. On Hopper (an sm_90a build, DSK_WGMMA, and an
// sm_90 device) plain causal rows with 64-wide heads take the same forward and two backward
// kernels with their products on wgmma instead (attention_wgmma.cuh); the tile choices below
// then serve packed rows, the other head dims and older GPUs.
#include <cstdint>
#include <type_traits>

#include "core/error.hpp"
#include "cuda/attention.cuh"
#include "cuda/attention_flash_launch.cuh"
#include "cuda/attention_simt.cuh"
#include "cuda/attention_wgmma.cuh"

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

using flash::allow_shared_memory;
using flash::launch_output_dot;
using flash::grid;
using flash::tiles;

// The tile configuration of the tensor-core kernels per padded head-dim pair (attention_flash.cuh
// says what each parameter means): to change one, change its three aliases below. Pairs without a
// specialization use the heuristics (all 0, which is also what the specializations hold until a
// sweep picks better). scripts/device/attention-sweep-gpu.sh times the candidates
// (scripts/bench/attention_sweep.cu), prints the fastest correct ones as these specializations,
// and builds and runs the parity tests (tests/gpu/attention_test.cu, segment_attention_test.cu)
// with them in place of these: DSK_ATTENTION_TILE_CHOICE names a header holding them instead.
template <int DKP, int DVP>
struct TileChoice {
  using Forward = flash::ForwardConfig<4>;
  using Key = flash::KeyConfig<4>;
  using Query = flash::QueryConfig<4>;
};
#ifdef DSK_ATTENTION_TILE_CHOICE
#include DSK_ATTENTION_TILE_CHOICE
#else
// The sweep's picks on the H200 (2026-12-01, scripts/device/attention-sweep-gpu.sh; the parity
// tests passed with them): fwd+bwd 0.921 -> 0.811 ms on dense-124m, 2.635 -> 2.323 ms at T = 4096,
// 0.780 -> 0.731 ms on MLA's 96/64; nothing beat the heuristics at 128/128. The one-pass
// backward (KeyConfig's last parameter) measured 0.64-0.87x of the two kernels, so it is not used.
template <>
struct TileChoice<64, 64> {  // dense-124m, long-4k
  using Forward = flash::ForwardConfig<4>;
  using Key = flash::KeyConfig<4, 1, 32, 0>;
  using Query = flash::QueryConfig<4, 2, 16, 0>;
};
template <>
struct TileChoice<96, 64> {  // MLA (moe-16e)
  using Forward = flash::ForwardConfig<4>;
  using Key = flash::KeyConfig<4, 1, 64, 0>;
  using Query = flash::QueryConfig<4, 1, 64, 0>;
};
template <>
struct TileChoice<128, 128> {  // llama-1b
  using Forward = flash::ForwardConfig<4>;
  using Key = flash::KeyConfig<4>;
  using Query = flash::QueryConfig<4>;
};
#endif

// Whether this build has the wgmma kernels and the current device runs them (sm_90).
bool wgmma_device() {
#ifdef DSK_WGMMA
  return device_traits().major == 9;
#else
  return false;
#endif
}

// The wgmma kernels take plain causal attention (no packed rows) with 64-wide heads.
bool wgmma_path(const AttentionShape& s) {
  return s.Dk == flash::hopper::kD && s.Dv == flash::hopper::kD && !s.segment_start && wgmma_device();
}

void flash_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const AttentionShape& s,
                   cudaStream_t stream) {
  if (wgmma_path(s)) return flash::hopper::launch_forward(out, lse, q, k, v, s, stream);
  with_padded_head_dims(s.Dk, s.Dv, [&](auto dk, auto dv) {
    constexpr int DKP = decltype(dk)::value, DVP = decltype(dv)::value;
    flash::launch_forward<DKP, DVP, typename TileChoice<DKP, DVP>::Forward>(out, lse, q, k, v, s, stream);
  });
}

// scratch holds D [B, H, Tq], then (from a 16-byte boundary) the tile choice's workspace.
size_t dsum_floats(const AttentionShape& s) { return (size_t(s.B) * s.H * s.Tq + 3) / 4 * 4; }

void flash_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
                    const bf16* k, const bf16* v, const AttentionShape& s, float* workspace, cudaStream_t stream) {
  if (wgmma_path(s))
    return flash::hopper::launch_backward(dq, dk, dv, dout, lse, dsum, q, k, v, s, stream);
  with_padded_head_dims(s.Dk, s.Dv, [&](auto dk_dim, auto dv_dim) {
    constexpr int DKP = decltype(dk_dim)::value, DVP = decltype(dv_dim)::value;
    using Choice = TileChoice<DKP, DVP>;
    flash::launch_backward<DKP, DVP, typename Choice::Key, typename Choice::Query>(dq, dk, dv, dout, lse, dsum, q, k,
                                                                                  v, s, workspace, stream);
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

size_t attention_backward_scratch_floats(const AttentionShape& s) {
  size_t workspace = 0;
  if (s.Dk > 0 && s.Dv > 0)
    with_padded_head_dims(s.Dk, s.Dv, [&](auto dk, auto dv) {
      constexpr int DKP = decltype(dk)::value, DVP = decltype(dv)::value;
      workspace = flash::backward_workspace_floats<DKP, DVP, typename TileChoice<DKP, DVP>::Key>(s);
    });
  return dsum_floats(s) + workspace;
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q, const T* k,
                        const T* v, const AttentionShape& s, float* scratch, cudaStream_t stream) {
  check_shape(s, "backward");
  if (s.B == 0 || s.Tq == 0) return;
  float* dsum = scratch;
  launch_output_dot(dsum, dout, out, s, stream);
  if constexpr (std::is_same_v<T, bf16>) {
    if (tensor_core_path<T>(s, {dq, dk, dv, dout, q, k, v}))
      return flash_backward(dq, dk, dv, dout, lse, dsum, q, k, v, s, scratch + dsum_floats(s), stream);
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
