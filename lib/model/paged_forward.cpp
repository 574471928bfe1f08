// The paged forward (paged_forward.hpp): the same decoder as model.cpp, with attention that
// writes to and reads from the paged pool. The feed-forward parts (SwiGLU MLP, DeepSeekMoE) are
// layers.cpp's own; only attention differs from the training path.
#include "model/paged_forward.hpp"

#include <algorithm>
#include <utility>

#include "core/error.hpp"
#include "core/log.hpp"
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

// residual [n, out] += x @ weight^T (+ bias): a branch's last projection onto the residual stream.
void add_linear(Ops& ops, Buf residual, Buf x, int n, const Weights& w, const Linear& l) {
  ops.matmul_forward(residual, x, weight_of(w, l), w.w(l.bias, l.out), n, l.in, l.out, true);
}

Buf rows(Buf b, int64_t n, int64_t row) { return b.slice(0, n * row); }

// Values per slot of the key and the value pool (MLA: one pool of [latent | rope key], no values).
struct RowWidths {
  int k, v;
};
RowWidths row_widths(const Architecture& a) {
  if (a.mla()) return {a.kv_lora_rank + a.qk_rope_dim, 0};
  return {a.kv_heads * a.head_dim, a.kv_heads * a.head_dim};
}

// The blocks of the pool past plan.blocks: one for the padding tokens of graph replays (they write
// their keys there, and attend to it, outside every sequence's blocks).
int spare_blocks(const PagedPlan& p) { return p.cuda_graphs ? 1 : 0; }

void carve_pool(tensor::Arena& arena, PagedWorkspace& ws, const Architecture& a, DType t) {
  const int64_t slots = int64_t(ws.plan.blocks + spare_blocks(ws.plan)) * ws.plan.block_size;
  ws.k_pool.assign(a.layers, Buf{});
  ws.v_pool.assign(a.layers, Buf{});
  ws.absorbed_keys.assign(a.mla() ? a.layers : 0, Buf{});
  for (int l = 0; l < a.layers; l++) {
    ws.k_pool[l] = arena.take(t, slots * ws.k_row);
    ws.v_pool[l] = a.mla() ? ws.k_pool[l] : arena.take(t, slots * ws.v_row);
    if (a.mla()) ws.absorbed_keys[l] = arena.take(t, int64_t(a.heads) * a.kv_lora_rank * a.qk_head_dim());
  }
}

int logit_rows(const PagedPlan& p) { return p.max_logit_rows > 0 ? p.max_logit_rows : p.max_sequences; }

void carve_step(tensor::Arena& arena, PagedWorkspace& ws, const Architecture& a, DType t) {
  const PagedPlan& p = ws.plan;
  const int64_t N = p.max_tokens, C = a.hidden, S = p.max_sequences, H = a.heads, L = logit_rows(p);
  const int64_t mla_orders = a.mla() ? 2 * N * H + H + 1 : 0;  // to_heads, to_tokens, head offsets
  ws.meta = arena.take(DType::i32, 4 * N + L + S * p.max_blocks + mla_orders);
  ws.x = arena.take(t, N * C);
  ws.norm1 = arena.take(t, N * C);
  ws.rstd1 = arena.take(DType::f32, N);
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
    ws.q_by_head = arena.take(t, N * H * a.qk_head_dim());
    ws.latent_by_head = arena.take(t, N * H * kvr);
    ws.q_latent = arena.take(t, N * H * kvr);
    ws.value_by_head = arena.take(t, N * H * Dv);
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
  ws.next_ids = arena.take(DType::i32, L);
  ws.temperatures = arena.take(DType::f32, L);
  ws.noise_seeds = arena.take(DType::i64, L);
}

