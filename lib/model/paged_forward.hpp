// Serving's forward pass: one step of a ragged batch over a paged KV cache, vLLM's model-runner
// shape. Each step carries several sequences, each with its own new tokens (a prefill chunk or one
// decode token) at its own positions; the linear layers run on all of the step's tokens at once,
// the new keys and values go to their slots of a per-layer pool, and attention reads each
// sequence's keys through its block table (lib/serve/paged_kv.hpp decides the blocks).
//
//   PagedWorkspace ws = model.new_paged_workspace(plan);  // the pool and the step's activations
//   std::vector<float> logits = model.forward_paged(ws, step);  // [step.logit_rows, V] f32, host
//   std::vector<int32_t> ids = model.forward_paged_tokens(ws, step);  // or only the next tokens
//
// The pool holds, per layer and slot (slot = block * block_size + offset):
//   llama, qwen2: keys [kv_heads * head_dim] and values [kv_heads * head_dim], in two pools;
//   deepseek_v3: MLA's compressed row [kv_lora_rank latent (after kv_a_layernorm) | qk_rope_dim
//     RoPE'd shared key] in one pool: kv_lora_rank + rope_dim values instead of
//     heads * (qk_head_dim + v_head_dim), 576 against 40960 for V3.
// MLA attends in the absorbed form (DeepSeek-V2 section 2.1.3): each head's query nope part is
// multiplied by that head's key block of kv_b (W_UK^T q, precomputed transposed at planning) so it
// scores directly against the cached latents; the rope parts score against the shared rope key;
// (the heads' products are grouped matmuls over head-major rows, a few launches for any head count);
// the probabilities average the latents, and each head's value block of kv_b (W_UV) maps the
// result to the head's output. The scores and outputs equal the expanded form's (q.k =
// (W_UK^T q_nope).latent + q_rope.k_rope) without ever expanding a cached block, so a decode step
// reads 576 values per cached position instead of heads x 320; it then runs as MQA (one K/V head
// of dim kv_lora_rank + rope_dim, values = the rows' first kv_lora_rank columns) through the same
// paged attention op as llama. On CUDA a prompt's first chunk (positions 0..T-1) attends through
// the flash attention kernel instead, which reads each key tile once for many queries.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "model/architecture.hpp"
#include "model/layers.hpp"
#include "tensor/arena.hpp"

namespace dsk::model {

struct ParameterLayout;

struct PagedPlan {
  int blocks = 0;         // KV blocks in the pool; 0: memory_fraction of what is free once the step
                          // activations are planned, at most max_blocks * max_sequences
  double memory_fraction = 0.9;
  int block_size = 16;    // positions per block
  int max_tokens = 0;     // new tokens of one step at most (prefill chunks + decode tokens)
  int max_sequences = 0;  // sequences of one step at most (and logit rows)
  int max_blocks = 0;     // blocks of one sequence at most: the width of a block table
  int max_logit_rows = 0; // logit rows of one step at most; 0: max_sequences (one per sequence)
  // Greedy decode steps (one token per sequence) of llama/qwen2 models on CUDA replay a CUDA graph
  // per batch bucket (1, 2, 4, ..): the step is padded to its bucket with tokens that write to a
  // spare block of the pool; a step's block tables, positions and slots are the graph's inputs.
  // Prefill chunks, mixed steps and steps that want logits run op by op.
  bool cuda_graphs = false;
  // Steps whose tokens are each their sequence's only one (decode steps) run all the layers of a
  // dense GQA model in one persistent kernel where the backend has it (Ops::decode_layers_forward).
  // Off by default: on the H200 it is still slower than the ops (kernels/cuda/decode_layers.cuh).
  bool fused_decode = false;
};

// Bytes one block of block_size positions takes over all layers, in `dtype` (sizes a pool).
size_t paged_block_bytes(const Architecture& a, tensor::DType dtype, int block_size);

// One step. N = tokens.size(); token n belongs to sequence[n] (a row of block_tables), sits at
// positions[n] and writes its key/value to slot slots[n]; the keys of positions 0..positions[n]
// of its sequence must be in the pool once this step's writes are done (earlier steps' or this
// step's). block_tables: [sequences, table_width] row-major, unused entries any valid block.
struct PagedStep {
  std::vector<int32_t> tokens, positions, sequence, slots;
  std::vector<int32_t> block_tables;
  int sequences = 0;
  int table_width = 0;  // blocks per table row: the step's longest table is enough; 0: plan.max_blocks
  std::vector<int32_t> logit_rows;  // the tokens whose next-token logits are wanted, in output order
  // For forward_paged_tokens, per logit row (both empty: all greedy): the temperature (<= 0:
  // greedy) and the seed of the row's sampling noise (kernels/cpu/sampling_noise.hpp).
  std::vector<float> temperatures;
  std::vector<uint64_t> noise_seeds;
};

// The pool and the step's activations, planned once for a PagedPlan (nothing is allocated per step).
struct PagedWorkspace {
  PagedPlan plan;
  std::unique_ptr<tensor::Arena> pool_arena, step_arena;
  std::vector<Buf> k_pool, v_pool;  // per layer [blocks * block_size, row]; MLA: v_pool[l] == k_pool[l]
  int k_row = 0, v_row = 0;
  std::vector<Buf> absorbed_keys;  // MLA, per layer: [heads, kv_lora_rank, qk_head_dim], kv_b's key blocks
                                   // transposed, zero in the rope columns

  Buf meta;  // i32: tokens, positions, sequence, slots [max_tokens each], logit rows, block tables
  Buf x, norm1, rstd1, norm2, rstd2, branch_out, attention_out;  // x: the residual stream, updated in place
  Buf q, k_new, v_new;                                   // GQA
  Buf q_a, q_a_norm, q_a_rstd, kv_a, kv_latent, kv_norm, kv_rstd, kv_row;  // MLA projections
  Buf q_absorbed, latent_out;                                  // MLA absorbed attention [N*H, ..]
  Buf q_by_head, latent_by_head, q_latent, value_by_head;       // its per-head products, head-major
  MlpActs mlp;
  MoeActs moe;
  Buf expert_load;  // i64 [E]: the routing op counts into it; serving never reads it
  Buf last_hidden, last_norm, last_rstd, logits;  // the logit rows: [max_logit_rows, C] act, f32 [.., V]
  Buf next_ids, temperatures, noise_seeds;        // [max_logit_rows]: i32, f32, i64
  // plan.cuda_graphs: the decode step of each bucket, captured at its first step; null when the
  // capture failed (that bucket then runs op by op).
  std::map<int, std::unique_ptr<tensor::OpGraph>> decode_graphs;
  // Steps whose layers ran as one op (plan.fused_decode), counted where they ran op by op first
  // (a graph replay repeats its captured step without counting).
  int64_t fused_decode_steps = 0;
};

// What the paged forward reads of a Model (model.cpp hands them over).
struct ModelParts {
  tensor::Ops& ops;
  const Architecture& arch;
  const ParameterLayout& layout;
  const Weights& weights;
  const tensor::RopeTables& rope;
};

PagedWorkspace make_paged_workspace(const ModelParts& model, const PagedPlan& plan);
std::vector<float> paged_forward(const ModelParts& model, PagedWorkspace& workspace, const PagedStep& step);
// The same step, but only each logit row's next token (greedy, or sampled with step.temperatures
// and step.noise_seeds on the device: tensor/ops.hpp sample_rows) leaves the device.
std::vector<int32_t> paged_forward_tokens(const ModelParts& model, PagedWorkspace& workspace, const PagedStep& step);

}  // namespace dsk::model
