#include "model/layers.hpp"

#include <cstring>

namespace dsk::model {

namespace cpu = kernels::cpu;

namespace {

// HF builds q_a_layernorm and kv_a_layernorm with the RMSNorm default eps, not rms_norm_eps.
constexpr float kMlaNormEps = 1e-6f;

const float* bias_of(const float* params, const Linear& l) { return l.bias == kNone ? nullptr : params + l.bias; }

void linear_forward(float* out, const float* x, int n, const float* params, const Linear& l) {
  cpu::matmul_forward(out, x, params + l.weight, bias_of(params, l), n, l.in, l.out);
}

void linear_backward(float* dx, float* grads, const float* dout, const float* x, int n, const float* params,
                     const Linear& l) {
  cpu::matmul_backward(dx, grads + l.weight, l.bias == kNone ? nullptr : grads + l.bias, dout, x,
                       params + l.weight, n, l.in, l.out);
}

cpu::AttentionShape attention_shape(const Architecture& a, const Dims& d, int Tk) {
  int H = a.heads;
  int KH = a.mla() ? a.heads : a.kv_heads;
  int Dk = a.qk_head_dim();
  int Dv = a.mla() ? a.v_head_dim : a.head_dim;
  return cpu::AttentionShape{d.B, d.T, Tk, H, KH, Dk, Dv, H * Dk, KH * Dk, KH * Dv, a.softmax_scale()};
}

// Appends the new keys/values to the cache and gathers all Tk positions contiguously.
void append_to_cache(AttentionActs& acts, LayerCache& cache, const Dims& d, int k_row, int v_row) {
  int Tk = cache.length + d.T;
  for (int b = 0; b < d.B; b++) {
    for (int t = 0; t < d.T; t++) {
      int64_t src = (int64_t)b * d.T + t, dst = (int64_t)b * cache.max_length + cache.length + t;
      std::memcpy(cache.k + dst * k_row, acts.k.data() + src * k_row, sizeof(float) * k_row);
      std::memcpy(cache.v + dst * v_row, acts.v.data() + src * v_row, sizeof(float) * v_row);
    }
  }
  acts.k_all.resize({d.B, Tk, k_row});
  acts.v_all.resize({d.B, Tk, v_row});
  for (int b = 0; b < d.B; b++) {
    int64_t src = (int64_t)b * cache.max_length, dst = (int64_t)b * Tk;
    std::memcpy(acts.k_all.data() + dst * k_row, cache.k + src * k_row, sizeof(float) * Tk * k_row);
    std::memcpy(acts.v_all.data() + dst * v_row, cache.v + src * v_row, sizeof(float) * Tk * v_row);
  }
}

// Causal attention of the new queries over the keys (the cache's, when there is one); acts.out.
void attend(AttentionActs& acts, const Architecture& a, const Dims& d, LayerCache* cache) {
  int Tk = cache ? cache->length + d.T : d.T;
  cpu::AttentionShape s = attention_shape(a, d, Tk);
  const float* k = acts.k.data();
  const float* v = acts.v.data();
  if (cache) {
    append_to_cache(acts, *cache, d, s.k_stride, s.v_stride);
    k = acts.k_all.data();
    v = acts.v_all.data();
  }
  acts.out.resize({d.N(), s.H * s.Dv});
  acts.probs.resize({d.B, s.H, d.T, Tk});
  cpu::attention_forward(acts.out.data(), acts.probs.data(), acts.q.data(), k, v, s);
}

void gqa_project(AttentionActs& acts, const Tensor& x, const float* params, const LayerParams& p,
                 const Architecture& a, const cpu::Rope& rope, const Dims& d) {
  int N = d.N(), D = a.head_dim;
  acts.q.resize({N, a.heads * D});
  acts.k.resize({N, a.kv_heads * D});
  acts.v.resize({N, a.kv_heads * D});
  linear_forward(acts.q.data(), x.data(), N, params, p.q);
  linear_forward(acts.k.data(), x.data(), N, params, p.k);
  linear_forward(acts.v.data(), x.data(), N, params, p.v);
  cpu::rope_forward(acts.q.data(), d.positions, rope, N, a.heads, D, 0, D);
  cpu::rope_forward(acts.k.data(), d.positions, rope, N, a.kv_heads, D, 0, D);
}

// MLA: q from the hidden state (through the q LoRA when present); per-head keys = [nope part of
// kv_b(norm(latent)), the one shared rope key]; values from kv_b.
void mla_project(AttentionActs& acts, const Tensor& x, const float* params, const LayerParams& p,
                 const Architecture& a, const cpu::Rope& rope, const Dims& d) {
  int N = d.N(), H = a.heads, Dqk = a.qk_head_dim(), nope = a.qk_nope_dim, R = a.qk_rope_dim;
  int Dv = a.v_head_dim, kvr = a.kv_lora_rank, kvb_row = nope + Dv;
  acts.q.resize({N, H * Dqk});
  if (a.q_lora_rank > 0) {
    int qr = a.q_lora_rank;
    acts.q_a.resize({N, qr});
    acts.q_a_norm.resize({N, qr});
    acts.q_a_rstd.resize({N});
    linear_forward(acts.q_a.data(), x.data(), N, params, p.q_a);
    cpu::rmsnorm_forward(acts.q_a_norm.data(), acts.q_a_rstd.data(), acts.q_a.data(), params + p.q_a_norm, N, qr,
                         kMlaNormEps);
    linear_forward(acts.q.data(), acts.q_a_norm.data(), N, params, p.q_b);
  } else {
    linear_forward(acts.q.data(), x.data(), N, params, p.q);
  }
  cpu::rope_forward(acts.q.data(), d.positions, rope, N, H, Dqk, nope, R);

  acts.kv_a.resize({N, kvr + R});
  acts.kv_latent.resize({N, kvr});
  acts.kv_norm.resize({N, kvr});
  acts.kv_rstd.resize({N});
  acts.kv_b.resize({N, H * kvb_row});
  linear_forward(acts.kv_a.data(), x.data(), N, params, p.kv_a);
  for (int n = 0; n < N; n++)
    std::memcpy(acts.kv_latent.at(n), acts.kv_a.at(n), sizeof(float) * kvr);
  cpu::rmsnorm_forward(acts.kv_norm.data(), acts.kv_rstd.data(), acts.kv_latent.data(), params + p.kv_a_norm, N,
                       kvr, kMlaNormEps);
  linear_forward(acts.kv_b.data(), acts.kv_norm.data(), N, params, p.kv_b);

  acts.k.resize({N, H * Dqk});
  acts.v.resize({N, H * Dv});
  for (int n = 0; n < N; n++) {
    for (int h = 0; h < H; h++) {
      float* k = acts.k.at(n) + h * Dqk;
      const float* kvb = acts.kv_b.at(n) + h * kvb_row;
      std::memcpy(k, kvb, sizeof(float) * nope);
      std::memcpy(k + nope, acts.kv_a.at(n) + kvr, sizeof(float) * R);
      std::memcpy(acts.v.at(n) + h * Dv, kvb + nope, sizeof(float) * Dv);
    }
  }
  cpu::rope_forward(acts.k.data(), d.positions, rope, N, H, Dqk, nope, R);  // every head's copy alike
}

void mla_project_backward(float* dinp, float* grads, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                          AttentionActs& acts, const Tensor& x, const float* params, const LayerParams& p,
                          const Architecture& a, const Dims& d) {
  int N = d.N(), H = a.heads, Dqk = a.qk_head_dim(), nope = a.qk_nope_dim, R = a.qk_rope_dim;
  int Dv = a.v_head_dim, kvr = a.kv_lora_rank, kvb_row = nope + Dv;
  Tensor dkv_b({N, H * kvb_row}), dkv_a({N, kvr + R});
  for (int n = 0; n < N; n++) {
    for (int h = 0; h < H; h++) {
      const float* k = dk.data() + ((int64_t)n * H + h) * Dqk;
      float* kvb = dkv_b.at(n) + h * kvb_row;
      for (int i = 0; i < nope; i++) kvb[i] += k[i];
      for (int i = 0; i < Dv; i++) kvb[nope + i] += dv.data()[((int64_t)n * H + h) * Dv + i];
      for (int r = 0; r < R; r++) dkv_a.at(n)[kvr + r] += k[nope + r];  // the shared rope key
    }
  }
  Tensor dkv_norm({N, kvr}), dkv_latent({N, kvr});
  linear_backward(dkv_norm.data(), grads, dkv_b.data(), acts.kv_norm.data(), N, params, p.kv_b);
  cpu::rmsnorm_backward(dkv_latent.data(), grads + p.kv_a_norm, dkv_norm.data(), acts.kv_latent.data(),
                        params + p.kv_a_norm, acts.kv_rstd.data(), N, kvr);
  for (int n = 0; n < N; n++)
    for (int i = 0; i < kvr; i++) dkv_a.at(n)[i] += dkv_latent.at(n)[i];
  linear_backward(dinp, grads, dkv_a.data(), x.data(), N, params, p.kv_a);

  if (a.q_lora_rank > 0) {
    int qr = a.q_lora_rank;
    Tensor dq_a_norm({N, qr}), dq_a({N, qr});
    linear_backward(dq_a_norm.data(), grads, dq.data(), acts.q_a_norm.data(), N, params, p.q_b);
    cpu::rmsnorm_backward(dq_a.data(), grads + p.q_a_norm, dq_a_norm.data(), acts.q_a.data(), params + p.q_a_norm,
                          acts.q_a_rstd.data(), N, qr);
    linear_backward(dinp, grads, dq_a.data(), x.data(), N, params, p.q_a);
  } else {
    linear_backward(dinp, grads, dq.data(), x.data(), N, params, p.q);
  }
}

// Per sequence b: f[e] = E/(K*T) * count[b][e] (constant), and the softmax-free normalised scores.
std::vector<float> sequence_fractions(const MoeActs& acts, const Architecture& a, const Dims& d, int b) {
  int E = a.n_routed, K = a.top_k;
  std::vector<float> f(E, 0.0f);
  for (int t = 0; t < d.T; t++)
    for (int k = 0; k < K; k++) f[acts.experts[((int64_t)b * d.T + t) * K + k]] += 1.0f;
  for (float& x : f) x *= (float)E / (float)(K * d.T);
  return f;
}

// d/d(logits) of alpha/B * sum_b sum_e f_e * mean_t(s_te / S_t), S_t = sum_j s_tj:
// d/ds_tj = c_j / S_t - sum_e c_e s_te / S_t^2 with c_e = alpha * f_e / (B*T); ds/dlogit = s (1 - s).
void sequence_aux_backward(float* dlogits, const MoeActs& acts, const Architecture& a, const Dims& d, float alpha) {
  int E = a.n_routed;
  for (int b = 0; b < d.B; b++) {
    std::vector<float> c = sequence_fractions(acts, a, d, b);
    for (float& x : c) x *= alpha / (float)(d.B * d.T);
    for (int t = 0; t < d.T; t++) {
      int64_t n = (int64_t)b * d.T + t;
      const float* s = acts.scores.data() + n * E;
      float sum = 0, weighted = 0;
      for (int e = 0; e < E; e++) sum += s[e];
      for (int e = 0; e < E; e++) weighted += c[e] * s[e];
      for (int j = 0; j < E; j++) {
        float ds = c[j] / sum - weighted / (sum * sum);
        dlogits[n * E + j] += ds * s[j] * (1.0f - s[j]);
      }
    }
  }
}

cpu::RouterConfig router_config(const Architecture& a) {
  return cpu::RouterConfig{a.n_routed, a.top_k, a.n_group, a.topk_group, a.norm_topk_prob, a.routed_scaling};
}

}  // namespace

void attention_forward(Tensor& out, AttentionActs& acts, const Tensor& x, const float* params, const LayerParams& p,
                       const Architecture& a, const cpu::Rope& rope, const Dims& d, LayerCache* cache) {
  if (a.mla())
    mla_project(acts, x, params, p, a, rope, d);
  else
    gqa_project(acts, x, params, p, a, rope, d);
  attend(acts, a, d, cache);
  out.resize({d.N(), a.hidden});
  linear_forward(out.data(), acts.out.data(), d.N(), params, p.o);
}

void attention_backward(float* dinp, float* grads, const Tensor& dout, AttentionActs& acts, const Tensor& x,
                        const float* params, const LayerParams& p, const Architecture& a, const cpu::Rope& rope,
                        const Dims& d) {
  int N = d.N();
  cpu::AttentionShape s = attention_shape(a, d, d.T);
  Tensor datt({N, s.H * s.Dv});
  linear_backward(datt.data(), grads, dout.data(), acts.out.data(), N, params, p.o);
  Tensor dq({N, s.H * s.Dk}), dk({N, s.KVH * s.Dk}), dv({N, s.KVH * s.Dv});
  cpu::attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), acts.probs.data(), acts.q.data(),
                          acts.k.data(), acts.v.data(), s);
  int offset = a.mla() ? a.qk_nope_dim : 0;
  cpu::rope_backward(dq.data(), d.positions, rope, N, s.H, s.Dk, offset, a.rope_dim());
  cpu::rope_backward(dk.data(), d.positions, rope, N, s.KVH, s.Dk, offset, a.rope_dim());
  if (a.mla()) {
    mla_project_backward(dinp, grads, dq, dk, dv, acts, x, params, p, a, d);
    return;
  }
  linear_backward(dinp, grads, dq.data(), x.data(), N, params, p.q);
  linear_backward(dinp, grads, dk.data(), x.data(), N, params, p.k);
  linear_backward(dinp, grads, dv.data(), x.data(), N, params, p.v);
}

