#include "model/parameters.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace dsk::model {

namespace {

class LayoutBuilder {
 public:
  explicit LayoutBuilder(ParameterLayout& layout) : layout_(layout) {}

  size_t tensor(const std::string& name, std::vector<int64_t> shape, bool trainable = true) {
    ParamView view;
    view.name = name;
    view.numel = 1;
    for (int64_t d : shape) view.numel *= (size_t)d;
    view.shape = std::move(shape);
    view.offset = layout_.total;
    view.trainable = trainable;
    layout_.total += view.numel;
    layout_.views.push_back(std::move(view));
    return layout_.views.back().offset;
  }

  Linear linear(const std::string& name, int in, int out, bool bias) {
    Linear l;
    l.in = in;
    l.out = out;
    l.weight = tensor(name + ".weight", {out, in});
    if (bias) l.bias = tensor(name + ".bias", {out});
    return l;
  }

  MlpParams mlp(const std::string& name, int hidden, int inner) {
    MlpParams m;
    m.gate = linear(name + ".gate_proj", hidden, inner, false);
    m.up = linear(name + ".up_proj", hidden, inner, false);
    m.down = linear(name + ".down_proj", inner, hidden, false);
    return m;
  }

 private:
  ParameterLayout& layout_;
};

void attention_layout(LayoutBuilder& b, LayerParams& p, const Architecture& a, const std::string& prefix) {
  int C = a.hidden;
  if (!a.mla()) {
    p.q = b.linear(prefix + "q_proj", C, a.heads * a.head_dim, a.qkv_bias);
    p.k = b.linear(prefix + "k_proj", C, a.kv_heads * a.head_dim, a.qkv_bias);
    p.v = b.linear(prefix + "v_proj", C, a.kv_heads * a.head_dim, a.qkv_bias);
    p.o = b.linear(prefix + "o_proj", a.heads * a.head_dim, C, a.o_bias);
    return;
  }
  int qk = a.qk_head_dim();
  if (a.q_lora_rank > 0) {
    p.q_a = b.linear(prefix + "q_a_proj", C, a.q_lora_rank, a.o_bias);
    p.q_a_norm = b.tensor(prefix + "q_a_layernorm.weight", {a.q_lora_rank});
    p.q_b = b.linear(prefix + "q_b_proj", a.q_lora_rank, a.heads * qk, false);
  } else {
    p.q = b.linear(prefix + "q_proj", C, a.heads * qk, false);
  }
  p.kv_a = b.linear(prefix + "kv_a_proj_with_mqa", C, a.kv_lora_rank + a.qk_rope_dim, a.o_bias);
  p.kv_a_norm = b.tensor(prefix + "kv_a_layernorm.weight", {a.kv_lora_rank});
  p.kv_b = b.linear(prefix + "kv_b_proj", a.kv_lora_rank, a.heads * (a.qk_nope_dim + a.v_head_dim), false);
  p.o = b.linear(prefix + "o_proj", a.heads * a.v_head_dim, C, a.o_bias);
}

}  // namespace

ParameterLayout layout_parameters(const Architecture& a) {
  a.validate();
  ParameterLayout layout;
  LayoutBuilder b(layout);
  layout.embed = b.tensor("model.embed_tokens.weight", {a.vocab, a.hidden});
  for (int l = 0; l < a.layers; l++) {
    std::string prefix = str("model.layers.", l, ".");
    LayerParams p;
    p.input_norm = b.tensor(prefix + "input_layernorm.weight", {a.hidden});
    attention_layout(b, p, a, prefix + "self_attn.");
    p.post_norm = b.tensor(prefix + "post_attention_layernorm.weight", {a.hidden});
    p.moe = a.is_moe_layer(l);
    if (!p.moe) {
      p.mlp = b.mlp(prefix + "mlp", a.hidden, a.intermediate);
    } else {
      p.router = b.linear(prefix + "mlp.gate", a.hidden, a.n_routed, false);
      p.router_bias = b.tensor(prefix + "mlp.gate.e_score_correction_bias", {a.n_routed}, false);
      for (int e = 0; e < a.n_routed; e++)
        p.experts.push_back(b.mlp(str(prefix, "mlp.experts.", e), a.hidden, a.moe_intermediate));
      if (a.n_shared > 0) p.shared = b.mlp(prefix + "mlp.shared_experts", a.hidden, a.moe_intermediate * a.n_shared);
    }
    layout.layers.push_back(std::move(p));
  }
  layout.final_norm = b.tensor("model.norm.weight", {a.hidden});
  layout.lm_head.in = a.hidden;
  layout.lm_head.out = a.vocab;
  layout.lm_head.weight = a.tied_embeddings ? layout.embed : b.tensor("lm_head.weight", {a.vocab, a.hidden});
  return layout;
}

