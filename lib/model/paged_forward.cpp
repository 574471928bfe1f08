// The paged forward (paged_forward.hpp): the same decoder as model.cpp, with attention that
// writes to and reads from the paged pool. The feed-forward parts (SwiGLU MLP, DeepSeekMoE) are
// layers.cpp's own; only attention differs from the training path.
#include "model/paged_forward.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "model/parameters.hpp"

namespace dsk::model {

namespace {

using tensor::DType;

// HF builds q_a_layernorm and kv_a_layernorm with the RMSNorm default eps (as layers.cpp does).
constexpr float kMlaNormEps = 1e-6f;

Buf weight_of(const Weights& w, const Linear& l) { return w.w(l.weight, int64_t(l.in) * l.out); }

void linear(Ops& ops, Buf out, Buf x, int n, const Weights& w, const Linear& l) {
  ops.matmul_forward(out, x, weight_of(w, l), w.w(l.bias, l.out), n, l.in, l.out, false);
}

Buf rows(Buf b, int64_t n, int64_t row) { return b.slice(0, n * row); }

int kv_rows(const Architecture& a, int* v_row) {
  if (a.mla()) {
    *v_row = 0;
    return a.kv_lora_rank + a.qk_rope_dim;
  }
  *v_row = a.kv_heads * a.head_dim;
  return a.kv_heads * a.head_dim;
}

void carve_pool(tensor::Arena& arena, PagedWorkspace& ws, const Architecture& a, DType t) {
  const int64_t slots = int64_t(ws.plan.blocks) * ws.plan.block_size;
  ws.k_pool.assign(a.layers, Buf{});
  ws.v_pool.assign(a.layers, Buf{});
  ws.absorbed_keys.assign(a.mla() ? a.layers : 0, Buf{});
  for (int l = 0; l < a.layers; l++) {
    ws.k_pool[l] = arena.take(t, slots * ws.k_row);
    ws.v_pool[l] = a.mla() ? ws.k_pool[l] : arena.take(t, slots * ws.v_row);
    if (a.mla()) ws.absorbed_keys[l] = arena.take(t, int64_t(a.heads) * a.kv_lora_rank * a.qk_nope_dim);
  }
}

int logit_rows(const PagedPlan& p) { return p.max_logit_rows > 0 ? p.max_logit_rows : p.max_sequences; }

void carve_step(tensor::Arena& arena, PagedWorkspace& ws, const Architecture& a, DType t) {
  const PagedPlan& p = ws.plan;
  const int64_t N = p.max_tokens, C = a.hidden, S = p.max_sequences, H = a.heads, L = logit_rows(p);
  ws.meta = arena.take(DType::i32, 4 * N + L + S * p.max_blocks);
  for (Buf& x : ws.x) x = arena.take(t, N * C);
  ws.norm1 = arena.take(t, N * C);
  ws.rstd1 = arena.take(DType::f32, N);
  ws.x_mid = arena.take(t, N * C);
  ws.norm2 = arena.take(t, N * C);
  ws.rstd2 = arena.take(DType::f32, N);
  ws.branch_out = arena.take(t, N * C);
  const int Dv = a.mla() ? a.v_head_dim : a.head_dim;
  ws.attention_out = arena.take(t, N * H * Dv);
  ws.q = arena.take(t, N * H * a.qk_head_dim());
  if (a.mla()) {
    const int64_t kvr = a.kv_lora_rank, R = a.qk_rope_dim;
    if (a.q_lora_rank > 0) {
      ws.q_a = arena.take(t, N * a.q_lora_rank);
      ws.q_a_norm = arena.take(t, N * a.q_lora_rank);
      ws.q_a_rstd = arena.take(DType::f32, N);
    }
    ws.kv_a = arena.take(t, N * (kvr + R));
    ws.kv_latent = arena.take(t, N * kvr);
    ws.kv_norm = arena.take(t, N * kvr);
    ws.kv_rstd = arena.take(DType::f32, N);
    ws.kv_row = arena.take(t, N * (kvr + R));
    ws.q_absorbed = arena.take(t, N * H * (kvr + R));
    ws.latent_out = arena.take(t, N * H * kvr);
    ws.head_nope = arena.take(t, N * a.qk_nope_dim);
    ws.head_latent = arena.take(t, N * kvr);
    ws.head_value = arena.take(t, N * Dv);
  } else {
    ws.k_new = arena.take(t, N * ws.k_row);
    ws.v_new = arena.take(t, N * ws.v_row);
  }
  if (a.first_k_dense > 0 || a.n_routed == 0) carve_mlp(arena, ws.mlp, t, int(N), a.intermediate);
  if (a.n_routed > 0 && a.layers > a.first_k_dense) {
    carve_moe(arena, ws.moe, t, a, int(N));
    ws.expert_load = arena.take(DType::i64, a.n_routed);
  }
  ws.last_hidden = arena.take(t, L * C);
  ws.last_norm = arena.take(t, L * C);
  ws.last_rstd = arena.take(DType::f32, L);
  ws.logits = arena.take(DType::f32, L * a.vocab);
}

// kv_b's key block of each head, W_UK[h] [nope, kv_rank], stored transposed [kv_rank, nope] so
// that q_absorbed = q_nope @ W_UK[h] is one matmul_forward (out = in @ weight^T).
void absorb_key_weights(const ModelParts& m, PagedWorkspace& ws) {
  const Architecture& a = m.arch;
  const int H = a.heads, nope = a.qk_nope_dim, Dv = a.v_head_dim, kvr = a.kv_lora_rank;
  std::vector<float> kv_b(size_t(H) * (nope + Dv) * kvr), transposed(size_t(H) * kvr * nope);
  for (int l = 0; l < a.layers; l++) {
    m.ops.copy_to_host(kv_b.data(), m.weights.master.slice(int64_t(m.layout.layers[l].kv_b.weight), int64_t(kv_b.size())));
    for (int h = 0; h < H; h++)
      for (int d = 0; d < nope; d++)
        for (int j = 0; j < kvr; j++)
          transposed[(size_t(h) * kvr + j) * nope + d] = kv_b[(size_t(h) * (nope + Dv) + d) * kvr + j];
    Buf staging = m.ops.scratch(transposed.size() * sizeof(float)).slice(0, int64_t(transposed.size()));
    m.ops.copy_from_host(staging, transposed.data());
    m.ops.cast(ws.absorbed_keys[l], staging);
  }
}

struct StepView {
  int N, S, R, max_keys;
  Buf tokens, positions, sequence, slots, logit_rows, block_tables;
};

StepView upload_step(Ops& ops, PagedWorkspace& ws, const PagedStep& step, const Architecture& a) {
  const PagedPlan& p = ws.plan;
  const int N = int(step.tokens.size()), S = step.sequences, R = int(step.logit_rows.size());
  if (N <= 0 || N > p.max_tokens || S <= 0 || S > p.max_sequences || R > logit_rows(p) ||
      step.positions.size() != size_t(N) || step.sequence.size() != size_t(N) || step.slots.size() != size_t(N) ||
      step.block_tables.size() != size_t(S) * p.max_blocks)
    throw InternalError(str("paged forward: a step of ", N, " tokens, ", S, " sequences and ", R,
                            " logit rows does not fit its plan (", p.max_tokens, " tokens, ", p.max_sequences,
                            " sequences, ", logit_rows(p), " logit rows) or its arrays disagree"));
  const int64_t slots = int64_t(p.blocks) * p.block_size;
  int max_keys = 0;
  for (int n = 0; n < N; n++) {
    if (step.tokens[n] < 0 || step.tokens[n] >= a.vocab || step.sequence[n] < 0 || step.sequence[n] >= S ||
        step.slots[n] < 0 || step.slots[n] >= slots || step.positions[n] < 0 ||
        step.positions[n] >= p.max_blocks * p.block_size)
      throw InternalError(str("paged forward: token ", n, " of the step is out of range"));
    max_keys = std::max(max_keys, step.positions[n] + 1);
  }
  for (int32_t b : step.block_tables)
    if (b < 0 || b >= p.blocks) throw InternalError(str("paged forward: block ", b, " is not in the pool"));
  for (int32_t r : step.logit_rows)
    if (r < 0 || r >= N) throw InternalError(str("paged forward: logit row ", r, " is not a token of the step"));

  std::vector<int32_t> host;
  host.reserve(size_t(4 * N + R) + step.block_tables.size());
  for (const auto* part : {&step.tokens, &step.positions, &step.sequence, &step.slots, &step.logit_rows, &step.block_tables})
    host.insert(host.end(), part->begin(), part->end());
  Buf meta = ws.meta.slice(0, int64_t(host.size()));
  ops.copy_from_host(meta, host.data());
  StepView v{N, S, R, max_keys, {}, {}, {}, {}, {}, {}};
  v.tokens = meta.slice(0, N);
  v.positions = meta.slice(N, N);
  v.sequence = meta.slice(2 * int64_t(N), N);
  v.slots = meta.slice(3 * int64_t(N), N);
  v.logit_rows = meta.slice(4 * int64_t(N), R);
  v.block_tables = meta.slice(4 * int64_t(N) + R, int64_t(step.block_tables.size()));
  return v;
}

tensor::PagedAttentionShape attention_shape(const PagedWorkspace& ws, const StepView& v, int H, int KVH, int Dk, int Dv,
                                            int q_stride, float scale) {
  return tensor::PagedAttentionShape{v.N,         H,        KVH,   Dk,        Dv, q_stride, ws.k_row,
                                     ws.v_row ? ws.v_row : ws.k_row, ws.plan.block_size, ws.plan.max_blocks,
                                     scale,       v.max_keys};
}

// GQA: project, rotate, write the new keys/values, attend over the pool; out = o_proj.
void gqa_attention(const ModelParts& m, PagedWorkspace& ws, const StepView& v, int l, Buf x, Buf out) {
  Ops& ops = m.ops;
  const Architecture& a = m.arch;
  const LayerParams& p = m.layout.layers[l];
  const int N = v.N, D = a.head_dim;
  linear(ops, ws.q, x, N, m.weights, p.q);
  linear(ops, ws.k_new, x, N, m.weights, p.k);
  linear(ops, ws.v_new, x, N, m.weights, p.v);
  ops.rope_forward(ws.q, v.positions, m.rope, N, a.heads, D, 0, D);
  ops.rope_forward(ws.k_new, v.positions, m.rope, N, a.kv_heads, D, 0, D);
  ops.paged_kv_write(ws.k_pool[l], ws.k_new, v.slots, N, ws.k_row, ws.k_row);
  ops.paged_kv_write(ws.v_pool[l], ws.v_new, v.slots, N, ws.v_row, ws.v_row);
  ops.paged_attention_forward(ws.attention_out, ws.q, ws.k_pool[l], ws.v_pool[l], v.block_tables, v.sequence,
                              v.positions, attention_shape(ws, v, a.heads, a.kv_heads, D, D, a.heads * D,
                                                           a.softmax_scale()));
  linear(ops, out, ws.attention_out, N, m.weights, p.o);
}

// MLA in the absorbed form (paged_forward.hpp): the cached row is [norm(latent) | rope(k_rope)].
void mla_attention(const ModelParts& m, PagedWorkspace& ws, const StepView& v, int l, Buf x, Buf out) {
  Ops& ops = m.ops;
  const Architecture& a = m.arch;
  const Weights& w = m.weights;
  const LayerParams& p = m.layout.layers[l];
  const int N = v.N, H = a.heads, nope = a.qk_nope_dim, R = a.qk_rope_dim, Dqk = a.qk_head_dim();
  const int Dv = a.v_head_dim, kvr = a.kv_lora_rank, row = kvr + R;
  if (a.q_lora_rank > 0) {
    const int qr = a.q_lora_rank;
    linear(ops, ws.q_a, x, N, w, p.q_a);
    ops.rmsnorm_forward(ws.q_a_norm, ws.q_a_rstd, ws.q_a, w.w(p.q_a_norm, qr), N, qr, kMlaNormEps);
    linear(ops, ws.q, ws.q_a_norm, N, w, p.q_b);
  } else {
    linear(ops, ws.q, x, N, w, p.q);
  }
  ops.rope_forward(ws.q, v.positions, m.rope, N, H, Dqk, nope, R);

  linear(ops, ws.kv_a, x, N, w, p.kv_a);
  ops.copy_columns(ws.kv_latent, kvr, 0, ws.kv_a, row, 0, N, kvr, false);
  ops.rmsnorm_forward(ws.kv_norm, ws.kv_rstd, ws.kv_latent, w.w(p.kv_a_norm, kvr), N, kvr, kMlaNormEps);
  ops.copy_columns(ws.kv_row, row, 0, ws.kv_norm, kvr, 0, N, kvr, false);
  ops.copy_columns(ws.kv_row, row, kvr, ws.kv_a, row, kvr, N, R, false);
  ops.rope_forward(ws.kv_row, v.positions, m.rope, N, 1, row, kvr, R);
  ops.paged_kv_write(ws.k_pool[l], ws.kv_row, v.slots, N, row, row);

  const Buf kv_b = weight_of(w, p.kv_b);
  for (int h = 0; h < H; h++) {  // q_absorbed[:, h] = [q_nope[:, h] @ W_UK[h], q_rope[:, h]]
    ops.copy_columns(ws.head_nope, nope, 0, ws.q, H * Dqk, h * Dqk, N, nope, false);
    ops.matmul_forward(ws.head_latent, ws.head_nope, ws.absorbed_keys[l].slice(int64_t(h) * kvr * nope, int64_t(kvr) * nope),
                       Buf{}, N, nope, kvr, false);
    ops.copy_columns(ws.q_absorbed, H * row, h * row, ws.head_latent, kvr, 0, N, kvr, false);
    ops.copy_columns(ws.q_absorbed, H * row, h * row + kvr, ws.q, H * Dqk, h * Dqk + nope, N, R, false);
  }
  ops.paged_attention_forward(ws.latent_out, ws.q_absorbed, ws.k_pool[l], ws.v_pool[l], v.block_tables, v.sequence,
                              v.positions, attention_shape(ws, v, H, 1, row, kvr, H * row, a.softmax_scale()));
  for (int h = 0; h < H; h++) {  // out[:, h] = latent_out[:, h] @ W_UV[h]^T (+ the value bias, if any)
    const int64_t first_row = int64_t(h) * (nope + Dv) + nope;
    ops.copy_columns(ws.head_latent, kvr, 0, ws.latent_out, H * kvr, h * kvr, N, kvr, false);
    const Buf bias = p.kv_b.bias == kNone ? Buf{} : w.w(p.kv_b.bias + size_t(first_row), Dv);
    ops.matmul_forward(ws.head_value, ws.head_latent, kv_b.slice(first_row * kvr, int64_t(Dv) * kvr), bias, N, kvr, Dv,
                       false);
    ops.copy_columns(ws.attention_out, H * Dv, h * Dv, ws.head_value, Dv, 0, N, Dv, false);
  }
  linear(ops, out, ws.attention_out, N, w, p.o);
}

void layer_forward(const ModelParts& m, PagedWorkspace& ws, const StepView& v, int l, Buf x, Buf out) {
  Ops& ops = m.ops;
  const Architecture& a = m.arch;
  const LayerParams& p = m.layout.layers[l];
  const int N = v.N, C = a.hidden;
  Buf norm1 = rows(ws.norm1, N, C), x_mid = rows(ws.x_mid, N, C), norm2 = rows(ws.norm2, N, C);
  Buf branch = rows(ws.branch_out, N, C);
  ops.rmsnorm_forward(norm1, ws.rstd1, x, m.weights.w(p.input_norm, C), N, C, a.rms_eps);
  if (a.mla())
    mla_attention(m, ws, v, l, norm1, branch);
  else
    gqa_attention(m, ws, v, l, norm1, branch);
  ops.add(x_mid, x, branch);
  ops.rmsnorm_forward(norm2, ws.rstd2, x_mid, m.weights.w(p.post_norm, C), N, C, a.rms_eps);
  if (p.moe)
    moe_forward(ops, branch, ws.moe, norm2, m.weights, p, a, ws.expert_load);
  else
    mlp_forward(ops, branch, ws.mlp, norm2, N, m.weights, p.mlp);
  ops.add(out, x_mid, branch);
}

}  // namespace

size_t paged_block_bytes(const Architecture& a, DType dtype, int block_size) {
  int v_row = 0;
  const int k_row = kv_rows(a, &v_row);
  return size_t(a.layers) * block_size * size_t(k_row + v_row) * tensor::dtype_size(dtype);
}

namespace {

// The pool that fits memory_fraction of the free memory, capped at what max_sequences sequences
// of full length need; ResourceError when not even one block fits.
int blocks_that_fit(const ModelParts& m, const PagedPlan& plan) {
  const size_t per_block = paged_block_bytes(m.arch, m.ops.activation_dtype(), plan.block_size);
  const double budget = plan.memory_fraction * double(m.ops.memory_available());
  const int64_t fit = int64_t(budget / double(per_block));
  const int64_t wanted = int64_t(plan.max_blocks) * plan.max_sequences;
  if (fit < 1)
    throw ResourceError(str("paged KV cache: ", budget / double(1ull << 30), " GiB (memory_fraction ",
                            plan.memory_fraction, " of the free memory) hold no block of ", per_block, " bytes"));
  return int(std::min<int64_t>({fit, wanted, int64_t(1) << 30}));
}

}  // namespace

PagedWorkspace make_paged_workspace(const ModelParts& m, const PagedPlan& plan) {
  if (plan.blocks < 0 || plan.memory_fraction <= 0 || plan.memory_fraction > 1 || plan.block_size <= 0 || plan.max_tokens <= 0 || plan.max_sequences <= 0 ||
      plan.max_blocks <= 0)
    throw UsageError(str("paged KV cache: ", plan.blocks, " blocks of ", plan.block_size, " positions, ",
                         plan.max_tokens, " tokens and ", plan.max_sequences, " sequences per step: all must be > 0"));
  PagedWorkspace ws;
  ws.plan = plan;
  ws.k_row = kv_rows(m.arch, &ws.v_row);
  const DType t = m.ops.activation_dtype();
  ws.step_arena = std::make_unique<tensor::Arena>(m.ops, str("serving activations for ", plan.max_tokens, " tokens"));
  carve_step(*ws.step_arena, ws, m.arch, t);
  ws.step_arena->commit();
  carve_step(*ws.step_arena, ws, m.arch, t);
  if (plan.blocks == 0) ws.plan.blocks = blocks_that_fit(m, plan);
  ws.pool_arena = std::make_unique<tensor::Arena>(
      m.ops, str("paged KV cache of ", ws.plan.blocks, " blocks x ", plan.block_size, " positions"));
  carve_pool(*ws.pool_arena, ws, m.arch, t);
  ws.pool_arena->commit();
  carve_pool(*ws.pool_arena, ws, m.arch, t);
  if (m.arch.mla()) absorb_key_weights(m, ws);
  if (!ws.expert_load.empty()) m.ops.zero(ws.expert_load);
  return ws;
}

std::vector<float> paged_forward(const ModelParts& m, PagedWorkspace& ws, const PagedStep& step) {
  Ops& ops = m.ops;
  const Architecture& a = m.arch;
  const StepView v = upload_step(ops, ws, step, a);
  const int N = v.N, C = a.hidden, V = a.vocab, R = v.R;
  ops.embedding_forward(rows(ws.x[0], N, C), v.tokens, m.weights.w(m.layout.embed, int64_t(V) * C), N, C);
  for (int l = 0; l < a.layers; l++) layer_forward(m, ws, v, l, rows(ws.x[l % 2], N, C), rows(ws.x[(l + 1) % 2], N, C));
  if (R == 0) return {};
  // Only the wanted rows go through the final norm and the LM head (the embedding op gathers rows).
  Buf last = rows(ws.last_hidden, R, C), last_norm = rows(ws.last_norm, R, C);
  ops.embedding_forward(last, v.logit_rows, rows(ws.x[a.layers % 2], N, C), R, C);
  ops.rmsnorm_forward(last_norm, ws.last_rstd, last, m.weights.w(m.layout.final_norm, C), R, C, a.rms_eps);
  Buf logits = ws.logits.slice(0, int64_t(R) * V);
  ops.lm_head_logits(logits, last_norm, m.weights.w(m.layout.lm_head.weight, int64_t(V) * C), R, C, V);
  std::vector<float> host(size_t(R) * V);
  ops.copy_to_host(host.data(), logits);
  return host;
}

}  // namespace dsk::model