void mlp_forward(float* out, MlpActs& acts, const float* x, int n, const float* params, const MlpParams& p) {
  int I = p.gate.out;
  acts.gate.resize({n, I});
  acts.up.resize({n, I});
  acts.act.resize({n, I});
  linear_forward(acts.gate.data(), x, n, params, p.gate);
  linear_forward(acts.up.data(), x, n, params, p.up);
  cpu::swiglu_forward(acts.act.data(), acts.gate.data(), acts.up.data(), (int64_t)n * I);
  linear_forward(out, acts.act.data(), n, params, p.down);
}

void mlp_backward(float* dinp, float* grads, const float* dout, MlpActs& acts, const float* x, int n,
                  const float* params, const MlpParams& p) {
  int I = p.gate.out;
  Tensor dact({n, I}), dgate({n, I}), dup({n, I});
  linear_backward(dact.data(), grads, dout, acts.act.data(), n, params, p.down);
  cpu::swiglu_backward(dgate.data(), dup.data(), dact.data(), acts.gate.data(), acts.up.data(), (int64_t)n * I);
  linear_backward(dinp, grads, dgate.data(), x, n, params, p.gate);
  linear_backward(dinp, grads, dup.data(), x, n, params, p.up);
}

void moe_forward(Tensor& out, MoeActs& acts, const Tensor& x, const float* params, const LayerParams& p,
                 const Architecture& a) {
  int N = (int)x.shape()[0], C = a.hidden, E = a.n_routed, K = a.top_k;
  acts.logits.resize({N, E});
  acts.scores.resize({N, E});
  acts.weights.resize({N, K});
  acts.experts.assign((size_t)N * K, 0);
  linear_forward(acts.logits.data(), x.data(), N, params, p.router);
  cpu::moe_route_forward(acts.scores.data(), acts.experts.data(), acts.weights.data(), acts.logits.data(),
                         params + p.router_bias, router_config(a), N);

  acts.rows.assign(E, {});
  for (int r = 0; r < N * K; r++) acts.rows[acts.experts[r]].push_back(r);
  acts.inputs.resize(E);
  acts.outputs.resize(E);
  acts.expert_acts.resize(E);
  out.resize({N, C});
  for (int e = 0; e < E; e++) {
    int n_e = (int)acts.rows[e].size();
    if (n_e == 0) continue;
    Tensor& in = acts.inputs[e];
    in.resize({n_e, C});
    for (int i = 0; i < n_e; i++) std::memcpy(in.at(i), x.data() + (int64_t)(acts.rows[e][i] / K) * C, sizeof(float) * C);
    acts.outputs[e].resize({n_e, C});
    mlp_forward(acts.outputs[e].data(), acts.expert_acts[e], in.data(), n_e, params, p.experts[e]);
    for (int i = 0; i < n_e; i++) {
      int row = acts.rows[e][i];
      float w = acts.weights.data()[row];
      float* o = out.at(row / K);
      const float* y = acts.outputs[e].at(i);
      for (int c = 0; c < C; c++) o[c] += w * y[c];
    }
  }
  if (a.n_shared > 0) {
    Tensor shared({N, C});
    mlp_forward(shared.data(), acts.shared, x.data(), N, params, p.shared);
    for (int64_t i = 0; i < shared.numel(); i++) out.data()[i] += shared.data()[i];
  }
}

