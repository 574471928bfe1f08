#include "io/model_config.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/json.hpp"

namespace dsk::io {

namespace {

using json = nlohmann::json;

// Reads typed fields of one JSON object, naming the file and field when a type is wrong.
struct Fields {
  const json& object;
  const std::string& origin;

  bool has(const char* key) const { return object.contains(key) && !object.at(key).is_null(); }

  [[noreturn]] void wrong(const char* key, const char* expected) const {
    throw DataError(str(origin, ": field '", key, "' must be ", expected, " (got ", json_excerpt(object.at(key)), ")"));
  }

  void read(const char* key, int64_t& out) const {
    if (!has(key)) return;
    if (!object.at(key).is_number_integer() ||
        (object.at(key).is_number_unsigned() && object.at(key).get<uint64_t>() > uint64_t(INT64_MAX)))
      wrong(key, "an integer");
    out = object.at(key).get<int64_t>();
  }
  void read(const char* key, std::optional<int64_t>& out) const {
    if (!object.contains(key)) return;
    if (object.at(key).is_null()) {
      out.reset();
      return;
    }
    int64_t value = 0;
    read(key, value);
    out = value;
  }
  void read(const char* key, double& out) const {
    if (!has(key)) return;
    if (!object.at(key).is_number()) wrong(key, "a number");
    out = object.at(key).get<double>();
  }
  void read(const char* key, bool& out) const {
    if (!has(key)) return;
    if (!object.at(key).is_boolean()) wrong(key, "true or false");
    out = object.at(key).get<bool>();
  }
  void read(const char* key, std::string& out) const {
    if (!has(key)) return;
    if (!object.at(key).is_string()) wrong(key, "a string");
    out = object.at(key).get<std::string>();
  }
};

// transformers' defaults per model_type (configuration_llama.py, configuration_qwen2.py,
// configuration_deepseek_v3.py).
ModelConfig defaults_for(const std::string& model_type, const std::string& origin) {
  ModelConfig c;
  c.model_type = model_type;
  if (model_type == "llama") {
    c.vocab_size = 32000, c.hidden_size = 4096, c.intermediate_size = 11008, c.num_hidden_layers = 32;
    c.num_attention_heads = 32, c.max_position_embeddings = 2048, c.bos_token_id = 1, c.eos_token_id = 2;
  } else if (model_type == "qwen2") {
    c.vocab_size = 151936, c.hidden_size = 4096, c.intermediate_size = 22016, c.num_hidden_layers = 32;
    c.num_attention_heads = 32, c.num_key_value_heads = 32, c.max_position_embeddings = 32768;
    c.qkv_bias = true;
  } else if (model_type == "deepseek_v3") {
    c.vocab_size = 129280, c.hidden_size = 7168, c.intermediate_size = 18432, c.num_hidden_layers = 61;
    c.num_attention_heads = 128, c.num_key_value_heads = 128, c.max_position_embeddings = 4096;
    c.bos_token_id = 0, c.eos_token_id = 1;
    c.q_lora_rank = 1536, c.kv_lora_rank = 512, c.qk_nope_head_dim = 128, c.qk_rope_head_dim = 64;
    c.v_head_dim = 128, c.n_routed_experts = 256, c.n_shared_experts = 1, c.num_experts_per_tok = 8;
    c.moe_intermediate_size = 2048, c.n_group = 8, c.topk_group = 4, c.routed_scaling_factor = 2.5;
    c.first_k_dense_replace = 3, c.num_nextn_predict_layers = 1;
  } else {
    throw DataError(str(origin, ": model_type '", model_type, "' is not supported (llama, qwen2, deepseek_v3)"));
  }
  return c;
}

void read_rope(const json& object, const std::string& origin, ModelConfig& c) {
  Fields rope{object, origin};
  rope.read("rope_theta", c.rope_theta);  // transformers 5 keeps it in rope_parameters
  if (object.contains("rope_type")) rope.read("rope_type", c.rope_scaling.type);
  else rope.read("type", c.rope_scaling.type);
  auto& s = c.rope_scaling;
  rope.read("factor", s.factor);
  rope.read("low_freq_factor", s.low_freq_factor);
  rope.read("high_freq_factor", s.high_freq_factor);
  rope.read("original_max_position_embeddings", s.original_max_position_embeddings);
  rope.read("beta_fast", s.beta_fast);
  rope.read("beta_slow", s.beta_slow);
  rope.read("mscale", s.mscale);
  rope.read("mscale_all_dim", s.mscale_all_dim);
  if (s.type != "default" && s.type != "linear" && s.type != "llama3" && s.type != "yarn")
    throw DataError(str(origin, ": rope type '", s.type, "' is not supported (default, linear, llama3, yarn)"));
}

void require_positive(const std::string& origin, const char* field, int64_t value) {
  if (value <= 0) throw DataError(str(origin, ": field '", field, "' must be positive (got ", value, ")"));
}

void require_size(const std::string& origin, const char* field, int64_t value, int64_t maximum) {
  require_positive(origin, field, value);
  if (value > maximum) throw DataError(str(origin, ": field '", field, "' must be at most ", maximum, " (got ", value, ")"));
}

void require(bool ok, const std::string& origin, const char* field, const std::string& expectation) {
  if (!ok) throw DataError(str(origin, ": field '", field, "': ", expectation));
}

}  // namespace

ModelConfig parse_model_config(const std::string& json_text, const std::string& origin) {
  json object = parse_json(json_text, origin);
  if (!object.is_object()) throw DataError(str(origin, ": config is not a JSON object"));
  if (!object.contains("model_type") || !object["model_type"].is_string())
    throw DataError(str(origin, ": field 'model_type' (a string) is missing"));
  ModelConfig c = defaults_for(object["model_type"].get<std::string>(), origin);
  Fields f{object, origin};
  c.num_key_value_heads = 0;
  f.read("vocab_size", c.vocab_size);
  f.read("hidden_size", c.hidden_size);
  f.read("intermediate_size", c.intermediate_size);
  f.read("num_hidden_layers", c.num_hidden_layers);
  f.read("num_attention_heads", c.num_attention_heads);
  f.read("num_key_value_heads", c.num_key_value_heads);
  if (c.num_key_value_heads == 0) c.num_key_value_heads = c.num_attention_heads;
  f.read("head_dim", c.head_dim);
  f.read("rms_norm_eps", c.rms_norm_eps);
  f.read("rope_theta", c.rope_theta);
  f.read("max_position_embeddings", c.max_position_embeddings);
  f.read("tie_word_embeddings", c.tie_word_embeddings);
  f.read("attention_bias", c.attention_bias);
  f.read("bos_token_id", c.bos_token_id);
  f.read("eos_token_id", c.eos_token_id);
  f.read("torch_dtype", c.torch_dtype);
  f.read("dtype", c.torch_dtype);  // transformers 5's name
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!f.has(key)) continue;
    if (!object[key].is_object()) f.wrong(key, "an object");
    read_rope(object[key], origin, c);
  }
  if (c.model_type == "deepseek_v3") {
    f.read("q_lora_rank", c.q_lora_rank);
    f.read("kv_lora_rank", c.kv_lora_rank);
    f.read("qk_nope_head_dim", c.qk_nope_head_dim);
    f.read("qk_rope_head_dim", c.qk_rope_head_dim);
    f.read("v_head_dim", c.v_head_dim);
    f.read("n_routed_experts", c.n_routed_experts);
    f.read("n_shared_experts", c.n_shared_experts);
    f.read("num_experts_per_tok", c.num_experts_per_tok);
    f.read("moe_intermediate_size", c.moe_intermediate_size);
    f.read("n_group", c.n_group);
    f.read("topk_group", c.topk_group);
    f.read("norm_topk_prob", c.norm_topk_prob);
    f.read("routed_scaling_factor", c.routed_scaling_factor);
    f.read("scoring_func", c.scoring_func);
    f.read("topk_method", c.topk_method);
    f.read("first_k_dense_replace", c.first_k_dense_replace);
    f.read("moe_layer_freq", c.moe_layer_freq);
    f.read("rope_interleave", c.rope_interleave);
    f.read("num_nextn_predict_layers", c.num_nextn_predict_layers);
    if (c.head_dim == 0) c.head_dim = c.qk_rope_head_dim;  // as DeepseekV3Config sets it
  }
  if (c.head_dim == 0 && c.num_attention_heads > 0) {
    require(c.hidden_size % c.num_attention_heads == 0, origin, "num_attention_heads",
            "must divide hidden_size when head_dim is not given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  validate_model_config(c, origin);
  return c;
}

ModelConfig read_model_config(const std::filesystem::path& path) {
  return parse_model_config(read_file(path), path.string());
}

void validate_model_config(const ModelConfig& c, const std::string& origin) {
  require_size(origin, "vocab_size", c.vocab_size, kMaxVocabSize);
  require_size(origin, "hidden_size", c.hidden_size, kMaxWidth);
  require_size(origin, "intermediate_size", c.intermediate_size, kMaxWidth);
  require_size(origin, "num_hidden_layers", c.num_hidden_layers, kMaxLayers);
  require_size(origin, "num_attention_heads", c.num_attention_heads, kMaxHeads);
  require_size(origin, "num_key_value_heads", c.num_key_value_heads, kMaxHeads);
  require_size(origin, "head_dim", c.head_dim, kMaxWidth);
  require_size(origin, "max_position_embeddings", c.max_position_embeddings, kMaxPositionEmbeddings);
  require(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0, origin, "rms_norm_eps", "must be positive");
  require(std::isfinite(c.rope_theta) && c.rope_theta > 0, origin, "rope_theta", "must be positive");
  require(std::isfinite(c.rope_scaling.factor) && c.rope_scaling.factor > 0, origin, "rope_scaling.factor",
          "must be positive");
  require(c.rope_scaling.original_max_position_embeddings >= 0 &&
              c.rope_scaling.original_max_position_embeddings <= kMaxPositionEmbeddings,
          origin, "rope_scaling.original_max_position_embeddings", str("must be from 0 to ", kMaxPositionEmbeddings));
  require(c.num_attention_heads % c.num_key_value_heads == 0, origin, "num_key_value_heads",
          str("must divide num_attention_heads (", c.num_attention_heads, ")"));
  if (c.model_type != "deepseek_v3") return;
  if (c.q_lora_rank) require_size(origin, "q_lora_rank", *c.q_lora_rank, kMaxWidth);
  require_size(origin, "kv_lora_rank", c.kv_lora_rank, kMaxWidth);
  require_size(origin, "qk_nope_head_dim", c.qk_nope_head_dim, kMaxWidth);
  require_size(origin, "qk_rope_head_dim", c.qk_rope_head_dim, kMaxWidth);
  require_size(origin, "v_head_dim", c.v_head_dim, kMaxWidth);
  require_size(origin, "n_routed_experts", c.n_routed_experts, kMaxExperts);
  require_size(origin, "num_experts_per_tok", c.num_experts_per_tok, kMaxExperts);
  require_size(origin, "moe_intermediate_size", c.moe_intermediate_size, kMaxWidth);
  require_size(origin, "n_group", c.n_group, kMaxExperts);
  require_size(origin, "topk_group", c.topk_group, kMaxExperts);
  require_size(origin, "moe_layer_freq", c.moe_layer_freq, kMaxLayers);
  require(c.n_shared_experts >= 0 && c.n_shared_experts <= kMaxExperts, origin, "n_shared_experts",
          str("must be from 0 to ", kMaxExperts));
  require(c.first_k_dense_replace >= 0, origin, "first_k_dense_replace", "must not be negative");
  require(c.num_nextn_predict_layers >= 0 && c.num_nextn_predict_layers <= kMaxLayers, origin,
          "num_nextn_predict_layers", str("must be from 0 to ", kMaxLayers));
  const int64_t moe_layers = std::max<int64_t>(0, c.num_hidden_layers - c.first_k_dense_replace);
  require(c.n_routed_experts * moe_layers <= kMaxRoutedExpertsInModel, origin, "n_routed_experts",
          str("times the ", moe_layers, " MoE layers must be at most ", kMaxRoutedExpertsInModel));
  require(c.num_experts_per_tok <= c.n_routed_experts, origin, "num_experts_per_tok",
          str("must be at most n_routed_experts (", c.n_routed_experts, ")"));
  require(c.n_routed_experts % c.n_group == 0, origin, "n_group",
          str("must divide n_routed_experts (", c.n_routed_experts, ")"));
  require(c.topk_group <= c.n_group, origin, "topk_group", str("must be at most n_group (", c.n_group, ")"));
  require(c.scoring_func == "sigmoid" || c.scoring_func == "softmax", origin, "scoring_func",
          "must be sigmoid or softmax");
}

std::string model_config_json(const ModelConfig& c) {
  static const char* architectures[][2] = {
      {"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"deepseek_v3", "DeepseekV3ForCausalLM"}};
  json out;
  for (auto& a : architectures)
    if (c.model_type == a[0]) out["architectures"] = {a[1]};
  out["model_type"] = c.model_type;
  out["vocab_size"] = c.vocab_size;
  out["hidden_size"] = c.hidden_size;
  out["intermediate_size"] = c.intermediate_size;
  out["num_hidden_layers"] = c.num_hidden_layers;
  out["num_attention_heads"] = c.num_attention_heads;
  out["num_key_value_heads"] = c.num_key_value_heads;
  out["head_dim"] = c.head_dim;
  out["hidden_act"] = "silu";
  out["rms_norm_eps"] = c.rms_norm_eps;
  out["rope_theta"] = c.rope_theta;
  out["max_position_embeddings"] = c.max_position_embeddings;
  out["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.model_type != "qwen2") out["attention_bias"] = c.attention_bias;
  out["bos_token_id"] = c.bos_token_id ? json(*c.bos_token_id) : json(nullptr);
  out["eos_token_id"] = c.eos_token_id ? json(*c.eos_token_id) : json(nullptr);
  out["torch_dtype"] = c.torch_dtype;
  const auto& s = c.rope_scaling;
  if (s.type == "default") {
    out["rope_scaling"] = nullptr;
  } else {
    json rope{{"rope_type", s.type}, {"factor", s.factor}};
    if (s.original_max_position_embeddings) rope["original_max_position_embeddings"] = s.original_max_position_embeddings;
    if (s.type == "llama3") rope["low_freq_factor"] = s.low_freq_factor, rope["high_freq_factor"] = s.high_freq_factor;
    if (s.type == "yarn") {
      rope["beta_fast"] = s.beta_fast, rope["beta_slow"] = s.beta_slow;
      rope["mscale"] = s.mscale, rope["mscale_all_dim"] = s.mscale_all_dim;
    }
    out["rope_scaling"] = rope;
  }
  if (c.model_type == "deepseek_v3") {
    out["q_lora_rank"] = c.q_lora_rank ? json(*c.q_lora_rank) : json(nullptr);
    out["kv_lora_rank"] = c.kv_lora_rank;
    out["qk_nope_head_dim"] = c.qk_nope_head_dim;
    out["qk_rope_head_dim"] = c.qk_rope_head_dim;
    out["v_head_dim"] = c.v_head_dim;
    out["n_routed_experts"] = c.n_routed_experts;
    out["n_shared_experts"] = c.n_shared_experts;
    out["num_experts_per_tok"] = c.num_experts_per_tok;
    out["moe_intermediate_size"] = c.moe_intermediate_size;
    out["n_group"] = c.n_group;
    out["topk_group"] = c.topk_group;
    out["norm_topk_prob"] = c.norm_topk_prob;
    out["routed_scaling_factor"] = c.routed_scaling_factor;
    out["scoring_func"] = c.scoring_func;
    out["topk_method"] = c.topk_method;
    out["first_k_dense_replace"] = c.first_k_dense_replace;
    out["moe_layer_freq"] = c.moe_layer_freq;
    out["rope_interleave"] = c.rope_interleave;
    out["num_nextn_predict_layers"] = c.num_nextn_predict_layers;
  }
  return out.dump(2) + "\n";
}

}  // namespace dsk::io