// kv_b's key block of each head, W_UK[h] [nope, kv_rank], stored transposed and padded with zeros
// for the rope columns, [kv_rank, nope + rope], so that a whole query head times it is
// q_nope @ W_UK[h] (out = in @ weight^T): the heads' products are one grouped matmul.
void absorb_key_weights(const ModelParts& m, PagedWorkspace& ws) {
  const Architecture& a = m.arch;
  const int H = a.heads, nope = a.qk_nope_dim, Dv = a.v_head_dim, kvr = a.kv_lora_rank;
  const int Dqk = a.qk_head_dim();
  std::vector<float> kv_b(size_t(H) * (nope + Dv) * kvr), transposed(size_t(H) * kvr * Dqk, 0.0f);
  for (int l = 0; l < a.layers; l++) {
    const int64_t offset = int64_t(m.layout.layers[l].kv_b.weight);
    m.ops.copy_to_host(kv_b.data(), m.weights.m(size_t(offset), int64_t(kv_b.size())));
    for (int h = 0; h < H; h++)
      for (int d = 0; d < nope; d++)
        for (int j = 0; j < kvr; j++)
          transposed[(size_t(h) * kvr + j) * Dqk + d] = kv_b[(size_t(h) * (nope + Dv) + d) * kvr + j];
    Buf staging = m.ops.scratch(transposed.size() * sizeof(float)).slice(0, int64_t(transposed.size()));
    m.ops.copy_from_host(staging, transposed.data());
    m.ops.cast(ws.absorbed_keys[l], staging);
  }
}

// A run of the step's tokens attended by one op: a whole prompt that starts at position 0 (its
// keys are its own new ones, so the flash kernel's causal attention over them is the answer), or
// tokens of any sequences through the paged op.
struct AttentionRun {
  int first, count, max_keys;
  bool fresh_prompt;
};

struct StepView {
  int N, S, R, max_keys, table_width;
  Buf tokens, positions, sequence, slots, logit_rows, block_tables;
  Buf to_heads, to_tokens, head_offsets;  // MLA: rows [N*H] token-major <-> head-major, offsets [H+1]
  std::vector<AttentionRun> runs;
  bool one_token_each = false;  // every token is the only one of its sequence in the step
};

// On CUDA, a fresh prompt chunk (tokens 0..T-1 of one sequence, adjacent in the step) goes
// through the flash attention kernel, which reuses each key tile across queries, instead of the
// paged kernel's key scan per query (quadratic reads). The CPU keeps the paged op for every token,
// so that a token's numbers never depend on how the scheduler cut the prompt into chunks.
std::vector<AttentionRun> attention_runs(const PagedStep& step, bool flash_prompts) {
  std::vector<AttentionRun> runs;
  const int N = int(step.tokens.size());
  auto add_paged = [&](int first, int count, int max_keys) {
    if (!runs.empty() && !runs.back().fresh_prompt && runs.back().first + runs.back().count == first) {
      runs.back().count += count;
      runs.back().max_keys = std::max(runs.back().max_keys, max_keys);
    } else {
      runs.push_back({first, count, max_keys, false});
    }
  };
  for (int n = 0; n < N;) {
    int end = n + 1;  // the tokens of this sequence that follow each other in position order
    while (end < N && step.sequence[end] == step.sequence[n] && step.positions[end] == step.positions[end - 1] + 1)
      end++;
    const int count = end - n, max_keys = step.positions[end - 1] + 1;
    if (flash_prompts && step.positions[n] == 0 && count > 1)
      runs.push_back({n, count, max_keys, true});
    else
      add_paged(n, count, max_keys);
    n = end;
  }
  return runs;
}

// MLA's per-head products run as grouped matmuls over head-major rows: row h*N + n of the
// head-major view is row n*H + h of the token-major one (to_heads), and back (to_tokens).
void append_head_orders(std::vector<int32_t>& host, int N, int H) {
  for (int h = 0; h < H; h++)
    for (int n = 0; n < N; n++) host.push_back(n * H + h);
  for (int n = 0; n < N; n++)
    for (int h = 0; h < H; h++) host.push_back(h * N + n);
  for (int h = 0; h <= H; h++) host.push_back(h * N);
}

