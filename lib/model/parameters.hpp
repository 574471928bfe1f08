// Where each HF tensor lives in the flat parameter buffer. layout_parameters() walks the
// architecture in HF's order and gives every tensor its name, shape and offset; the structs below
// hold those offsets so the layer code reads `params + layer.q.weight` instead of names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "model/architecture.hpp"
#include "model/model.hpp"

namespace dsk::model {

constexpr size_t kNone = ~size_t(0);

struct Linear {  // y = x @ weight^T + bias, weight [out, in]
  size_t weight = kNone, bias = kNone;
  int in = 0, out = 0;
};

struct MlpParams {  // SwiGLU: down(silu(gate(x)) * up(x))
  Linear gate, up, down;
};

struct LayerParams {
  size_t input_norm = kNone, post_norm = kNone;
  Linear q, k, v, o;  // GQA uses all four; MLA uses q (no q_lora) and o
  Linear q_a, q_b, kv_a, kv_b;
  size_t q_a_norm = kNone, kv_a_norm = kNone;
  bool moe = false;
  MlpParams mlp;  // dense layers
  Linear router;  // MoE: gate.weight [E, C]
  size_t router_bias = kNone;  // e_score_correction_bias [E], not trained by gradients
  std::vector<MlpParams> experts;
  MlpParams shared;
};

struct ParameterLayout {
  size_t embed = kNone, final_norm = kNone;
  Linear lm_head;  // weight == embed when the embeddings are tied
  std::vector<LayerParams> layers;
  std::vector<ParamView> views;
  size_t total = 0;  // floats
};

ParameterLayout layout_parameters(const Architecture& arch);

// Where flat element `offset` (and the `numel` after it) lands once the `dropped` ranges
// (ascending, disjoint) are cut out of the buffer and the rest closed up; InternalError when
// [offset, offset + numel) reaches into one (numel 0: when offset lies inside one).
size_t offset_without(std::span<const FlatSpan> dropped, size_t offset, size_t numel = 0);
// InternalError unless `dropped` is ascending, disjoint and within [0, total).
void check_spans(std::span<const FlatSpan> dropped, size_t total);
size_t total_numel(std::span<const FlatSpan> spans);
// Whether the tensor [offset, offset + numel) lies inside a dropped range (false when outside
// all); InternalError when it straddles one's edge.
bool is_dropped(std::span<const FlatSpan> dropped, size_t offset, size_t numel);
// The routed experts of every MoE layer outside [rank * E / ranks, (rank + 1) * E / ranks), as
// ascending, merged ranges of the flat layout (expert parallelism: another rank's share).
std::vector<FlatSpan> other_ranks_experts(const ParameterLayout& layout, int rank, int ranks);
// `values` (all `total` elements) less the dropped ranges, and back with 0 in them.
std::vector<float> without(std::span<const float> values, std::span<const FlatSpan> dropped);
std::vector<float> with_zeros(const std::vector<float>& held, std::span<const FlatSpan> dropped, size_t total);

}  // namespace dsk::model
