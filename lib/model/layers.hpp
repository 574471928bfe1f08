// The decoder layer as forward/backward pairs over saved activations (no autograd), llm.c style:
// attention (GQA for llama/qwen2, MLA for deepseek_v3), the SwiGLU MLP and DeepSeekMoE. Every
// computation is a call on the op interface (tensor/ops.hpp), so this code runs on either backend
// and never touches activation data itself.
// Every *_backward ACCUMULATES into its gradients: parameter gradients into `w.grads` (f32, the
// parameter buffer's layout), the input's gradient into `dinp` (act). N = B*T positions.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "model/architecture.hpp"
#include "model/expert_dispatch.hpp"
#include "model/parameters.hpp"
#include "tensor/arena.hpp"
#include "tensor/ops.hpp"

namespace dsk::model {

using tensor::Arena;
using tensor::Buf;
using tensor::DType;
using tensor::Ops;

// Something added at some Linear sites (lib/finetune: LoRA beside the Linear, y = x W^T + b +
// extra(x); a bottleneck adapter on its output, y = z + up(act(down(z))) with z = x W^T + b).
// The layer code asks at every dense Linear (attention's projections, the dense and shared-expert
// MLPs; not the router or the routed experts' grouped matmuls) by the site's weight offset, which
// names one Linear of one layer. forward runs after the base matmul and updates out in place.
// backward runs before the base's: it adds what it owes into dx and its own gradients into its
// own buffers, and returns the gradient the base Linear's output gets (dout itself when the
// extension only adds beside the Linear). plan() comes before the passes of a batch shape
// (training: activations kept per site until backward).
class LinearExtension {
 public:
  virtual ~LinearExtension() = default;
  virtual void plan(Ops& ops, int max_rows, bool training) = 0;
  virtual bool extends(size_t weight_offset) const = 0;
  virtual void forward(Ops& ops, size_t weight_offset, Buf out, Buf x, int n) = 0;
  virtual Buf backward(Ops& ops, size_t weight_offset, Buf dx, Buf dout, Buf x, int n) = 0;
};

// Keys and values that every query of a sequence sees before the sequence's own (lib/finetune:
// prefix tuning): P positions per layer, the same for every sequence, with no RoPE applied to them
// (HF passes them as an already-rotated cache, past_key_values), and the sequence's own tokens at
// positions P.. as HF places them after a cache of P. A layer is named by its o_proj weight offset.
// extend() writes the layer's prefix then k, v [B, T, row] into [B, P + T, row] buffers of its own
// and returns them; attention runs over those (Tk = P + T). In backward, gradients() gives zeroed
// buffers of that shape for attention's dk, dv, and backward() moves their sequence part into dk,
// dv [B, T, row] (+=) and adds their prefix part, summed over the batch, to the prefix's gradient.
// write_cache() puts the prefix at positions 0..P-1 of each sequence of a generation cache.
class AttentionPrefix {
 public:
  virtual ~AttentionPrefix() = default;
  virtual int length() const = 0;
  virtual void plan(Ops& ops, int B, int T, bool training) = 0;
  virtual std::pair<Buf, Buf> extend(Ops& ops, size_t layer, Buf k, Buf v, int B, int T) = 0;
  virtual std::pair<Buf, Buf> gradients(Ops& ops, int B, int T) = 0;
  virtual void backward(Ops& ops, size_t layer, Buf dk, Buf dv, int B, int T) = 0;
  virtual void write_cache(Ops& ops, size_t layer, Buf k_cache, Buf v_cache, int B, int max_length) = 0;
};

// The parameter buffers, one layout (parameters.hpp): working (act: what the layers read),
// master (f32; the router biases are read from it) and grads (f32; empty for inference and for a
// frozen base). extension: null, or what is added beside the Linears (above).
struct Weights {
  Buf working, master, grads;
  // Not held (Model::drop_weights, drop_gradients): working and master, or grads, skip them.
  std::span<const FlatSpan> dropped_weights, dropped_grads;
  LinearExtension* extension = nullptr;
  AttentionPrefix* prefix = nullptr;  // null, or prefix tuning's keys and values (above)
  Buf w(size_t offset, int64_t n) const { return offset == kNone ? Buf{} : working.slice(held(dropped_weights, offset, n), n); }
  Buf m(size_t offset, int64_t n) const { return master.slice(held(dropped_weights, offset, n), n); }
  Buf g(size_t offset, int64_t n) const {
    return offset == kNone || grads.empty() ? Buf{} : grads.slice(held(dropped_grads, offset, n), n);
  }
  static int64_t held(std::span<const FlatSpan> dropped, size_t offset, int64_t n) {
    return int64_t(dropped.empty() ? offset : offset_without(dropped, offset, size_t(n)));
  }
};

// One layer's view of the generation KV cache: k [B, max_length, KH*Dk], v [B, max_length, KH*Dv];
// k_all / v_all are where attention reads all Tk positions contiguously.
struct LayerCache {
  Buf k, v, k_all, v_all;
  int max_length = 0;
  int length = 0;  // positions already in the cache
};

struct Dims {
  int B, T;       // the new positions: N = B*T
  Buf positions;  // i32 [N]
  Buf segment_start = {};  // i32 [N]: packed rows (AttentionShape::segment_start); empty: one sequence a row
  int N() const { return B * T; }
};

struct AttentionActs {
  Buf q, k, v;                                  // post-RoPE q [N,H*Dk], k [N,KH*Dk], v [N,KH*Dv]
  Buf q_a, q_a_norm, q_a_rstd;                  // MLA with q_lora
  Buf kv_a, kv_latent, kv_norm, kv_rstd, kv_b;  // MLA
  Buf out, saved;                               // out [N,H*Dv]; saved: Ops::attention_saved_floats
};

struct MlpActs {
  Buf gate, up, act;  // [n, I]
};

struct MoeActs {
  Buf logits, scores, weights;  // act [N,E]; f32 [N,E]; f32 [N,K]
  Buf experts, offsets, order, row_of;  // i32 [N,K], [E+1], [N*K], [N*K]
  Buf xp, yp;                   // the permuted batch [N*K, C] in and out of the experts
  MlpActs routed;               // [N*K, moe_intermediate]; with expert parallelism [capacity, ...]
  MlpActs shared;               // [N, moe_intermediate * n_shared]
  // Expert parallelism (expert_dispatch.hpp), carved for ranks > 1 only: the exchange planned with
  // the routing, the local experts' rows (expert-major) and two scratch buffers, act [capacity, C]
  // (the same for every layer).
  DispatchPlan dispatch;
  Buf expert_inputs, scratch_a, scratch_b;
};

// Gradient buffers reused by every layer's backward (one set, sized for the largest layer).
struct LayerGradients {
  Buf datt, dq, dk, dv;                        // [N,H*Dv], q, k, v shapes
  Buf dkv_b, dkv_a, dkv_norm, dkv_latent;      // MLA
  Buf dq_a_norm, dq_a;                         // MLA with q_lora
  Buf dact, dgate, dup;                        // dense MLP / shared expert [N, I]
  Buf drouted_act, drouted_gate, drouted_up;   // [N*K, moe_intermediate]
  Buf dxp, dyp;                                // [N*K, C]
  Buf drouter_logits, drouter_weights;         // act [N,E]; f32 [N,K]
};

// Carving (arena.hpp) the activations of one layer for N positions (Tk keys per query: T in
// training, more with a cache), and the shared gradient buffers.
void carve_attention(Arena& arena, AttentionActs& acts, const Ops& ops, const Architecture& a, const Dims& d, int Tk);
void carve_mlp(Arena& arena, MlpActs& acts, DType dtype, int n, int I);
// rank, ranks: of expert parallelism (ranks > 1 carves the exchange's plan and expert inputs too).
void carve_moe(Arena& arena, MoeActs& acts, DType dtype, const Architecture& a, int N, int rank = 0, int ranks = 1);
// The exchange's scratch_a and scratch_b (ranks > 1): once, for every MoE layer to share.
void carve_dispatch_scratch(Arena& arena, MoeActs& acts, DType dtype, const Architecture& a, int N, int ranks);
// Only the routing decisions of carve_moe (scores, weights, experts, offsets, order, row_of, the
// dispatch plan).
void carve_routing(Arena& arena, MoeActs& acts, const Architecture& a, int N, int rank = 0, int ranks = 1);
void carve_gradients(Arena& arena, LayerGradients& g, DType dtype, const Architecture& a, int N, int ranks = 1);

void attention_forward(Ops& ops, Buf out, AttentionActs& acts, Buf x, const Weights& w, const LayerParams& p,
                       const Architecture& a, const tensor::RopeTables& rope, const Dims& d, LayerCache* cache);
void attention_backward(Ops& ops, Buf dinp, Buf dout, AttentionActs& acts, LayerGradients& g, Buf x,
                        const Weights& w, const LayerParams& p, const Architecture& a,
                        const tensor::RopeTables& rope, const Dims& d);

void mlp_forward(Ops& ops, Buf out, MlpActs& acts, Buf x, int n, const Weights& w, const MlpParams& p);
void mlp_backward(Ops& ops, Buf dinp, Buf dout, MlpActs& acts, Buf dact, Buf dgate, Buf dup, Buf x, int n,
                  const Weights& w, const MlpParams& p);

// out = shared experts(x) + sum over the routed experts; load i64 [E] += the routed counts.
// route = false reuses the routing decisions already in acts (recomputation) and counts nothing.
// exchange (expert parallelism; acts carved for its ranks): this rank runs only its experts, over
// the rows every rank sends them; every rank must make the same calls.
void moe_forward(Ops& ops, Buf out, MoeActs& acts, Buf x, const Weights& w, const LayerParams& p,
                 const Architecture& a, Buf load, bool route = true, RowExchange* exchange = nullptr);
// aux_alpha > 0 adds the sequence-wise balance loss's gradient (aux_loss is a 1-float scratch).
// With an exchange, only the local experts' weights get gradients (from every rank's tokens).
void moe_backward(Ops& ops, Buf dinp, Buf dout, MoeActs& acts, LayerGradients& g, Buf x, const Weights& w,
                  const LayerParams& p, const Architecture& a, const Dims& d, float aux_alpha, Buf aux_loss,
                  RowExchange* exchange = nullptr);

}  // namespace dsk::model