StepView upload_step(Ops& ops, PagedWorkspace& ws, const PagedStep& step, const Architecture& a) {
  const PagedPlan& p = ws.plan;
  const int N = int(step.tokens.size()), S = step.sequences, R = int(step.logit_rows.size());
  const int width = step.table_width > 0 ? step.table_width : p.max_blocks;
  if (N <= 0 || N > p.max_tokens || S <= 0 || S > p.max_sequences || R > logit_rows(p) || width > p.max_blocks ||
      step.positions.size() != size_t(N) || step.sequence.size() != size_t(N) || step.slots.size() != size_t(N) ||
      step.block_tables.size() != size_t(S) * width)
    throw InternalError(str("paged forward: a step of ", N, " tokens, ", S, " sequences and ", R,
                            " logit rows does not fit its plan (", p.max_tokens, " tokens, ", p.max_sequences,
                            " sequences, ", logit_rows(p), " logit rows) or its arrays disagree"));
  const int pool_blocks = p.blocks + spare_blocks(p);
  const int64_t slots = int64_t(pool_blocks) * p.block_size;
  int max_keys = 0;
  for (int n = 0; n < N; n++) {
    if (step.tokens[n] < 0 || step.tokens[n] >= a.vocab || step.sequence[n] < 0 || step.sequence[n] >= S ||
        step.slots[n] < 0 || step.slots[n] >= slots || step.positions[n] < 0 ||
        step.positions[n] >= width * p.block_size)
      throw InternalError(str("paged forward: token ", n, " of the step is out of range"));
    max_keys = std::max(max_keys, step.positions[n] + 1);
  }
  for (int32_t b : step.block_tables)
    if (b < 0 || b >= pool_blocks) throw InternalError(str("paged forward: block ", b, " is not in the pool"));
  for (int32_t r : step.logit_rows)
    if (r < 0 || r >= N) throw InternalError(str("paged forward: logit row ", r, " is not a token of the step"));

  std::vector<int32_t> host;
  host.reserve(size_t(4 * N + R) + step.block_tables.size());
  for (const auto* part :
       {&step.tokens, &step.positions, &step.sequence, &step.slots, &step.logit_rows, &step.block_tables})
    host.insert(host.end(), part->begin(), part->end());
  const int64_t orders_at = int64_t(host.size()), H = a.heads;
  if (a.mla()) append_head_orders(host, N, a.heads);
  Buf meta = ws.meta.slice(0, int64_t(host.size()));
  ops.copy_from_host(meta, host.data());
  StepView v{N, S, R, max_keys, width, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, false};
  std::vector<char> seen(size_t(S), 0);
  v.one_token_each = true;
  for (int n = 0; n < N; n++) v.one_token_each = v.one_token_each && !std::exchange(seen[size_t(step.sequence[n])], 1);
  const int D = a.head_dim;
  v.runs = attention_runs(step, ops.device() == tensor::Device::cuda && !a.mla() && D % 8 == 0 && D <= 256);
  if (a.mla()) {
    v.to_heads = meta.slice(orders_at, N * H);
    v.to_tokens = meta.slice(orders_at + N * H, N * H);
    v.head_offsets = meta.slice(orders_at + 2 * N * H, H + 1);
  }
  v.tokens = meta.slice(0, N);
  v.positions = meta.slice(N, N);
  v.sequence = meta.slice(2 * int64_t(N), N);
  v.slots = meta.slice(3 * int64_t(N), N);
  v.logit_rows = meta.slice(4 * int64_t(N), R);
  v.block_tables = meta.slice(4 * int64_t(N) + R, int64_t(step.block_tables.size()));
  return v;
}

// The paged op's shape for N queries of which none sees more than max_keys keys.
tensor::PagedAttentionShape attention_shape(const PagedWorkspace& ws, const StepView& v, int N, int max_keys, int H,
                                            int KVH, int Dk, int Dv, int q_stride, float scale) {
  tensor::PagedAttentionShape s;
  s.N = N;
  s.H = H;
  s.KVH = KVH;
  s.Dk = Dk;
  s.Dv = Dv;
  s.q_stride = q_stride;
  s.k_stride = ws.k_row;
  s.v_stride = ws.v_row ? ws.v_row : ws.k_row;  // MLA reads its values from the key rows
  s.block_size = ws.plan.block_size;
  s.max_blocks = v.table_width;
  s.scale = scale;
  s.max_keys = max_keys;
  return s;
}

