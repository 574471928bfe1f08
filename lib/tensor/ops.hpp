// The op interface: everything the model, the loss and the optimizer compute, as calls on Bufs.
// The layer code (lib/model) orchestrates these calls and exists once; a backend implements them:
// CpuOps (cpu_ops.cpp: kernels/cpu, the fp32 reference) and CudaOps (cuda/cuda_ops.cpp:
// kernels/cuda; bf16 or fp32). make_ops (device.hpp) picks one.
//
// Element types. "act" Bufs (activations, their gradients, the working copy of the weights) have
// activation_dtype(): f32 on the CPU, bf16 or f32 on CUDA. Parameter gradients, master weights,
// optimizer moments, rstd, attention's saved state, losses, routing scores and weights are f32.
// Token ids, positions and expert indices are i32; expert loads i64; the decay mask u8.
//
// The one convention, as in kernels/cpu/kernels.hpp: every backward ACCUMULATES (+=) into the
// gradients it produces; the caller zeroes activation-gradient Bufs before a backward pass. An
// empty Buf (data == nullptr) means "not wanted" where a comment says it may be empty.
// Shapes are row-major; N is the number of token positions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cpu/distill.hpp"
#include "cpu/kernels.hpp"
#include "tensor/buffer.hpp"

namespace dsk::tensor {

enum class Device { cpu, cuda };

using AttentionShape = kernels::cpu::AttentionShape;
using RouterConfig = kernels::cpu::RouterConfig;
using DistillLoss = kernels::cpu::DistillLoss;
using PagedAttentionShape = kernels::cpu::PagedAttentionShape;

// RoPE tables: the host description and, on CUDA, a device copy of inv_freq (prepare_rope).
struct RopeTables {
  kernels::cpu::Rope host;
  Buf inv_freq;  // f32 [rot_dim/2] in the backend's memory
};

struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
};

// A recorded sequence of ops (Ops::capture), queued again as a whole by replay().
class OpGraph {
 public:
  virtual ~OpGraph() = default;
  // Queues the recorded ops on the same buffers, whose contents may have changed. false (nothing
  // queued) once the backend's scratch memory has moved since the capture: capture again.
  virtual bool replay() = 0;
};

class Ops {
 public:
  virtual ~Ops() = default;

  virtual Device device() const = 0;
  virtual DType activation_dtype() const = 0;
  virtual std::string describe() const = 0;  // "cpu (fp32)", "cuda:0 NVIDIA H200 (bf16)"

  // ---- memory (never called in the step loop except copies of a batch's token ids)
  // ResourceError naming `what` and the sizes on out of memory.
  virtual void* allocate(size_t bytes, const std::string& what) = 0;
  virtual void release(void* data) = 0;
  virtual size_t memory_in_use() const = 0;  // bytes allocated through this backend
  virtual size_t peak_memory_in_use() const = 0;  // the most memory_in_use() has been
  virtual void copy_from_host(Buf dst, const void* host) = 0;  // dst.bytes() bytes
  virtual void copy_to_host(void* host, Buf src) = 0;          // src.bytes() bytes; waits for the device
  virtual void copy(Buf dst, Buf src) = 0;                     // same dtype and size
  virtual void zero(Buf b) = 0;
  virtual void synchronize() = 0;
  // CUDA: the cudaStream_t every op is enqueued on (collectives join it); the CPU: null.
  virtual void* native_stream() const { return nullptr; }
  // Backend-owned temporary memory for ops that need it; grows (once, at the first step) to the
  // largest request and is reused. Valid until the next op call.
  virtual Buf scratch(size_t bytes) = 0;
  virtual RopeTables prepare_rope(const kernels::cpu::Rope& rope) = 0;

  // ---- linear layers: out [N,OC] (=, or += when accumulate) = inp [N,C] @ weight[OC,C]^T + bias
  // (bias may be empty). weight and bias are act; dweight, dbias f32; dinp act. dinp, dweight,
  // dbias may each be empty (frozen weights, first layer).
  virtual void matmul_forward(Buf out, Buf inp, Buf weight, Buf bias, int N, int C, int OC, bool accumulate) = 0;
  virtual void matmul_backward(Buf dinp, Buf dweight, Buf dbias, Buf dout, Buf inp, Buf weight, int N, int C,
                               int OC) = 0;
  // Decode-step fusions, one pass over the weights where the CUDA backend has few rows (the CPU,
  // and CUDA with many rows, run the ops they fuse: the results are those ops'):
  // several products of one input, parts[i].out [N, OC_i] = inp [N, C] @ parts[i].weight^T
  // (+ bias, may be empty), at most 3 parts (q, k and v);
  struct LinearPart {
    Buf out, weight, bias;
    int OC;
  };
  virtual void matmul_parts_forward(const std::vector<LinearPart>& parts, Buf inp, int N, int C);
  // and SwiGLU's first half: out [N, I] = silu(inp @ gate^T) * (inp @ up^T), gate and up [I, C].
  virtual void swiglu_matmul_forward(Buf out, Buf inp, Buf gate, Buf up, int N, int C, int I);
  // Both with their input RMSNorm'd first (rmsnorm_forward's arguments): a decode step's norm
  // runs inside the product that reads it. `out` and `rstd` receive the norm where it runs as its
  // own op; a fused kernel may leave them unwritten, so nothing else may read them.
  struct NormedInput {
    Buf x, out, rstd, weight;
    float eps;
  };
  virtual void rmsnorm_matmul_parts_forward(const std::vector<LinearPart>& parts, const NormedInput& in, int N, int C);
  virtual void rmsnorm_swiglu_matmul_forward(Buf out, const NormedInput& in, Buf gate, Buf up, int N, int C, int I);