// The routing weight of (token, slot) gets dot(dout[token], expert output); the expert's input
// gradient is scattered back to the token; the router's logits get the weights' gradient.
void moe_backward(float* dinp, float* grads, const Tensor& dout, MoeActs& acts, const Tensor& x, const float* params,
                  const LayerParams& p, const Architecture& a, const Dims& d, float aux_alpha) {
  int N = (int)x.shape()[0], C = a.hidden, E = a.n_routed, K = a.top_k;
  Tensor dweights({N, K});
  for (int e = 0; e < E; e++) {
    int n_e = (int)acts.rows[e].size();
    if (n_e == 0) continue;
    Tensor dout_e({n_e, C}), dinp_e({n_e, C});
    for (int i = 0; i < n_e; i++) {
      int row = acts.rows[e][i];
      const float* g = dout.data() + (int64_t)(row / K) * C;
      const float* y = acts.outputs[e].at(i);
      float w = acts.weights.data()[row], dot = 0;
      for (int c = 0; c < C; c++) {
        dot += g[c] * y[c];
        dout_e.at(i)[c] = w * g[c];
      }
      dweights.data()[row] = dot;
    }
    mlp_backward(dinp_e.data(), grads, dout_e.data(), acts.expert_acts[e], acts.inputs[e].data(), n_e, params,
                 p.experts[e]);
    for (int i = 0; i < n_e; i++) {
      float* dx = dinp + (int64_t)(acts.rows[e][i] / K) * C;
      for (int c = 0; c < C; c++) dx[c] += dinp_e.at(i)[c];
    }
  }
  if (a.n_shared > 0) mlp_backward(dinp, grads, dout.data(), acts.shared, x.data(), N, params, p.shared);
  Tensor dlogits({N, E});
  cpu::moe_route_backward(dlogits.data(), dweights.data(), acts.scores.data(), acts.experts.data(), router_config(a), N);
  if (aux_alpha > 0) sequence_aux_backward(dlogits.data(), acts, a, d, aux_alpha);
  linear_backward(dinp, grads, dlogits.data(), x.data(), N, params, p.router);
}

float sequence_aux_loss(const MoeActs& acts, const Architecture& a, const Dims& d, float alpha) {
  int E = a.n_routed;
  double total = 0;
  for (int b = 0; b < d.B; b++) {
    std::vector<float> f = sequence_fractions(acts, a, d, b);
    for (int t = 0; t < d.T; t++) {
      const float* s = acts.scores.data() + ((int64_t)b * d.T + t) * E;
      double sum = 0;
      for (int e = 0; e < E; e++) sum += s[e];
      for (int e = 0; e < E; e++) total += f[e] * s[e] / sum;
    }
  }
  return (float)(alpha * total / ((double)d.B * d.T));
}

}  // namespace dsk::model
