// RoPE frequencies with HF's scalings (transformers' modeling_rope_utils): inv_freq[i] =
// theta^(-2i/dim), then linear divides by factor, llama3 divides low frequencies by factor and
// blends the middle band, yarn blends interpolated and extrapolated frequencies with a linear ramp
// and scales cos/sin by its attention factor. fp32 like HF, so the angles match bit for bit
// as far as the float pow allows.
#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "io/model_config.hpp"
#include "model/architecture.hpp"

namespace dsk::model {

namespace {

std::vector<float> base_inv_freq(double theta, int dim) {
  std::vector<float> inv(dim / 2);
  for (int i = 0; i < dim / 2; i++) inv[i] = (float)(1.0 / std::pow(theta, (double)(2 * i) / dim));
  return inv;
}

void llama3(std::vector<float>& inv, const RopeScaling& s) {
  const double pi = 3.14159265358979323846;
  double old_len = s.original_max_position_embeddings;
  double low_wavelen = old_len / s.low_freq_factor;
  double high_wavelen = old_len / s.high_freq_factor;
  for (float& f : inv) {
    double wavelen = 2 * pi / f;
    if (wavelen > low_wavelen) {
      f = (float)(f / s.factor);
    } else if (wavelen >= high_wavelen) {  // the middle band: blend scaled and unscaled
      double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = (float)((1 - smooth) * f / s.factor + smooth * f);
    }
  }
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

float yarn(std::vector<float>& inv, const RopeScaling& s, int dim, double max_positions) {
  const double pi = 3.14159265358979323846;
  double factor = s.factor;
  double original = s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings : max_positions;
  double attention_factor = s.attention_factor;
  if (attention_factor <= 0)
    attention_factor = (s.mscale != 0 && s.mscale_all_dim != 0)
                           ? yarn_mscale(factor, s.mscale) / yarn_mscale(factor, s.mscale_all_dim)
                           : yarn_mscale(factor, 1.0);
  auto correction_dim = [&](double rotations) {
    return dim * std::log(original / (rotations * 2 * pi)) / (2 * std::log(s.theta));
  };
  double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
  if (s.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, (double)(dim - 1));
  if (low == high) high += 0.001;
  for (int i = 0; i < dim / 2; i++) {
    float extrapolation = inv[i];
    float interpolation = (float)(inv[i] / factor);
    float ramp = std::clamp((float)((i - low) / (high - low)), 0.0f, 1.0f);
    float extrapolation_weight = 1.0f - ramp;
    inv[i] = interpolation * (1 - extrapolation_weight) + extrapolation * extrapolation_weight;
  }
  return (float)attention_factor;
}

}  // namespace

kernels::cpu::Rope compute_rope(const RopeScaling& s, int rot_dim, double max_position_embeddings) {
  kernels::cpu::Rope rope;
  rope.inv_freq = base_inv_freq(s.theta, rot_dim);
  if (s.type == "default") {
  } else if (s.type == "linear") {
    for (float& f : rope.inv_freq) f = (float)(f / s.factor);
  } else if (s.type == "llama3") {
    if (s.original_max_position_embeddings <= 0)
      throw UsageError("rope_parameters: llama3 scaling needs original_max_position_embeddings");
    llama3(rope.inv_freq, s);
  } else if (s.type == "yarn") {
    rope.attention_factor = yarn(rope.inv_freq, s, rot_dim, max_position_embeddings);
  } else {
    throw UsageError(str("rope_parameters: rope_type \"", s.type,
                         "\" is not supported (expected default, linear, llama3 or yarn)"));
  }
  return rope;
}

float Architecture::softmax_scale() const {
  double scale = 1.0 / std::sqrt((double)qk_head_dim());
  if (mla() && rope_scaling.type != "default" && rope_scaling.mscale_all_dim != 0) {
    double m = yarn_mscale(rope_scaling.factor, rope_scaling.mscale_all_dim);
    scale *= m * m;
  }
  return (float)scale;
}

void Architecture::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok) throw UsageError("model config: " + what);
  };
  require(vocab > 0 && hidden > 0 && layers > 0, "vocab_size, hidden_size and num_hidden_layers must be positive");
  require(heads > 0, "num_attention_heads must be positive");
  require(std::isfinite(rms_eps) && rms_eps > 0, "rms_norm_eps must be positive");
  require(max_position_embeddings > 0, "max_position_embeddings must be positive");
  // The model builds every expert before a weight is read: bound them (io/model_config.hpp).
  const int64_t moe_layers = mla() && n_routed > 0 ? std::max(0, layers - first_k_dense) : 0;
  require(int64_t(n_routed) * moe_layers <= io::kMaxRoutedExpertsInModel,
          str("n_routed_experts (", n_routed, ") times the ", moe_layers, " MoE layers must be at most ",
              io::kMaxRoutedExpertsInModel));
  if (mla()) {
    require(kv_lora_rank > 0 && qk_rope_dim > 0 && qk_rope_dim % 2 == 0 && v_head_dim > 0,
            "deepseek_v3 needs kv_lora_rank, an even qk_rope_head_dim and v_head_dim > 0");
    if (n_routed > 0) {
      require(top_k > 0 && top_k <= n_routed, "num_experts_per_tok must be in [1, n_routed_experts]");
      require(n_group > 0 && n_routed % n_group == 0, "n_routed_experts must be a multiple of n_group");
      require(topk_group > 0 && topk_group <= n_group, "topk_group must be in [1, n_group]");
      require(top_k <= topk_group * (n_routed / n_group), "num_experts_per_tok exceeds the experts of topk_group groups");
      require(moe_intermediate > 0, "moe_intermediate_size must be positive");
    }
  } else {
    require(kv_heads > 0 && heads % kv_heads == 0, "num_attention_heads must be a multiple of num_key_value_heads");
    require(head_dim > 0 && head_dim % 2 == 0, "head_dim must be positive and even");
  }
  require(intermediate > 0 || (mla() && first_k_dense == 0), "intermediate_size must be positive");
}

}  // namespace dsk::model