// GQA: project (the input norm, then q, k and v in one pass over their weights), rotate, write
// the new keys/values, attend over the pool; residual += o_proj.
void gqa_attention(const ModelParts& m, PagedWorkspace& ws, const StepView& v, int l, const Ops::NormedInput& x,
                   Buf residual) {
  Ops& ops = m.ops;
  const Architecture& a = m.arch;
  const LayerParams& p = m.layout.layers[l];
  const int N = v.N, D = a.head_dim;
  const Weights& w = m.weights;
  ops.rmsnorm_matmul_parts_forward({{ws.q, weight_of(w, p.q), w.w(p.q.bias, p.q.out), p.q.out},
                                    {ws.k_new, weight_of(w, p.k), w.w(p.k.bias, p.k.out), p.k.out},
                                    {ws.v_new, weight_of(w, p.v), w.w(p.v.bias, p.v.out), p.v.out}},
                                   x, N, a.hidden);
  ops.rope_paged_kv_write(ws.q, ws.k_new, ws.v_new, ws.k_pool[l], ws.v_pool[l], v.positions, v.slots, m.rope, N,
                          a.heads, a.kv_heads, D);
  const int H = a.heads, KVH = a.kv_heads;
  for (const AttentionRun& run : v.runs) {
    const int64_t q0 = int64_t(run.first) * H * D, q_count = int64_t(run.count) * H * D;
    const Buf run_out = ws.attention_out.slice(q0, q_count), run_q = ws.q.slice(q0, q_count);
    if (run.fresh_prompt) {
      const int64_t k0 = int64_t(run.first) * KVH * D, k_count = int64_t(run.count) * KVH * D;
      const tensor::AttentionShape s{1, run.count, run.count, H, KVH, D, D, H * D, KVH * D, KVH * D, a.softmax_scale()};
      const Buf saved = ops.scratch(size_t(ops.attention_saved_floats(s)) * sizeof(float));
      ops.attention_forward(run_out, saved, run_q, ws.k_new.slice(k0, k_count), ws.v_new.slice(k0, k_count), s);
      continue;
    }
    const tensor::PagedAttentionShape s =
        attention_shape(ws, v, run.count, run.max_keys, H, KVH, D, D, H * D, a.softmax_scale());
    ops.paged_attention_forward(run_out, run_q, ws.k_pool[l], ws.v_pool[l], v.block_tables,
                                v.sequence.slice(run.first, run.count), v.positions.slice(run.first, run.count), s);
  }
  add_linear(ops, residual, ws.attention_out, N, m.weights, p.o);
}

// MLA in the absorbed form (paged_forward.hpp): the cached row is [norm(latent) | rope(k_rope)].
void mla_attention(const ModelParts& m, PagedWorkspace& ws, const StepView& v, int l, Buf x, Buf residual) {
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

  // q_absorbed [N, H, kvr + R] = [q_nope @ W_UK[h], q_rope] per head: the key products of all
  // heads as one grouped matmul over the head-major rows.
  const int rows_nh = N * H;
  ops.moe_gather(ws.q_by_head, ws.q, v.to_heads, rows_nh, 1, Dqk);
  ops.grouped_matmul_forward(ws.latent_by_head, ws.q_by_head, ws.absorbed_keys[l], int64_t(kvr) * Dqk,
                             v.head_offsets, H, rows_nh, Dqk, kvr);
  ops.moe_gather(ws.q_latent, ws.latent_by_head, v.to_tokens, rows_nh, 1, kvr);
  ops.copy_columns(ws.q_absorbed, row, 0, ws.q_latent, kvr, 0, rows_nh, kvr, false);
  ops.copy_columns(ws.q_absorbed, row, kvr, ws.q, Dqk, nope, rows_nh, R, false);
  const tensor::PagedAttentionShape shape =
      attention_shape(ws, v, N, v.max_keys, H, 1, row, kvr, H * row, a.softmax_scale());
  ops.paged_attention_forward(ws.latent_out, ws.q_absorbed, ws.k_pool[l], ws.v_pool[l], v.block_tables, v.sequence,
                              v.positions, shape);
  // out[:, h] = latent_out[:, h] @ W_UV[h]^T, W_UV[h] = rows h*(nope+Dv) + nope .. + Dv of kv_b.
  const int64_t head_stride = int64_t(nope + Dv) * kvr;
  const Buf values = weight_of(w, p.kv_b).slice(int64_t(nope) * kvr, head_stride * (H - 1) + int64_t(Dv) * kvr);
  ops.moe_gather(ws.latent_by_head, ws.latent_out, v.to_heads, rows_nh, 1, kvr);
  ops.grouped_matmul_forward(ws.value_by_head, ws.latent_by_head, values, head_stride, v.head_offsets, H, rows_nh, kvr,
                             Dv);
  ops.moe_gather(ws.attention_out, ws.value_by_head, v.to_tokens, rows_nh, 1, Dv);
  add_linear(ops, residual, ws.attention_out, N, w, p.o);
}