void check_spans(std::span<const FlatSpan> dropped, size_t total) {
  size_t end = 0;
  for (const FlatSpan& span : dropped) {
    if (span.offset < end || span.offset + span.numel > total)
      throw InternalError("dropped flat ranges out of order or past the buffer");
    end = span.offset + span.numel;
  }
}

size_t total_numel(std::span<const FlatSpan> spans) {
  size_t total = 0;
  for (const FlatSpan& span : spans) total += span.numel;
  return total;
}

bool is_dropped(std::span<const FlatSpan> dropped, size_t offset, size_t numel) {
  for (const FlatSpan& span : dropped) {
    if (span.offset + span.numel <= offset) continue;
    if (span.offset >= offset + numel) return false;
    if (span.offset <= offset && offset + numel <= span.offset + span.numel) return true;
    throw InternalError(str("flat elements [", offset, ", ", offset + numel, ") straddle the dropped [", span.offset,
                            ", ", span.offset + span.numel, ")"));
  }
  return false;
}

std::vector<FlatSpan> other_ranks_experts(const ParameterLayout& layout, int rank, int ranks) {
  std::vector<FlatSpan> spans;
  for (const LayerParams& layer : layout.layers) {
    const size_t per_rank = layer.experts.size() / size_t(ranks);
    for (size_t e = 0; e < layer.experts.size(); e++) {
      if (e / per_rank == size_t(rank)) continue;
      // An expert's gate, up and down weights follow each other in the layout.
      const Linear& down = layer.experts[e].down;
      const size_t begin = layer.experts[e].gate.weight, end = down.weight + size_t(down.in) * size_t(down.out);
      if (!spans.empty() && spans.back().offset + spans.back().numel == begin)
        spans.back().numel += end - begin;
      else
        spans.push_back({begin, end - begin});
    }
  }
  return spans;
}

std::vector<float> without(std::span<const float> values, std::span<const FlatSpan> dropped) {
  std::vector<float> out;
  out.reserve(values.size() - total_numel(dropped));
  size_t from = 0;
  for (const FlatSpan& span : dropped) {
    out.insert(out.end(), values.begin() + int64_t(from), values.begin() + int64_t(span.offset));
    from = span.offset + span.numel;
  }
  out.insert(out.end(), values.begin() + int64_t(from), values.end());
  return out;
}

std::vector<float> with_zeros(const std::vector<float>& held, std::span<const FlatSpan> dropped, size_t total) {
  if (dropped.empty()) return held;
  std::vector<float> out(total, 0.0f);
  size_t from = 0, at = 0;  // in out, in held
  auto take_until = [&](size_t end) {
    std::copy_n(held.begin() + int64_t(at), end - from, out.begin() + int64_t(from));
    at += end - from;
  };
  for (const FlatSpan& span : dropped) {
    take_until(span.offset);
    from = span.offset + span.numel;
  }
  take_until(total);
  return out;
}

size_t offset_without(std::span<const FlatSpan> dropped, size_t offset, size_t numel) {
  size_t before = 0;
  for (const FlatSpan& span : dropped) {
    if (span.offset + span.numel <= offset) {
      before += span.numel;
    } else if (span.offset < offset + std::max<size_t>(numel, 1) && (numel > 0 || span.offset < offset)) {
      throw InternalError(str("flat elements [", offset, ", ", offset + numel, ") reach into the dropped [",
                              span.offset, ", ", span.offset + span.numel, ")"));
    } else {
      break;
    }
  }
  return offset - before;
}

}  // namespace dsk::model
