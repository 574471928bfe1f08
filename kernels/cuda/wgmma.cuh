// Hopper's warpgroup matrix products (wgmma, sm_90a) on bf16 tiles of 64 columns in shared
// memory, with fp32 accumulators: the layouts, descriptors and the two product forms that a
// flash-attention backward needs. A warpgroup (4 consecutive warps, the first at a warp index
// divisible by 4) computes a 64 x 64 product 16 of K at a time.
//
// The tiles: R rows of 64 bf16 (128 bytes a row), stored in the 128-byte swizzle, in which the
// 16-byte chunk c of row r lives at chunk c ^ (r % 8) of the row, so that the 8 rows of a core
// group read their chunks from 8 different bank groups. A tile starts on 1024 bytes.
// The same tile serves as either operand layout (PTX, "Shared Memory Matrix Layout"):
// - K-major (its 64 columns are K): the 8-row groups 1024 bytes apart; the k-th 16 of K starts
//   32 * k bytes into the rows (the swizzle is applied by the hardware on the address);
// - MN-major for B (its rows are K, its 64 columns are N; the instruction's transpose bit): the
//   k-th 16 of K is rows 16k.. 16k+15, 2048 * k bytes in.
// Accumulators (m64nN, fp32): warp w of the group holds rows 16w + lane / 4 and + 8; for each
// 8 columns j, d[4j], d[4j + 1] are columns 8j + 2 (lane % 4) + (0, 1) of the first row and
// d[4j + 2], d[4j + 3] of the second. Register A fragments (m64k16) have the same layout as the
// accumulators of two adjacent 8-column blocks, so a product's result (P, dS) feeds the next one
// as A without passing through shared memory, as FlashAttention-3 does.
#pragma once

#include <cstdint>

#include "cuda/mma.cuh"

namespace dsk::kernels::cuda::wgmma {

constexpr int kTileColumns = 64;   // bf16 columns a tile row holds: 128 bytes, one swizzle row
constexpr int kGroupBytes = 1024;  // 8 rows: the swizzle pattern's period

// Byte offset of element (row, column) in a swizzled tile.
__host__ __device__ constexpr uint32_t swizzled_offset(int row, int column) {
  return uint32_t(row) * 128u + ((uint32_t((column >> 3) ^ row) & 7u) << 4) + uint32_t(column & 7) * 2u;
}

// The descriptor of a swizzled tile whose operand starts `bytes` past the tile's start.
__device__ __forceinline__ uint64_t descriptor(const void* tile, uint32_t bytes = 0) {
  const uint32_t address = ptx::shared_address(tile) + bytes;
  uint64_t d = uint64_t((address & 0x3FFFFu) >> 4);
  d |= uint64_t(1) << 16;                   // leading byte offset: unused when a row is one swizzle row
  d |= uint64_t(kGroupBytes >> 4) << 32;    // stride byte offset: 8-row groups
  d |= uint64_t(1) << 62;                   // 128-byte swizzle
  return d;
}

// Where the k-th 16 of K starts in a tile used K-major, or MN-major.
__device__ __forceinline__ uint32_t k_major_step(int k) { return uint32_t(k) * 32u; }
__device__ __forceinline__ uint32_t mn_major_step(int k) { return uint32_t(k) * 2048u; }

// Orders this thread's generic-proxy writes to shared memory (st.shared, cp.async) before the
// async proxy's reads (wgmma operands); then a barrier makes every thread's writes count.
__device__ __forceinline__ void fence_shared_for_async() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int kPending>
__device__ __forceinline__ void wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Keeps the compiler from moving reads or writes of the accumulators across an asynchronous
// product (the registers change under it until wait()).
__device__ __forceinline__ void pin(float (&d)[32]) {
#pragma unroll
  for (int i = 0; i < 32; i++) asm volatile("" : "+f"(d[i])::"memory");
}

// d (64 x 64) (+)= A (64 x 16, K-major tile) * B (16 x 64, K-major tile: B's rows are N).
// accumulate = false overwrites d.
__device__ __forceinline__ void mma_ss(float (&d)[32], uint64_t a, uint64_t b, bool accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(a), "l"(b), "r"(int(accumulate)));
#endif
}

// d (64 x 64) (+)= A (64 x 16 from registers: a[0..3], the accumulator layout above) * B (16 x 64,
// MN-major tile when TRANSPOSE_B, else K-major).
template <bool TRANSPOSE_B>
__device__ __forceinline__ void mma_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b, bool accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(int(accumulate)), "n"(TRANSPOSE_B ? 1 : 0));
#endif
}

// The register A fragment of K columns 16k .. 16k + 15 from an accumulator d (rows as d's), as bf16.
__device__ __forceinline__ void fragment_from_accumulator(uint32_t (&a)[4], const float (&d)[32], int k) {
  a[0] = ptx::pack_bf16(d[8 * k + 0], d[8 * k + 1]);
  a[1] = ptx::pack_bf16(d[8 * k + 2], d[8 * k + 3]);
  a[2] = ptx::pack_bf16(d[8 * k + 4], d[8 * k + 5]);
  a[3] = ptx::pack_bf16(d[8 * k + 6], d[8 * k + 7]);
}

}  // namespace dsk::kernels::cuda::wgmma
