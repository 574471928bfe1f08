// A decode step's decoder layers in one persistent kernel (decode_layers.cu), for dense GQA
// models (llama, qwen2) at up to kGemvMaxRows sequences of one new token each.
//
// Why: op by op, a layer is six kernels (q/k/v, RoPE + KV write, paged attention, o, gate/up,
// down), and each boundary costs about 4 us (the wait for the previous grid, its memory flush,
// the first bytes' latency, the last blocks' tail) against the 20-25 us a layer's weights take to
// stream on an H200: batch 1 stayed at 0.4 of the bandwidth bound. Here one block an SM runs all
// the layers. A producer warp streams every weight row the block will need, layer after layer,
// into a ring of shared-memory stages (cp.async.bulk, an mbarrier a stage), never waiting for
// the data: weights do not depend on it. The consumer warps wait at a grid-wide barrier where a
// product needs the whole of the previous one (five a layer), then dot the streamed rows with
// their input rows. So the weight stream keeps going through the barriers and the attention.
//
// Where it stands (H200, llama-1b, scripts/bench/decode_layers_bench.cu, docs/benchmarks.md,
// 2026-12-02): 0.67 ms a step of one sequence, 0.57 of the weights-over-bandwidth bound; in the
// engine 1,355-1,364 tokens/s against 1,154-1,157 op by op in the same call, so it is the default
// for steps of 1-4 sequences (PagedPlan::fused_decode). Without its barriers and attention the
// same streaming and products reach 0.77-0.85 of the bound; with them a layer is 41 us: the
// products 16, the five grid barriers 13 (about 3 us each, once the producer keeps only one
// stage in flight: with four, the round trips waited behind the copies and took 4-6), attention
// 7.5, the input loads and norms 4.5.
//
// Same arithmetic as the ops it replaces, in the same order, for the products (the rows of
// gemv_stream.cuh, RMSNorm computed by the products as rmsnorm_gemv_*) and RoPE
// (rope_rotation.cuh); attention sums its keys in another order than paged_attention_forward
// (within float rounding), and writes the new key and value to the pool as rope_paged_kv_write.
#pragma once

#include "cuda/common.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/gemv.cuh"

namespace dsk::kernels::cuda {

// One layer's weights (rows of [out, in], as Linear) and its pool; biases may be null.
template <typename T>
struct DecodeLayer {
  const T* input_norm;
  const T* qkv[3];  // q [H * D, C], k and v [KVH * D, C]
  const T* qkv_bias[3];
  const T* o;  // [C, H * D]
  const T* o_bias;
  const T* post_norm;
  const T* gate;  // gate and up [I, C]
  const T* up;
  const T* down;  // [C, I]
  const T* down_bias;
  T* k_pool;  // [slots, KVH * D]
  T* v_pool;
};

// The step: N tokens, token n the one new token of sequence[n] (its row of block_tables) at
// positions[n], writing its key and value to slots[n].
template <typename T>
struct DecodeLayersArgs {
  const DecodeLayer<T>* layers;  // device array of layer_count
  int layer_count;
  T* x;  // [N, C] the residual stream, in and out
  T* q;  // [N, H * D], k and v [N, KVH * D]: the step's products (q and k before RoPE)
  T* k;
  T* v;
  T* attention;    // [N, H * D]: attention's output
  T* act;          // [N, I]: SwiGLU's output
  float* partials; // decode_layers_partial_floats
  unsigned* counters;  // kDecodeCounters, zero before the first launch; each launch leaves them zero
  const int32_t* positions;
  const int32_t* slots;
  const int32_t* sequence;
  const int32_t* block_tables;  // [sequences, table_width]
  RopeDevice rope;              // over the whole head (rot_dim D)
  int N, C, H, KVH, D, I, block_size, table_width;
  float eps, scale;
};

// Heads a step may have at most, and the counters a launch uses (grid barrier, heads' merges).
constexpr int kDecodeMaxHeads = 256;
constexpr int kDecodeCounters = 2 + kGemvMaxRows * kDecodeMaxHeads;

// Floats of `partials` a launch for N tokens of H heads of D needs on the current device.
size_t decode_layers_partial_floats(int N, int H, int D);

// x += the layers' updates; false (nothing launched) where the device, the shape or the
// alignment does not allow it. host_layers: the same table as args.layers, in host memory.
template <typename T>
bool decode_layers_forward(const DecodeLayersArgs<T>& args, const DecodeLayer<T>* host_layers, cudaStream_t stream);

#ifdef DSK_DECODE_TRACE
// Prints the phases of the last launch's traced layer (decode_layers.cu; a profiling build only).
void decode_layers_print_trace();
#endif

}  // namespace dsk::kernels::cuda
