// Serving's paged KV cache on the GPU, the twin of kernels/cpu/paged_attention.cpp (same shapes
// and semantics, kernels.hpp): paged_kv_write scatters new key/value rows into their pool slots;
// paged_attention_forward is causal attention of a ragged batch (decode tokens and prefill chunks
// mixed) that reads each sequence's keys and values through its block table.
//
// One block of 4 warps per (query token, query head, key partition); each warp takes chunks of 32
// keys. Per chunk the key rows are split over lanes (a lane keeps its columns of q in registers;
// groups of lanes take different keys) and a batch of keys' rows is requested before the first is
// used, so a chunk costs a couple of memory round trips instead of one per key; the warp keeps an
// online softmax, then P.V splits the value rows over lanes the same way, batched alike; the 4
// warps' partial results merge in shared memory. Decode of a small batch has too few (query, head)
// blocks to fill the GPU (batch 1 of llama-1b: 16 blocks on 132 SMs), so when there are fewer
// than 2 per SM the keys are also split over partitions that take rounds of 128 keys round-robin
// (so a short context still spreads when max_keys, as in a CUDA graph's replays, is the longest
// possible), and the last partition block of a (query, head) to finish merges their partial
// results (flash-decoding without a second kernel). fp32 statistics and accumulation;
// deterministic: fixed reduction orders, and the merge adds the partitions in partition order
// whichever block does it (the only atomic counts arrivals). Dk <= 1024, Dv <= 512 (MLA's
// absorbed form: 576 and 512).
#pragma once

#include "cpu/kernels.hpp"
#include "cuda/common.cuh"
#include "cuda/elementwise.cuh"

namespace dsk::kernels::cuda {

using PagedAttentionShape = cpu::PagedAttentionShape;

// pool [slots, stride] <- rows [N, row] at slots [N].
template <typename T>
void paged_kv_write(T* pool, const T* rows, const int32_t* slots, int N, int row, int stride, cudaStream_t stream);

// A decode step's RoPE and KV write in one launch (rope_kv_write.cu): q [N, H, D] and k [N, KVH,
// D] rotated in place over the whole head (rope_forward, rot_dim D), then k and v [N, KVH, D]
// stored at their slots of k_pool and v_pool (rows of KVH * D).
template <typename T>
void rope_paged_kv_write(T* q, T* k, const T* v, T* k_pool, T* v_pool, const int32_t* positions, const int32_t* slots,
                         const RopeDevice& rope, int N, int H, int KVH, int D, cudaStream_t stream);

// Floats of scratch paged_attention_forward needs for shape s (0 when it does not split).
size_t paged_attention_scratch_floats(const PagedAttentionShape& s);
// The arrival counters a launch that splits uses, one per (query, head): turns holds this many,
// zero before the first launch; each launch leaves them zero. Launches that may run at the same
// time (other streams) need counters of their own.
int paged_attention_turns();
template <typename T>
void paged_attention_forward(T* out, const T* q, const T* k_pool, const T* v_pool, const int32_t* block_tables,
                             const int32_t* sequence, const int32_t* positions, const PagedAttentionShape& s,
                             float* scratch, unsigned* turns, cudaStream_t stream);

}  // namespace dsk::kernels::cuda