  // ---- RMSNorm over rows of C: out = weight * inp * rstd, rstd [N] f32 kept for backward.
  virtual void rmsnorm_forward(Buf out, Buf rstd, Buf inp, Buf weight, int N, int C, float eps) = 0;
  virtual void rmsnorm_backward(Buf dinp, Buf dweight, Buf dout, Buf inp, Buf weight, Buf rstd, int N, int C) = 0;

  // ---- RoPE in place on x [N, H, head_stride], columns [offset, offset + rot_dim); positions i32 [N].
  virtual void rope_forward(Buf x, Buf positions, const RopeTables& rope, int N, int H, int head_stride, int offset,
                            int rot_dim) = 0;
  virtual void rope_backward(Buf dx, Buf positions, const RopeTables& rope, int N, int H, int head_stride, int offset,
                             int rot_dim) = 0;

  // ---- SwiGLU: out = silu(gate) * up over all elements.
  virtual void swiglu_forward(Buf out, Buf gate, Buf up) = 0;
  virtual void swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up) = 0;
  // ---- tanh over all elements (prefix tuning's reparameterisation); backward din += dout * (1 - out^2).
  virtual void tanh_forward(Buf out, Buf in) = 0;
  virtual void tanh_backward(Buf din, Buf dout, Buf out) = 0;

  // ---- embedding: out [N,C] = table[tokens]; dtable [V,C] f32.
  virtual void embedding_forward(Buf out, Buf tokens, Buf table, int N, int C) = 0;
  virtual void embedding_backward(Buf dtable, Buf dout, Buf tokens, int N, int C, int V) = 0;

  // ---- the residual stream and strided copies
  virtual void add(Buf out, Buf a, Buf b) = 0;  // out may alias a or b
  virtual void accumulate(Buf out, Buf a) = 0;  // out += a
  virtual void copy_columns(Buf out, int out_stride, int out_offset, Buf in, int in_stride, int in_offset, int N,
                            int width, bool accumulate) = 0;

  // ---- causal attention (kernels/cpu/kernels.hpp's AttentionShape). `saved` is what backward
  // needs besides q, k, v and out: attention_saved_floats(s) f32 (the CPU keeps probabilities
  // [B,H,Tq,Tk], CUDA the log-sum-exps [B,H,Tq]). Packed rows: s.segment_start points at an i32
  // [B,Tq] Buf of this backend (attention within each example).
  virtual int64_t attention_saved_floats(const AttentionShape& s) const = 0;
  virtual void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttentionShape& s) = 0;
  virtual void attention_backward(Buf dq, Buf dk, Buf dv, Buf dout, Buf out, Buf saved, Buf q, Buf k, Buf v,
                                  const AttentionShape& s) = 0;
  // MLA's per-head keys and values (kernels.hpp: mla_expand_forward).
  virtual void mla_expand_forward(Buf k, Buf v, Buf kv_b, Buf kv_a, int N, int H, int nope, int R, int Dv,
                                  int kv_rank) = 0;
  virtual void mla_expand_backward(Buf dkv_b, Buf dkv_a, Buf dk, Buf dv, int N, int H, int nope, int R, int Dv,
                                   int kv_rank) = 0;
  // Generation's KV cache [B, max_length, row] (kernels.hpp: kv_cache_append / kv_cache_gather).
  virtual void kv_cache_append(Buf cache, Buf rows, int B, int T_new, int max_length, int length, int row) = 0;
  virtual void kv_cache_gather(Buf out, Buf cache, int B, int Tk, int max_length, int row) = 0;

  // ---- the LM head fused with softmax cross-entropy, a chunk of rows at a time, so the logits of
  // the whole batch never exist at once. hidden [N,C] act, weight [V,C] act, targets i32 [N].
  // losses [N] f32 (= per row; 0 where targets == ignore_index). With dscale != 0 also the
  // gradient of dscale * sum(losses): dhidden [N,C] act += and dweight [V,C] f32 += (either may be empty).
  virtual void lm_head_loss(Buf losses, Buf dhidden, Buf dweight, Buf hidden, Buf weight, Buf targets, int N, int C,
                            int V, int ignore_index, float dscale) = 0;
  // The logits of some rows: out [rows, V] f32 = hidden[rows] @ weight^T (generation).
  virtual void lm_head_logits(Buf out, Buf hidden, Buf weight, int rows, int C, int V) = 0;
  // Sum of an f32 Buf in a fixed order (deterministic); waits for the device.
  virtual double sum(Buf values) = 0;

  // ---- DeepSeekMoE (kernels.hpp: moe_route_*, moe_dispatch.cpp). logits act [N,E]; bias f32 [E]
  // (the master copy); scores f32 [N,E]; experts i32 [N,K]; weights f32 [N,K].
  virtual void moe_route_forward(Buf scores, Buf experts, Buf weights, Buf logits, Buf bias, const RouterConfig& r,
                                 int N) = 0;
  virtual void moe_route_backward(Buf dlogits, Buf dweights, Buf scores, Buf experts, const RouterConfig& r,
                                  int N) = 0;
  // offsets i32 [E+1], order and row_of i32 [N*K], load i64 [E] +=.
  virtual void moe_permute(Buf offsets, Buf order, Buf row_of, Buf load, Buf experts, int N, int K, int E) = 0;
  virtual void moe_gather(Buf xp, Buf x, Buf order, int N, int K, int C) = 0;
  virtual void moe_gather_backward(Buf dx, Buf dxp, Buf row_of, int N, int K, int C) = 0;
  // Expert e's matrix is weight + e * expert_stride elements ([OC, C]); rows = N*K permuted rows,
  // expert e's are offsets[e]..offsets[e+1].
  virtual void grouped_matmul_forward(Buf out, Buf inp, Buf weight, int64_t expert_stride, Buf offsets, int E,
                                      int rows, int C, int OC) = 0;
  virtual void grouped_matmul_backward(Buf dinp, Buf dweight, Buf dout, Buf inp, Buf weight, int64_t expert_stride,
                                       Buf offsets, int E, int rows, int C, int OC) = 0;
  virtual void moe_combine_forward(Buf out, Buf yp, Buf weights, Buf row_of, int N, int K, int C) = 0;
  virtual void moe_combine_backward(Buf dyp, Buf dweights, Buf dout, Buf yp, Buf weights, Buf row_of, int N, int K,
                                    int C) = 0;
  virtual void moe_update_bias(Buf bias, Buf load, int E, float speed) = 0;
  // loss f32 [1] += the sequence-wise balance loss; dlogits (may be empty) += its gradient.
  virtual void moe_sequence_aux_loss(Buf loss, Buf dlogits, Buf scores, Buf experts, int B, int T, int E, int K,
                                     float alpha) = 0;

  // ---- the optimizer over flat f32 buffers: master params, grads, moments m and v, decay mask
  // u8 (may be empty: decay all); working (act, may be empty) receives the updated weights.
  virtual void adamw_step(Buf params, Buf working, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) = 0;
  virtual double sum_of_squares(Buf values) = 0;  // waits for the device
  // The same of each piece (bit for bit), waiting for the device once for them all.
  virtual std::vector<double> sums_of_squares(const std::vector<Buf>& pieces) = 0;
  virtual void scale(Buf values, float factor) = 0;
  // act <-> f32 conversions (the working copy of the weights, reading activations back).
  virtual void cast(Buf out, Buf in) = 0;
  // int8 gradient compression (kernels.hpp: quantize_int8) over chunks of `chunk` values: q u8
  // [n] (int8 bits), scales f32 [quantize_chunks(n, chunk)] of values f32 [n] plus residual f32
  // [n] (may be empty: no error feedback; else it receives what q missed). dequantize_sum: out f32
  // [n] = the in-order sum over `ranks` of q [ranks, n] times its scales [ranks, chunks].
  virtual void quantize_int8(Buf q, Buf scales, Buf values, Buf residual, int chunk) = 0;
  virtual void dequantize_sum_int8(Buf out, Buf q, Buf scales, int ranks, int chunk) = 0;

  // ---- distillation (kernels/cpu/distill.hpp), the LM head a chunk of rows at a time as in
  // lm_head_loss. hidden [N,C] act, weight [V,C] act. The teacher's side: ids i32 [N,K],
  // logprobs f32 [N,K] and rest f32 [N] of softmax(hidden @ weight^T / temperature).
  virtual void lm_head_top_k(Buf ids, Buf logprobs, Buf rest, Buf hidden, Buf weight, int N, int C, int V, int K,
                             float temperature) = 0;
  // The student's: divergences and cross_entropies f32 [N] against the teacher's top-K (ids i32,
  // logprobs f32 [N,K], rest f32 [N]) and targets i32 [N]; with dscale != 0 also the gradient of
  // dscale * sum(alpha * divergence + (1 - alpha) * cross_entropy): dhidden [N,C] act += and
  // dweight [V,C] f32 += (either may be empty).
  virtual void lm_head_distill_loss(Buf divergences, Buf cross_entropies, Buf dhidden, Buf dweight, Buf hidden,
                                    Buf weight, Buf targets, Buf teacher_ids, Buf teacher_logprobs, Buf teacher_rest,
                                    int N, int C, int V, int K, int ignore_index, const DistillLoss& loss,
                                    float dscale) = 0;
  // ---- scaled dropout (kernels.hpp: dropout_forward), act Bufs of the same size: out = in * scale
  // / (1 - p) where the mask of (seed, element) keeps it, else 0 (p = 0: out = in * scale); the
  // backward din += the same of dout. The mask is recomputed from the seed, never stored.
  virtual void dropout_forward(Buf out, Buf in, float scale, float p, uint64_t seed) = 0;
  virtual void dropout_backward(Buf din, Buf dout, float scale, float p, uint64_t seed) = 0;
  // ---- serving's paged KV cache (kernels.hpp: paged_kv_write, paged_attention_forward). pool:
  // act [slots, stride]; rows act [N, row]; slots i32 [N]. Attention: out act [N, H*Dv], q act
  // [N, q_stride]; block_tables, sequence, positions i32.
  virtual void paged_kv_write(Buf pool, Buf rows, Buf slots, int N, int row, int stride) = 0;
  virtual void paged_attention_forward(Buf out, Buf q, Buf k_pool, Buf v_pool, Buf block_tables, Buf sequence,
                                       Buf positions, const PagedAttentionShape& s) = 0;
  // A step's RoPE and KV write at once: rope_forward of q [N, H, D] and k [N, KVH, D] over the
  // whole head (in place), then paged_kv_write of k and v [N, KVH, D] into rows of KVH * D.
  virtual void rope_paged_kv_write(Buf q, Buf k, Buf v, Buf k_pool, Buf v_pool, Buf positions, Buf slots,
                                   const RopeTables& rope, int N, int H, int KVH, int D);
  // A decode step's decoder layers at once (kernels/cuda/decode_layers.cuh): dense GQA layers
  // (layer_forward of model/paged_forward.cpp: norm, q/k/v, RoPE, KV write, paged attention, o,
  // norm, SwiGLU MLP, each onto the residual stream x [N, C]) for N tokens that are each the one
  // new token of their sequence. Scratch q and attention [N, H*D], k, v [N, KVH*D], act [N, I]. false, with
  // nothing run, where the backend has no such kernel for this shape (the CPU): the caller then
  // runs the layers op by op, which are its reference.
  struct DecodeLayerWeights {
    Buf input_norm, q, k, v, q_bias, k_bias, v_bias, o, o_bias, post_norm, gate, up, down, down_bias, k_pool, v_pool;
  };
  struct DecodeLayers {
    std::vector<DecodeLayerWeights> layers;
    Buf x, q, k, v, attention, act;  // attention [N, H*D]
    Buf positions, slots, sequence, block_tables;  // i32: [N] each, [sequences, table_width]
    const RopeTables* rope = nullptr;              // over the whole head
    int N = 0, C = 0, H = 0, KVH = 0, D = 0, I = 0, block_size = 0, table_width = 0;
    float eps = 0, scale = 0;
  };
  virtual bool decode_layers_forward(const DecodeLayers& /*step*/) { return false; }
  // The next token of each row of logits f32 [rows, V] on the device (kernels.hpp: sample_rows):
  // ids i32 [rows]; temperatures f32 [rows] (empty: all greedy), seeds i64 [rows] (their bits).
  virtual void sample_rows(Buf ids, Buf logits, Buf temperatures, Buf seeds, int rows, int V) = 0;
  // CUDA graphs: records the ops that `record` queues (running none of them) for replays, which
  // launch them at once instead of op by op. `record` must queue only ops (no copy to or from the
  // host, no growth of scratch()): run it once eagerly first. null where the backend cannot (the
  // CPU) or the recording failed; the caller then runs its ops eagerly.
  virtual std::unique_ptr<OpGraph> capture(const std::function<void()>& /*record*/) { return nullptr; }
  // Bytes this backend could still allocate (the GPU's free memory; the host's available memory).
  virtual size_t memory_available() const = 0;
};

}  // namespace dsk::tensor
