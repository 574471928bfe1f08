#include "model/layers.hpp"

#include "core/error.hpp"

namespace dsk::model {

namespace {

// HF builds q_a_layernorm and kv_a_layernorm with the RMSNorm default eps, not rms_norm_eps.
constexpr float kMlaNormEps = 1e-6f;

Buf weight_of(const Weights& w, const Linear& l) { return w.w(l.weight, int64_t(l.in) * l.out); }
Buf bias_of(const Weights& w, const Linear& l) { return w.w(l.bias, l.out); }

void linear_forward(Ops& ops, Buf out, Buf x, int n, const Weights& w, const Linear& l) {
  ops.matmul_forward(out, x, weight_of(w, l), bias_of(w, l), n, l.in, l.out, false);
  if (w.extension && w.extension->extends(l.weight)) w.extension->forward(ops, l.weight, out, x, n);
}

void linear_backward(Ops& ops, Buf dx, Buf dout, Buf x, int n, const Weights& w, const Linear& l) {
  if (w.extension && w.extension->extends(l.weight)) dout = w.extension->backward(ops, l.weight, dx, dout, x, n);
  ops.matmul_backward(dx, w.g(l.weight, int64_t(l.in) * l.out), w.g(l.bias, l.out), dout, x, weight_of(w, l), n,
                      l.in, l.out);
}

// The first n rows of a buffer of rows of `row` elements.
Buf rows(Buf b, int64_t n, int64_t row) { return b.slice(0, n * row); }

tensor::AttentionShape attention_shape(const Architecture& a, const Dims& d, int Tk) {
  int H = a.heads;
  int KH = a.mla() ? a.heads : a.kv_heads;
  int Dk = a.qk_head_dim();
  int Dv = a.mla() ? a.v_head_dim : a.head_dim;
  tensor::AttentionShape s{d.B, d.T, Tk, H, KH, Dk, Dv, H * Dk, KH * Dk, KH * Dv, a.softmax_scale()};
  if (!d.segment_start.empty()) s.segment_start = static_cast<const int32_t*>(d.segment_start.data);
  return s;
}

void gqa_project(Ops& ops, AttentionActs& acts, Buf x, const Weights& w, const LayerParams& p, const Architecture& a,
                 const tensor::RopeTables& rope, const Dims& d) {
  int N = d.N(), D = a.head_dim;
  linear_forward(ops, acts.q, x, N, w, p.q);
  linear_forward(ops, acts.k, x, N, w, p.k);
  linear_forward(ops, acts.v, x, N, w, p.v);
  ops.rope_forward(acts.q, d.positions, rope, N, a.heads, D, 0, D);
  ops.rope_forward(acts.k, d.positions, rope, N, a.kv_heads, D, 0, D);
}

// MLA: q from the hidden state (through the q LoRA when present); per-head keys = [nope part of
// kv_b(norm(latent)), the one shared rope key]; values from kv_b.
void mla_project(Ops& ops, AttentionActs& acts, Buf x, const Weights& w, const LayerParams& p, const Architecture& a,
                 const tensor::RopeTables& rope, const Dims& d) {
  int N = d.N(), H = a.heads, Dqk = a.qk_head_dim(), nope = a.qk_nope_dim, R = a.qk_rope_dim;
  int kvr = a.kv_lora_rank;
  if (a.q_lora_rank > 0) {
    int qr = a.q_lora_rank;
    linear_forward(ops, acts.q_a, x, N, w, p.q_a);
    ops.rmsnorm_forward(acts.q_a_norm, acts.q_a_rstd, acts.q_a, w.w(p.q_a_norm, qr), N, qr, kMlaNormEps);
    linear_forward(ops, acts.q, acts.q_a_norm, N, w, p.q_b);
  } else {
    linear_forward(ops, acts.q, x, N, w, p.q);
  }
  ops.rope_forward(acts.q, d.positions, rope, N, H, Dqk, nope, R);

  linear_forward(ops, acts.kv_a, x, N, w, p.kv_a);
  ops.copy_columns(acts.kv_latent, kvr, 0, acts.kv_a, kvr + R, 0, N, kvr, false);
  ops.rmsnorm_forward(acts.kv_norm, acts.kv_rstd, acts.kv_latent, w.w(p.kv_a_norm, kvr), N, kvr, kMlaNormEps);
  linear_forward(ops, acts.kv_b, acts.kv_norm, N, w, p.kv_b);
  ops.mla_expand_forward(acts.k, acts.v, acts.kv_b, acts.kv_a, N, H, nope, R, a.v_head_dim, kvr);
  ops.rope_forward(acts.k, d.positions, rope, N, H, Dqk, nope, R);  // every head's copy alike
}

void mla_project_backward(Ops& ops, Buf dinp, AttentionActs& acts, LayerGradients& g, Buf x, const Weights& w,
                          const LayerParams& p, const Architecture& a, const Dims& d) {
  int N = d.N(), H = a.heads, nope = a.qk_nope_dim, R = a.qk_rope_dim, Dv = a.v_head_dim, kvr = a.kv_lora_rank;
  Buf dkv_b = rows(g.dkv_b, N, int64_t(H) * (nope + Dv)), dkv_a = rows(g.dkv_a, N, kvr + R);
  Buf dkv_norm = rows(g.dkv_norm, N, kvr), dkv_latent = rows(g.dkv_latent, N, kvr);
  for (Buf b : {dkv_b, dkv_a, dkv_norm, dkv_latent}) ops.zero(b);
  ops.mla_expand_backward(dkv_b, dkv_a, rows(g.dk, N, int64_t(H) * (nope + R)), rows(g.dv, N, int64_t(H) * Dv), N, H,
                          nope, R, Dv, kvr);
  linear_backward(ops, dkv_norm, dkv_b, acts.kv_norm, N, w, p.kv_b);
  ops.rmsnorm_backward(dkv_latent, w.g(p.kv_a_norm, kvr), dkv_norm, acts.kv_latent, w.w(p.kv_a_norm, kvr),
                       acts.kv_rstd, N, kvr);
  ops.copy_columns(dkv_a, kvr + R, 0, dkv_latent, kvr, 0, N, kvr, true);
  linear_backward(ops, dinp, dkv_a, x, N, w, p.kv_a);

  Buf dq = rows(g.dq, N, int64_t(H) * a.qk_head_dim());
  if (a.q_lora_rank > 0) {
    int qr = a.q_lora_rank;
    Buf dq_a_norm = rows(g.dq_a_norm, N, qr), dq_a = rows(g.dq_a, N, qr);
    ops.zero(dq_a_norm);
    ops.zero(dq_a);
    linear_backward(ops, dq_a_norm, dq, acts.q_a_norm, N, w, p.q_b);
    ops.rmsnorm_backward(dq_a, w.g(p.q_a_norm, qr), dq_a_norm, acts.q_a, w.w(p.q_a_norm, qr), acts.q_a_rstd, N, qr);
    linear_backward(ops, dinp, dq_a, x, N, w, p.q_a);
  } else {
    linear_backward(ops, dinp, dq, x, N, w, p.q);
  }
}

// Causal attention of the new queries over the keys (the cache's, when there is one); acts.out.
void attend(Ops& ops, AttentionActs& acts, const Architecture& a, const Dims& d, LayerCache* cache) {
  int Tk = cache ? cache->length + d.T : d.T;
  tensor::AttentionShape s = attention_shape(a, d, Tk);
  Buf k = acts.k, v = acts.v;
  if (cache) {
    ops.kv_cache_append(cache->k, acts.k, d.B, d.T, cache->max_length, cache->length, s.k_stride);
    ops.kv_cache_append(cache->v, acts.v, d.B, d.T, cache->max_length, cache->length, s.v_stride);
    k = rows(cache->k_all, int64_t(d.B) * Tk, s.k_stride);
    v = rows(cache->v_all, int64_t(d.B) * Tk, s.v_stride);
    ops.kv_cache_gather(k, cache->k, d.B, Tk, cache->max_length, s.k_stride);
    ops.kv_cache_gather(v, cache->v, d.B, Tk, cache->max_length, s.v_stride);
  }
  ops.attention_forward(acts.out, acts.saved.slice(0, ops.attention_saved_floats(s)), acts.q, k, v, s);
}

// Attention over the layer's prefix keys and values, then the sequence's own (AttentionPrefix).
void attend_with_prefix(Ops& ops, AttentionActs& acts, const Weights& w, const LayerParams& p, const Architecture& a,
                        const Dims& d) {
  tensor::AttentionShape s = attention_shape(a, d, w.prefix->length() + d.T);
  auto [k, v] = w.prefix->extend(ops, p.o.weight, acts.k, acts.v, d.B, d.T);
  ops.attention_forward(acts.out, acts.saved.slice(0, ops.attention_saved_floats(s)), acts.q, k, v, s);
}

// Its backward: dq, and d(k), d(v) of the sequence's own positions (+=); the prefix's gradient.
void attend_with_prefix_backward(Ops& ops, Buf dq, Buf dk, Buf dv, Buf datt, AttentionActs& acts, const Weights& w,
                                 const LayerParams& p, const Architecture& a, const Dims& d) {
  tensor::AttentionShape s = attention_shape(a, d, w.prefix->length() + d.T);
  auto [k, v] = w.prefix->extend(ops, p.o.weight, acts.k, acts.v, d.B, d.T);  // its buffers serve every layer
  auto [dk_all, dv_all] = w.prefix->gradients(ops, d.B, d.T);
  ops.attention_backward(dq, dk_all, dv_all, datt, acts.out, acts.saved.slice(0, ops.attention_saved_floats(s)),
                         acts.q, k, v, s);
  w.prefix->backward(ops, p.o.weight, dk, dv, d.B, d.T);
}

}  // namespace

void carve_attention(Arena& arena, AttentionActs& acts, const Ops& ops, const Architecture& a, const Dims& d, int Tk) {
  const DType t = ops.activation_dtype();
  const int64_t N = d.N();
  tensor::AttentionShape s = attention_shape(a, d, Tk);
  acts.q = arena.take(t, N * s.H * s.Dk);
  acts.k = arena.take(t, N * s.KVH * s.Dk);
  acts.v = arena.take(t, N * s.KVH * s.Dv);
  if (a.mla()) {
    if (a.q_lora_rank > 0) {
      acts.q_a = arena.take(t, N * a.q_lora_rank);
      acts.q_a_norm = arena.take(t, N * a.q_lora_rank);
      acts.q_a_rstd = arena.take(DType::f32, N);
    }
    acts.kv_a = arena.take(t, N * (a.kv_lora_rank + a.qk_rope_dim));
    acts.kv_latent = arena.take(t, N * a.kv_lora_rank);
    acts.kv_norm = arena.take(t, N * a.kv_lora_rank);
    acts.kv_rstd = arena.take(DType::f32, N);
    acts.kv_b = arena.take(t, N * a.heads * (a.qk_nope_dim + a.v_head_dim));
  }
  acts.out = arena.take(t, N * s.H * s.Dv);
  acts.saved = arena.take(DType::f32, ops.attention_saved_floats(s));
}

void carve_mlp(Arena& arena, MlpActs& acts, DType dtype, int n, int I) {
  acts.gate = arena.take(dtype, int64_t(n) * I);
  acts.up = arena.take(dtype, int64_t(n) * I);
  acts.act = arena.take(dtype, int64_t(n) * I);
}

void carve_routing(Arena& arena, MoeActs& acts, const Architecture& a, int N, int rank, int ranks) {
  const int E = a.n_routed;
  const int64_t pairs = int64_t(N) * a.top_k;
  acts.scores = arena.take(DType::f32, int64_t(N) * E);
  acts.weights = arena.take(DType::f32, pairs);
  acts.experts = arena.take(DType::i32, pairs);
  acts.offsets = arena.take(DType::i32, E + 1);
  acts.order = arena.take(DType::i32, pairs);
  acts.row_of = arena.take(DType::i32, pairs);
  if (ranks > 1) carve_dispatch_plan(arena, acts.dispatch, a, N, rank, ranks);
}

void carve_moe(Arena& arena, MoeActs& acts, DType dtype, const Architecture& a, int N, int rank, int ranks) {
  const int64_t pairs = int64_t(N) * a.top_k;
  // The rows this rank's experts run: its own N*K, or with expert parallelism what may arrive.
  const int64_t expert_rows = ranks > 1 ? dispatch_capacity(a, N, ranks) : pairs;
  acts.logits = arena.take(dtype, int64_t(N) * a.n_routed);
  carve_routing(arena, acts, a, N, rank, ranks);
  acts.xp = arena.take(dtype, pairs * a.hidden);
  acts.yp = arena.take(dtype, pairs * a.hidden);
  carve_mlp(arena, acts.routed, dtype, int(expert_rows), a.moe_intermediate);
  if (a.n_shared > 0) carve_mlp(arena, acts.shared, dtype, N, a.moe_intermediate * a.n_shared);
  if (ranks > 1) acts.expert_inputs = arena.take(dtype, expert_rows * a.hidden);
}

void carve_dispatch_scratch(Arena& arena, MoeActs& acts, DType dtype, const Architecture& a, int N, int ranks) {
  if (ranks == 1) return;
  acts.scratch_a = arena.take(dtype, dispatch_capacity(a, N, ranks) * a.hidden);
  acts.scratch_b = arena.take(dtype, dispatch_capacity(a, N, ranks) * a.hidden);
}

void carve_gradients(Arena& arena, LayerGradients& g, DType t, const Architecture& a, int N, int ranks) {
  const int H = a.heads, KH = a.mla() ? a.heads : a.kv_heads, Dk = a.qk_head_dim();
  const int Dv = a.mla() ? a.v_head_dim : a.head_dim;
  g.datt = arena.take(t, int64_t(N) * H * Dv);
  g.dq = arena.take(t, int64_t(N) * H * Dk);
  g.dk = arena.take(t, int64_t(N) * KH * Dk);
  g.dv = arena.take(t, int64_t(N) * KH * Dv);
  if (a.mla()) {
    g.dkv_b = arena.take(t, int64_t(N) * H * (a.qk_nope_dim + Dv));
    g.dkv_a = arena.take(t, int64_t(N) * (a.kv_lora_rank + a.qk_rope_dim));
    g.dkv_norm = arena.take(t, int64_t(N) * a.kv_lora_rank);
    g.dkv_latent = arena.take(t, int64_t(N) * a.kv_lora_rank);
    if (a.q_lora_rank > 0) {
      g.dq_a_norm = arena.take(t, int64_t(N) * a.q_lora_rank);
      g.dq_a = arena.take(t, int64_t(N) * a.q_lora_rank);
    }
  }
  // The dense MLP and the shared experts use the same buffers: sized for the wider of the two.
  int inner = a.first_k_dense > 0 || !a.mla() || a.n_routed == 0 ? a.intermediate : 0;
  if (a.n_routed > 0 && a.n_shared > 0) inner = std::max(inner, a.moe_intermediate * a.n_shared);
  g.dact = arena.take(t, int64_t(N) * inner);
  g.dgate = arena.take(t, int64_t(N) * inner);
  g.dup = arena.take(t, int64_t(N) * inner);
  if (a.n_routed > 0 && a.layers > a.first_k_dense) {
    const int64_t pairs = int64_t(N) * a.top_k, expert_rows = ranks > 1 ? dispatch_capacity(a, N, ranks) : pairs;
    g.drouted_act = arena.take(t, expert_rows * a.moe_intermediate);
    g.drouted_gate = arena.take(t, expert_rows * a.moe_intermediate);
    g.drouted_up = arena.take(t, expert_rows * a.moe_intermediate);
    g.dxp = arena.take(t, pairs * a.hidden);
    g.dyp = arena.take(t, pairs * a.hidden);
    g.drouter_logits = arena.take(t, int64_t(N) * a.n_routed);
    g.drouter_weights = arena.take(DType::f32, pairs);
  }
}

void attention_forward(Ops& ops, Buf out, AttentionActs& acts, Buf x, const Weights& w, const LayerParams& p,
                       const Architecture& a, const tensor::RopeTables& rope, const Dims& d, LayerCache* cache) {
  if (a.mla())
    mla_project(ops, acts, x, w, p, a, rope, d);
  else
    gqa_project(ops, acts, x, w, p, a, rope, d);
  if (w.prefix && !cache)  // with a cache the prefix is in it (Model::new_kv_cache)
    attend_with_prefix(ops, acts, w, p, a, d);
  else
    attend(ops, acts, a, d, cache);
  linear_forward(ops, out, acts.out, d.N(), w, p.o);
}

void attention_backward(Ops& ops, Buf dinp, Buf dout, AttentionActs& acts, LayerGradients& g, Buf x,
                        const Weights& w, const LayerParams& p, const Architecture& a, const tensor::RopeTables& rope,
                        const Dims& d) {
  int N = d.N();
  tensor::AttentionShape s = attention_shape(a, d, d.T);
  Buf datt = rows(g.datt, N, int64_t(s.H) * s.Dv);
  Buf dq = rows(g.dq, N, int64_t(s.H) * s.Dk), dk = rows(g.dk, N, int64_t(s.KVH) * s.Dk);
  Buf dv = rows(g.dv, N, int64_t(s.KVH) * s.Dv);
  for (Buf b : {datt, dq, dk, dv}) ops.zero(b);
  linear_backward(ops, datt, dout, acts.out, N, w, p.o);
  if (w.prefix)
    attend_with_prefix_backward(ops, dq, dk, dv, datt, acts, w, p, a, d);
  else
    ops.attention_backward(dq, dk, dv, datt, acts.out, acts.saved.slice(0, ops.attention_saved_floats(s)), acts.q,
                           acts.k, acts.v, s);
  int offset = a.mla() ? a.qk_nope_dim : 0;
  ops.rope_backward(dq, d.positions, rope, N, s.H, s.Dk, offset, a.rope_dim());
  ops.rope_backward(dk, d.positions, rope, N, s.KVH, s.Dk, offset, a.rope_dim());
  if (a.mla()) {
    mla_project_backward(ops, dinp, acts, g, x, w, p, a, d);
    return;
  }
  linear_backward(ops, dinp, dq, x, N, w, p.q);
  linear_backward(ops, dinp, dk, x, N, w, p.k);
  linear_backward(ops, dinp, dv, x, N, w, p.v);
}

void mlp_forward(Ops& ops, Buf out, MlpActs& acts, Buf x, int n, const Weights& w, const MlpParams& p) {
  int I = p.gate.out;
  Buf gate = rows(acts.gate, n, I), up = rows(acts.up, n, I), act = rows(acts.act, n, I);
  linear_forward(ops, gate, x, n, w, p.gate);
  linear_forward(ops, up, x, n, w, p.up);
  ops.swiglu_forward(act, gate, up);
  linear_forward(ops, out, act, n, w, p.down);
}

void mlp_backward(Ops& ops, Buf dinp, Buf dout, MlpActs& acts, Buf dact, Buf dgate, Buf dup, Buf x, int n,
                  const Weights& w, const MlpParams& p) {
  int I = p.gate.out;
  dact = rows(dact, n, I);
  dgate = rows(dgate, n, I);
  dup = rows(dup, n, I);
  for (Buf b : {dact, dgate, dup}) ops.zero(b);
  linear_backward(ops, dact, dout, rows(acts.act, n, I), n, w, p.down);
  ops.swiglu_backward(dgate, dup, dact, rows(acts.gate, n, I), rows(acts.up, n, I));
  linear_backward(ops, dinp, dgate, x, n, w, p.gate);
  linear_backward(ops, dinp, dup, x, n, w, p.up);
}

namespace {

// The routed experts' weights of one projection as a strided batch: expert e's matrix starts
// `stride` elements after expert e-1's (parameters.cpp lays experts out one after another).
struct ExpertMatrices {
  size_t first = kNone;
  int64_t stride = 0, span = 0;  // span: from expert 0's first element past expert E-1's last
  int in = 0, out = 0;
};

ExpertMatrices expert_matrices(const LayerParams& p, const Linear MlpParams::*projection) {
  const Linear& first = p.experts.front().*projection;
  ExpertMatrices m{first.weight, 0, int64_t(first.in) * first.out, first.in, first.out};
  if (p.experts.size() > 1) m.stride = int64_t((p.experts[1].*projection).weight - first.weight);
  for (size_t e = 1; e < p.experts.size(); e++)
    if (int64_t((p.experts[e].*projection).weight - first.weight) != m.stride * int64_t(e))
      throw InternalError("moe: routed experts' weights are not evenly spaced in the parameter buffer");
  m.span = m.stride * int64_t(p.experts.size() - 1) + int64_t(first.in) * first.out;
  return m;
}

// Experts [slice.first, slice.first + slice.count) of the same projection.
ExpertMatrices expert_matrices(const LayerParams& p, const Linear MlpParams::*projection, ExpertSlice slice) {
  ExpertMatrices m = expert_matrices(p, projection);
  m.first += size_t(m.stride * slice.first);
  m.span = m.stride * int64_t(slice.count - 1) + int64_t(m.in) * m.out;
  return m;
}

void grouped_forward(Ops& ops, Buf out, Buf inp, const Weights& w, const ExpertMatrices& m, Buf offsets, int E,
                     int rows) {
  ops.grouped_matmul_forward(out, inp, w.w(m.first, m.span), m.stride, offsets, E, rows, m.in, m.out);
}

void grouped_backward(Ops& ops, Buf dinp, Buf dout, Buf inp, const Weights& w, const ExpertMatrices& m, Buf offsets,
                      int E, int rows) {
  ops.grouped_matmul_backward(dinp, w.g(m.first, m.span), dout, inp, w.w(m.first, m.span), m.stride, offsets, E, rows,
                              m.in, m.out);
}

// Which experts run here, over which rows: all of them over the rank's own N*K rows, or with
// expert parallelism the local ones over the rows the ranks sent them.
struct ExpertBatch {
  ExpertSlice experts;
  Buf offsets;  // i32 [experts.count + 1]
  int rows = 0;
};

ExpertBatch expert_batch(const MoeActs& acts, const Architecture& a, int pairs, bool parallel) {
  if (!parallel) return ExpertBatch{ExpertSlice{0, a.n_routed}, acts.offsets, pairs};
  return ExpertBatch{acts.dispatch.local, acts.dispatch.local_offsets, int(acts.dispatch.received)};
}

// out [rows, C] = the SwiGLU experts of `batch` over inp [rows, C] (each expert its rows).
void routed_forward(Ops& ops, Buf out, Buf inp, MlpActs& acts, const Weights& w, const LayerParams& p,
                    const ExpertBatch& batch, int I) {
  const int n = batch.rows, E = batch.experts.count;
  if (n == 0) return;
  grouped_forward(ops, acts.gate, inp, w, expert_matrices(p, &MlpParams::gate, batch.experts), batch.offsets, E, n);
  grouped_forward(ops, acts.up, inp, w, expert_matrices(p, &MlpParams::up, batch.experts), batch.offsets, E, n);
  ops.swiglu_forward(rows(acts.act, n, I), rows(acts.gate, n, I), rows(acts.up, n, I));
  grouped_forward(ops, out, acts.act, w, expert_matrices(p, &MlpParams::down, batch.experts), batch.offsets, E, n);
}

// dinp [rows, C] += d(inp) from dout [rows, C]; the experts' weight gradients +=.
void routed_backward(Ops& ops, Buf dinp, Buf dout, Buf inp, MlpActs& acts, LayerGradients& g, const Weights& w,
                     const LayerParams& p, const ExpertBatch& batch, int I) {
  const int n = batch.rows, E = batch.experts.count;
  if (n == 0) return;
  Buf dact = rows(g.drouted_act, n, I), dgate = rows(g.drouted_gate, n, I), dup = rows(g.drouted_up, n, I);
  for (Buf b : {dact, dgate, dup}) ops.zero(b);
  grouped_backward(ops, dact, dout, acts.act, w, expert_matrices(p, &MlpParams::down, batch.experts), batch.offsets,
                   E, n);
  ops.swiglu_backward(dgate, dup, dact, rows(acts.gate, n, I), rows(acts.up, n, I));
  grouped_backward(ops, dinp, dgate, inp, w, expert_matrices(p, &MlpParams::gate, batch.experts), batch.offsets, E, n);
  grouped_backward(ops, dinp, dup, inp, w, expert_matrices(p, &MlpParams::up, batch.experts), batch.offsets, E, n);
}

tensor::RouterConfig router_config(const Architecture& a) {
  return tensor::RouterConfig{a.n_routed, a.top_k, a.n_group, a.topk_group, a.norm_topk_prob, a.routed_scaling};
}

}  // namespace

void moe_forward(Ops& ops, Buf out, MoeActs& acts, Buf x, const Weights& w, const LayerParams& p,
                 const Architecture& a, Buf load, bool route, RowExchange* exchange) {
  const int N = int(x.numel / a.hidden), C = a.hidden, E = a.n_routed, K = a.top_k, I = a.moe_intermediate;
  const int pairs = N * K;
  if (route) {
    linear_forward(ops, acts.logits, x, N, w, p.router);
    ops.moe_route_forward(acts.scores, acts.experts, acts.weights, acts.logits,
                          w.m(p.router_bias, E), router_config(a), N);
    ops.moe_permute(acts.offsets, acts.order, acts.row_of, load, acts.experts, N, K, E);
    if (exchange) plan_dispatch(ops, *exchange, acts.dispatch, acts.offsets, a);
  }
  ops.moe_gather(acts.xp, x, acts.order, N, K, C);
  const ExpertBatch batch = expert_batch(acts, a, pairs, exchange != nullptr);
  if (exchange) {
    dispatch_rows(ops, *exchange, acts.dispatch, acts.expert_inputs, acts.xp, acts.scratch_a, C);
    routed_forward(ops, acts.scratch_a, acts.expert_inputs, acts.routed, w, p, batch, I);
    return_rows(ops, *exchange, acts.dispatch, acts.yp, acts.scratch_a, acts.scratch_b, C);
  } else {
    routed_forward(ops, acts.yp, acts.xp, acts.routed, w, p, batch, I);
  }
  if (a.n_shared > 0)
    mlp_forward(ops, out, acts.shared, x, N, w, p.shared);
  else
    ops.zero(out);
  ops.moe_combine_forward(out, acts.yp, acts.weights, acts.row_of, N, K, C);
}

// The routing weight of (token, slot) gets dot(dout[token], expert output); the expert's input
// gradient is gathered back to the token; the router's logits get the weights' gradient.
void moe_backward(Ops& ops, Buf dinp, Buf dout, MoeActs& acts, LayerGradients& g, Buf x, const Weights& w,
                  const LayerParams& p, const Architecture& a, const Dims& d, float aux_alpha, Buf aux_loss,
                  RowExchange* exchange) {
  const int N = d.N(), C = a.hidden, E = a.n_routed, K = a.top_k, I = a.moe_intermediate, pairs = N * K;
  Buf dyp = rows(g.dyp, pairs, C), dxp = rows(g.dxp, pairs, C), dweights = rows(g.drouter_weights, N, K);
  Buf dlogits = rows(g.drouter_logits, N, E);
  for (Buf b : {dxp, dlogits}) ops.zero(b);
  ops.moe_combine_backward(dyp, dweights, dout, acts.yp, acts.weights, acts.row_of, N, K, C);
  const ExpertBatch batch = expert_batch(acts, a, pairs, exchange != nullptr);
  if (exchange) {
    // The outputs' gradients go where the experts ran; the inputs' gradients come back.
    Buf dexpert_out = acts.scratch_b, dexpert_in = rows(acts.scratch_a, acts.dispatch.received, C);
    dispatch_rows(ops, *exchange, acts.dispatch, dexpert_out, dyp, acts.scratch_a, C);
    ops.zero(dexpert_in);
    routed_backward(ops, dexpert_in, dexpert_out, acts.expert_inputs, acts.routed, g, w, p, batch, I);
    return_rows(ops, *exchange, acts.dispatch, dxp, dexpert_in, acts.scratch_b, C);
  } else {
    routed_backward(ops, dxp, dyp, acts.xp, acts.routed, g, w, p, batch, I);
  }
  ops.moe_gather_backward(dinp, dxp, acts.row_of, N, K, C);
  if (a.n_shared > 0) mlp_backward(ops, dinp, dout, acts.shared, g.dact, g.dgate, g.dup, x, N, w, p.shared);
  ops.moe_route_backward(dlogits, dweights, acts.scores, acts.experts, router_config(a), N);
  if (aux_alpha > 0) ops.moe_sequence_aux_loss(aux_loss, dlogits, acts.scores, acts.experts, d.B, d.T, E, K, aux_alpha);
  linear_backward(ops, dinp, dlogits, x, N, w, p.router);
}

}  // namespace dsk::model