// The dense SwiGLU MLP onto the residual stream: the norm, gate, up and SwiGLU in one pass over
// their weights, then residual += down.
void dense_mlp(const ModelParts& m, PagedWorkspace& ws, int N, const MlpParams& p, const Ops::NormedInput& x,
               Buf residual) {
  Ops& ops = m.ops;
  const Weights& w = m.weights;
  Buf act = rows(ws.mlp.act, N, p.gate.out);
  if (p.gate.bias == kNone && p.up.bias == kNone) {
    ops.rmsnorm_swiglu_matmul_forward(act, x, weight_of(w, p.gate), weight_of(w, p.up), N, p.gate.in, p.gate.out);
  } else {
    ops.rmsnorm_forward(x.out, x.rstd, x.x, x.weight, N, p.gate.in, x.eps);
    linear(ops, rows(ws.mlp.gate, N, p.gate.out), x.out, N, w, p.gate);
    linear(ops, rows(ws.mlp.up, N, p.up.out), x.out, N, w, p.up);
    ops.swiglu_forward(act, rows(ws.mlp.gate, N, p.gate.out), rows(ws.mlp.up, N, p.up.out));
  }
  add_linear(ops, residual, act, N, w, p.down);
}

// One layer on the residual stream x [N, C], in place: x += attention(norm(x)); x += mlp(norm(x)).
void layer_forward(const ModelParts& m, PagedWorkspace& ws, const StepView& v, int l, Buf x) {
  Ops& ops = m.ops;
  const Architecture& a = m.arch;
  const LayerParams& p = m.layout.layers[l];
  const int N = v.N, C = a.hidden;
  Buf norm1 = rows(ws.norm1, N, C), norm2 = rows(ws.norm2, N, C);
  // GQA and the dense MLP read their norm in one product, which may compute it itself (NormedInput).
  const Ops::NormedInput in1{x, norm1, ws.rstd1, m.weights.w(p.input_norm, C), a.rms_eps};
  const Ops::NormedInput in2{x, norm2, ws.rstd2, m.weights.w(p.post_norm, C), a.rms_eps};
  if (a.mla()) {
    ops.rmsnorm_forward(norm1, ws.rstd1, x, in1.weight, N, C, a.rms_eps);
    mla_attention(m, ws, v, l, norm1, x);
  } else {
    gqa_attention(m, ws, v, l, in1, x);
  }
  if (p.moe) {
    ops.rmsnorm_forward(norm2, ws.rstd2, x, in2.weight, N, C, a.rms_eps);
    Buf branch = rows(ws.branch_out, N, C);
    moe_forward(ops, branch, ws.moe, norm2, m.weights, p, a, ws.expert_load);
    ops.accumulate(x, branch);
  } else {
    dense_mlp(m, ws, N, p.mlp, in2, x);
  }
}

}  // namespace

