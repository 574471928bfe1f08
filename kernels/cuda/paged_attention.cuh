// Serving's paged KV cache on the GPU, the twin of kernels/cpu/paged_attention.cpp (same shapes
// and semantics, kernels.hpp): paged_kv_write scatters new key/value rows into their pool slots;
// paged_attention_forward is causal attention of a ragged batch (decode tokens and prefill chunks
// mixed) that reads each sequence's keys and values through its block table.
//
// One block of 4 warps per (query head, query token, key partition). A lane scores one key at a
// time (its whole dot product against the query, kept in shared memory as fp32), the warp keeps
// an online softmax over chunks of 32 keys, and lanes own output columns for the P.V part; the
// 4 warps' partial results merge in shared memory. When the grid would leave SMs idle (few
// queries: batch-1 decode) and contexts are long, the keys are also split into partitions whose
// partial results a second kernel merges (flash-decoding). fp32 statistics and accumulation;
// deterministic (no atomics). Dk <= 1024, Dv <= 512 (MLA's absorbed form: 576 and 512).
#pragma once

#include "cpu/kernels.hpp"
#include "cuda/common.cuh"

namespace dsk::kernels::cuda {

using PagedAttentionShape = cpu::PagedAttentionShape;

// pool [slots, stride] <- rows [N, row] at slots [N].
template <typename T>
void paged_kv_write(T* pool, const T* rows, const int32_t* slots, int N, int row, int stride, cudaStream_t stream);

// Floats of scratch paged_attention_forward needs for shape s (0 when it does not split).
size_t paged_attention_scratch_floats(const PagedAttentionShape& s);
template <typename T>
void paged_attention_forward(T* out, const T* q, const T* k_pool, const T* v_pool, const int32_t* block_tables,
                             const int32_t* sequence, const int32_t* positions, const PagedAttentionShape& s,
                             float* scratch, cudaStream_t stream);

}  // namespace dsk::kernels::cuda