size_t paged_block_bytes(const Architecture& a, DType dtype, int block_size) {
  const RowWidths widths = row_widths(a);
  return size_t(a.layers) * block_size * size_t(widths.k + widths.v) * tensor::dtype_size(dtype);
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
  if (plan.blocks < 0 || plan.memory_fraction <= 0 || plan.memory_fraction > 1 || plan.block_size <= 0 ||
      plan.max_tokens <= 0 || plan.max_sequences <= 0 || plan.max_blocks <= 0)
    throw UsageError(str("paged KV cache: ", plan.blocks, " blocks of ", plan.block_size, " positions, ",
                         plan.max_tokens, " tokens and ", plan.max_sequences, " sequences per step: all must be > 0"));
  PagedWorkspace ws;
  ws.plan = plan;
  const RowWidths widths = row_widths(m.arch);
  ws.k_row = widths.k;
  ws.v_row = widths.v;
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

namespace {

// Every layer of a step whose tokens are each their sequence's only one, in one op where the
// backend has it (Ops::decode_layers_forward: dense GQA models); false when it did not run.
bool fused_layers(const ModelParts& m, PagedWorkspace& ws, const StepView& v, Buf x) {
  const Architecture& a = m.arch;
  if (!ws.plan.fused_decode || !v.one_token_each || a.mla() || a.n_routed > 0) return false;
  const Weights& w = m.weights;
  Ops::DecodeLayers d;
  for (int l = 0; l < a.layers; l++) {
    const LayerParams& p = m.layout.layers[l];
    if (p.moe || p.mlp.gate.bias != kNone || p.mlp.up.bias != kNone || p.mlp.gate.out != a.intermediate) return false;
    d.layers.push_back({w.w(p.input_norm, a.hidden), weight_of(w, p.q), weight_of(w, p.k), weight_of(w, p.v),
                        w.w(p.q.bias, p.q.out), w.w(p.k.bias, p.k.out), w.w(p.v.bias, p.v.out), weight_of(w, p.o),
                        w.w(p.o.bias, p.o.out), w.w(p.post_norm, a.hidden), weight_of(w, p.mlp.gate),
                        weight_of(w, p.mlp.up), weight_of(w, p.mlp.down), w.w(p.mlp.down.bias, p.mlp.down.out),
                        ws.k_pool[l], ws.v_pool[l]});
  }
  const int N = v.N;
  d.x = x;
  d.q = ws.q.slice(0, int64_t(N) * a.heads * a.head_dim);
  d.k = ws.k_new.slice(0, int64_t(N) * ws.k_row);
  d.v = ws.v_new.slice(0, int64_t(N) * ws.v_row);
  d.attention = ws.attention_out.slice(0, int64_t(N) * a.heads * a.head_dim);
  d.act = rows(ws.mlp.act, N, a.intermediate);
  d.positions = v.positions;
  d.slots = v.slots;
  d.sequence = v.sequence;
  d.block_tables = v.block_tables;
  d.rope = &m.rope;
  d.N = N;
  d.C = a.hidden;
  d.H = a.heads;
  d.KVH = a.kv_heads;
  d.D = a.head_dim;
  d.I = a.intermediate;
  d.block_size = ws.plan.block_size;
  d.table_width = v.table_width;
  d.eps = a.rms_eps;
  d.scale = a.softmax_scale();
  if (!m.ops.decode_layers_forward(d)) return false;
  ws.fused_decode_steps++;
  return true;
}

// The uploaded step through every layer; the logits of its logit rows stay in ws.logits ([R, V] f32).
Buf compute_step(const ModelParts& m, PagedWorkspace& ws, const StepView& v) {
  Ops& ops = m.ops;
  const Architecture& a = m.arch;
  const int N = v.N, C = a.hidden, V = a.vocab, R = v.R;
  const Buf x = rows(ws.x, N, C);
  ops.embedding_forward(x, v.tokens, m.weights.w(m.layout.embed, int64_t(V) * C), N, C);
  if (!fused_layers(m, ws, v, x))
    for (int l = 0; l < a.layers; l++) layer_forward(m, ws, v, l, x);
  Buf logits = ws.logits.slice(0, int64_t(R) * V);
  if (R == 0) return logits;
  // Only the wanted rows go through the final norm and the LM head (the embedding op gathers rows).
  Buf last = rows(ws.last_hidden, R, C), last_norm = rows(ws.last_norm, R, C);
  ops.embedding_forward(last, v.logit_rows, x, R, C);
  ops.rmsnorm_forward(last_norm, ws.last_rstd, last, m.weights.w(m.layout.final_norm, C), R, C, a.rms_eps);
  ops.lm_head_logits(logits, last_norm, m.weights.w(m.layout.lm_head.weight, int64_t(V) * C), R, C, V);
  return logits;
}

Buf run_step(const ModelParts& m, PagedWorkspace& ws, const PagedStep& step) {
  return compute_step(m, ws, upload_step(m.ops, ws, step, m.arch));
}

// The bucket a greedy step replays as a graph, or 0 (op by op): only decode steps (token n is
// sequence n's one new token and logit row n) of models without MLA or MoE, whose ops have no
// host round trip, on a backend that captures.
int graph_bucket(const ModelParts& m, const PagedWorkspace& ws, const PagedStep& step) {
  const PagedPlan& p = ws.plan;
  const int N = int(step.tokens.size());
  if (!p.cuda_graphs || m.ops.device() != tensor::Device::cuda || m.arch.mla() || m.arch.n_routed > 0 || N == 0 ||
      step.sequences != N || int(step.logit_rows.size()) != N || step.sequence.size() != size_t(N))
    return 0;
  for (int n = 0; n < N; n++)
    if (step.sequence[n] != n || step.logit_rows[n] != n) return 0;
  const int most = std::min({p.max_tokens, p.max_sequences, logit_rows(p)});
  int bucket = 1;
  while (bucket < N) bucket *= 2;
  bucket = std::min(bucket, most);
  if (bucket < N) return 0;
  const auto it = ws.decode_graphs.find(bucket);
  return it != ws.decode_graphs.end() && !it->second ? 0 : bucket;  // a failed capture stays eager
}

// The decode step padded to `bucket` sequences: each padding token is token 0 at position 0 of
// its own sequence, whose block table is all spare block, and writes to the spare block's first slot.
PagedStep pad_decode_step(const PagedWorkspace& ws, const PagedStep& step, int bucket) {
  PagedStep padded = step;
  const int spare = ws.plan.blocks;
  // Every replay reads tables of the plan's full width: widen the step's rows (the scheduler sends
  // only as many columns as its longest table), the new columns pointing at the spare block.
  const int full = ws.plan.max_blocks, width = step.table_width > 0 ? step.table_width : full;
  padded.block_tables.assign(size_t(bucket) * full, spare);
  for (int s = 0; s < step.sequences; s++)
    std::copy_n(step.block_tables.begin() + int64_t(s) * width, width, padded.block_tables.begin() + int64_t(s) * full);
  padded.table_width = full;
  for (int n = step.sequences; n < bucket; n++) {
    padded.tokens.push_back(0);
    padded.positions.push_back(0);
    padded.sequence.push_back(n);
    padded.slots.push_back(spare * ws.plan.block_size);
    padded.logit_rows.push_back(n);
  }
  padded.sequences = bucket;
  return padded;
}

// A greedy decode step through the bucket's graph: upload the padded step, replay (capture at the
// bucket's first step, after running it op by op: that run is this step's answer and warms the
// scratch buffers and matmul plans that the capture records), read the first S ids.
std::vector<int32_t> greedy_by_graph(const ModelParts& m, PagedWorkspace& ws, const PagedStep& step, int bucket) {
  StepView v = upload_step(m.ops, ws, pad_decode_step(ws, step, bucket), m.arch);
  // Every replay must cover any sequence length: the attention shape takes the longest.
  v.max_keys = ws.plan.max_blocks * ws.plan.block_size;
  for (AttentionRun& run : v.runs) run.max_keys = v.max_keys;
  const Buf ids = ws.next_ids.slice(0, bucket);
  auto record = [&] {
    const Buf logits = compute_step(m, ws, v);
    m.ops.sample_rows(ids, logits, Buf{}, Buf{}, bucket, m.arch.vocab);  // greedy
  };
  std::unique_ptr<tensor::OpGraph>& graph = ws.decode_graphs[bucket];
  if (!graph || !graph->replay()) {
    record();
    graph = m.ops.capture(record);
    if (!graph) log_warn("paged forward: the decode step of ", bucket, " sequences could not be captured as a CUDA "
                         "graph; it runs op by op");
  }
  std::vector<int32_t> host(static_cast<size_t>(bucket));
  m.ops.copy_to_host(host.data(), ids);
  host.resize(size_t(step.sequences));
  return host;
}

}  // namespace

std::vector<float> paged_forward(const ModelParts& m, PagedWorkspace& ws, const PagedStep& step) {
  const Buf logits = run_step(m, ws, step);
  std::vector<float> host(size_t(logits.numel));
  if (!host.empty()) m.ops.copy_to_host(host.data(), logits);
  return host;
}

std::vector<int32_t> paged_forward_tokens(const ModelParts& m, PagedWorkspace& ws, const PagedStep& step) {
  const int R = int(step.logit_rows.size());
  const bool sampled = !step.temperatures.empty();
  if (sampled && (step.temperatures.size() != size_t(R) || step.noise_seeds.size() != size_t(R)))
    throw InternalError(str("paged forward: ", step.temperatures.size(), " temperatures and ", step.noise_seeds.size(),
                            " seeds for ", R, " logit rows"));
  if (!sampled)
    if (const int bucket = graph_bucket(m, ws, step)) return greedy_by_graph(m, ws, step, bucket);
  const Buf logits = run_step(m, ws, step);
  std::vector<int32_t> ids(static_cast<size_t>(R));
  if (R == 0) return ids;
  Buf temperatures, seeds;
  if (sampled) {
    temperatures = ws.temperatures.slice(0, R);
    seeds = ws.noise_seeds.slice(0, R);
    m.ops.copy_from_host(temperatures, step.temperatures.data());
    m.ops.copy_from_host(seeds, step.noise_seeds.data());
  }
  const Buf device_ids = ws.next_ids.slice(0, R);
  m.ops.sample_rows(device_ids, logits, temperatures, seeds, R, m.arch.vocab);
  m.ops.copy_to_host(ids.data(), device_ids);
  return ids;
}

}  // namespace dsk::model
