#include "model/hf_config.hpp"

#include <charconv>
#include <cmath>
#include <string>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/json.hpp"
#include "io/model_config.hpp"

namespace dsk::model {

using nlohmann::json;

namespace {

// A float field as the decimal people wrote (1e-06), not its double widening (9.99999997e-07).
double shortest_decimal(float value) {
  char text[32];
  auto [end, error] = std::to_chars(text, text + sizeof text, value);
  return error == std::errc() ? std::stod(std::string(text, end)) : double(value);
}

// Reads config[key] as T, `fallback` when absent or null; a wrong type is a DataError.
template <typename T>
T get(const json& config, const char* key, T fallback, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw DataError(str(where, ": \"", key, "\" has the wrong type (", it->type_name(), ")"));
  }
}

// A size field: an integer (4096.0 counts) from 0 to `maximum` (io/model_config.hpp's bounds), so
// that a corrupt file cannot make the model allocate or loop without end; `fallback` when absent.
int get_size(const json& config, const char* key, int fallback, int64_t maximum, const std::string& where) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  double value = it->is_number() ? it->get<double>() : -1;
  bool whole = it->is_number_integer() || (it->is_number_float() && value == std::floor(value));
  if (!whole || value < 0 || value > double(maximum) || (it->is_number_integer() && it->get<int64_t>() > maximum))
    throw DataError(str(where, ": \"", key, "\" must be an integer from 0 to ", maximum, ", got ", json_excerpt(*it)));
  return int(value);
}

// A real-valued field that must be finite and positive.
double get_positive(const json& config, const char* key, double fallback, const std::string& where) {
  double value = get<double>(config, key, fallback, where);
  if (!std::isfinite(value) || value <= 0)
    throw DataError(str(where, ": \"", key, "\" must be a positive number, got ", json_excerpt(config.at(key))));
  return value;
}

RopeScaling read_rope(const json& config, const std::string& where) {
  RopeScaling r;
  r.theta = get_positive(config, "rope_theta", 10000.0, where);
  json params = json::object();
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object())
    params = config["rope_parameters"];
  else if (config.contains("rope_scaling") && config["rope_scaling"].is_object())
    params = config["rope_scaling"];
  std::string place = where + ": rope_parameters";
  r.type = get<std::string>(params, "rope_type", get<std::string>(params, "type", "default", place), place);
  r.theta = get_positive(params, "rope_theta", r.theta, place);
  r.factor = get_positive(params, "factor", 1.0, place);
  r.low_freq_factor = get_positive(params, "low_freq_factor", 1.0, place);
  r.high_freq_factor = get_positive(params, "high_freq_factor", 4.0, place);
  r.original_max_position_embeddings =
      get_size(params, "original_max_position_embeddings", 0, io::kMaxPositionEmbeddings, place);
  r.beta_fast = get<double>(params, "beta_fast", 32.0, place);
  r.beta_slow = get<double>(params, "beta_slow", 1.0, place);
  r.mscale = get<double>(params, "mscale", 0.0, place);
  r.mscale_all_dim = get<double>(params, "mscale_all_dim", 0.0, place);
  r.attention_factor = get<double>(params, "attention_factor", 0.0, place);
  r.truncate = get<bool>(params, "truncate", true, place);
  if (r.type != "default" && r.type != "linear" && r.type != "llama3" && r.type != "yarn")
    throw DataError(str(place, ": rope_type \"", r.type, "\" is not supported (default, linear, llama3, yarn)"));
  if (r.type == "llama3" && r.original_max_position_embeddings <= 0)
    throw DataError(place + ": llama3 scaling needs original_max_position_embeddings");
  if (r.type == "llama3" && r.high_freq_factor <= r.low_freq_factor)
    throw DataError(place + ": llama3 scaling needs high_freq_factor > low_freq_factor");
  for (auto [key, value] : {std::pair{"beta_fast", r.beta_fast}, std::pair{"beta_slow", r.beta_slow},
                            std::pair{"mscale", r.mscale}, std::pair{"mscale_all_dim", r.mscale_all_dim},
                            std::pair{"attention_factor", r.attention_factor}})
    if (!std::isfinite(value)) throw DataError(str(place, ": \"", key, "\" must be a finite number"));
  if (r.type == "yarn" && !params.contains("factor") && r.original_max_position_embeddings > 0)
    r.factor = get_positive(config, "max_position_embeddings", 4096, where) / r.original_max_position_embeddings;
  return r;
}

void reject_unsupported(const json& c, const std::string& where) {
  if (get<std::string>(c, "hidden_act", "silu", where) != "silu")
    throw DataError(str(where, ": hidden_act \"", c["hidden_act"].get<std::string>(), "\" is not supported (silu only)"));
  if (get<bool>(c, "mlp_bias", false, where)) throw DataError(where + ": mlp_bias = true is not supported");
  if (c.contains("quantization_config") && !c["quantization_config"].is_null())
    throw DataError(where + ": quantized checkpoints (quantization_config) are not supported; dequantize to bf16 first");
}

}  // namespace

Architecture architecture_from_hf_config(const json& c, const std::string& where) {
  if (!c.is_object()) throw DataError(where + ": expected a JSON object");
  std::string type = get<std::string>(c, "model_type", "", where);
  reject_unsupported(c, where);
  Architecture a;
  if (type == "llama" || type == "qwen2") {
    bool qwen = type == "qwen2";
    a.family = qwen ? Family::qwen2 : Family::llama;
    a.vocab = get_size(c, "vocab_size", qwen ? 151936 : 32000, io::kMaxVocabSize, where);
    a.hidden = get_size(c, "hidden_size", 4096, io::kMaxWidth, where);
    a.intermediate = get_size(c, "intermediate_size", qwen ? 22016 : 11008, io::kMaxWidth, where);
    a.layers = get_size(c, "num_hidden_layers", 32, io::kMaxLayers, where);
    a.heads = get_size(c, "num_attention_heads", 32, io::kMaxHeads, where);
    a.kv_heads = get_size(c, "num_key_value_heads", a.heads, io::kMaxHeads, where);
    a.head_dim = get_size(c, "head_dim", a.heads > 0 ? a.hidden / a.heads : 0, io::kMaxWidth, where);
    a.max_position_embeddings = get_size(c, "max_position_embeddings", qwen ? 32768 : 2048, io::kMaxPositionEmbeddings, where);
    a.rms_eps = float(get_positive(c, "rms_norm_eps", 1e-6, where));
    bool attention_bias = get<bool>(c, "attention_bias", false, where);
    if (qwen && get<bool>(c, "use_sliding_window", false, where))
      throw DataError(where + ": use_sliding_window = true is not supported");
    a.qkv_bias = qwen || attention_bias;
    a.o_bias = !qwen && attention_bias;
  } else if (type == "deepseek_v3") {
    a.family = Family::deepseek_v3;
    a.vocab = get_size(c, "vocab_size", 129280, io::kMaxVocabSize, where);
    a.hidden = get_size(c, "hidden_size", 7168, io::kMaxWidth, where);
    a.intermediate = get_size(c, "intermediate_size", 18432, io::kMaxWidth, where);
    a.moe_intermediate = get_size(c, "moe_intermediate_size", 2048, io::kMaxWidth, where);
    a.layers = get_size(c, "num_hidden_layers", 61, io::kMaxLayers, where);
    a.heads = get_size(c, "num_attention_heads", 128, io::kMaxHeads, where);
    a.kv_heads = get_size(c, "num_key_value_heads", a.heads, io::kMaxHeads, where);
    a.n_shared = get_size(c, "n_shared_experts", 1, io::kMaxExperts, where);
    a.n_routed = get_size(c, "n_routed_experts", 256, io::kMaxExperts, where);
    a.routed_scaling = float(get_positive(c, "routed_scaling_factor", 2.5, where));
    a.kv_lora_rank = get_size(c, "kv_lora_rank", 512, io::kMaxWidth, where);
    a.q_lora_rank = c.contains("q_lora_rank") && c["q_lora_rank"].is_null() ? 0 : get_size(c, "q_lora_rank", 1536, io::kMaxWidth, where);
    a.qk_rope_dim = get_size(c, "qk_rope_head_dim", 64, io::kMaxWidth, where);
    a.v_head_dim = get_size(c, "v_head_dim", 128, io::kMaxWidth, where);
    a.qk_nope_dim = get_size(c, "qk_nope_head_dim", 128, io::kMaxWidth, where);
    a.n_group = get_size(c, "n_group", 8, io::kMaxExperts, where);
    a.topk_group = get_size(c, "topk_group", 4, io::kMaxExperts, where);
    a.top_k = get_size(c, "num_experts_per_tok", 8, io::kMaxExperts, where);
    a.first_k_dense = get_size(c, "first_k_dense_replace", 3, io::kMaxLayers, where);
    a.norm_topk_prob = get<bool>(c, "norm_topk_prob", true, where);
    a.max_position_embeddings = get_size(c, "max_position_embeddings", 4096, io::kMaxPositionEmbeddings, where);
    a.rms_eps = float(get_positive(c, "rms_norm_eps", 1e-6, where));
    a.rope_interleave = get<bool>(c, "rope_interleave", true, where);
    a.o_bias = get<bool>(c, "attention_bias", false, where);
  } else {
    throw DataError(str(where, ": model_type \"", type, "\" is not supported (llama, qwen2, deepseek_v3)"));
  }
  a.tied_embeddings = get<bool>(c, "tie_word_embeddings", false, where);
  a.rope_scaling = read_rope(c, where);
  try {
    a.validate();
  } catch (const UsageError& e) {
    throw DataError(str(where, ": ", e.what()));
  }
  return a;
}

Architecture read_hf_config(const std::filesystem::path& path) {
  return architecture_from_hf_config(parse_json(read_file(path), path.string()), path.string());
}

json hf_config_of(const Architecture& a, const std::string& dtype) {
  json c;
  static const char* names[] = {"llama", "qwen2", "deepseek_v3"};
  static const char* classes[] = {"LlamaForCausalLM", "Qwen2ForCausalLM", "DeepseekV3ForCausalLM"};
  c["model_type"] = names[(int)a.family];
  c["architectures"] = {classes[(int)a.family]};
  c["vocab_size"] = a.vocab;
  c["hidden_size"] = a.hidden;
  c["intermediate_size"] = a.intermediate;
  c["num_hidden_layers"] = a.layers;
  c["num_attention_heads"] = a.heads;
  c["num_key_value_heads"] = a.mla() ? a.heads : a.kv_heads;
  // Integers as integers: transformers 5 validates config fields by type and refuses 512.0.
  c["max_position_embeddings"] = int64_t(a.max_position_embeddings);
  c["rms_norm_eps"] = shortest_decimal(a.rms_eps);
  c["tie_word_embeddings"] = a.tied_embeddings;
  c["hidden_act"] = "silu";
  c["dtype"] = dtype == "F32" ? "float32" : dtype == "F16" ? "float16" : "bfloat16";
  if (a.mla()) {
    c["attention_bias"] = a.o_bias;
    c["moe_intermediate_size"] = a.moe_intermediate;
    c["n_shared_experts"] = a.n_shared;
    c["n_routed_experts"] = a.n_routed;
    c["routed_scaling_factor"] = shortest_decimal(a.routed_scaling);
    c["kv_lora_rank"] = a.kv_lora_rank;
    c["q_lora_rank"] = a.q_lora_rank > 0 ? json(a.q_lora_rank) : json(nullptr);
    c["qk_rope_head_dim"] = a.qk_rope_dim;
    c["qk_nope_head_dim"] = a.qk_nope_dim;
    c["v_head_dim"] = a.v_head_dim;
    c["n_group"] = a.n_group;
    c["topk_group"] = a.topk_group;
    c["num_experts_per_tok"] = a.top_k;
    c["first_k_dense_replace"] = a.first_k_dense;
    c["norm_topk_prob"] = a.norm_topk_prob;
    c["rope_interleave"] = a.rope_interleave;
  } else {
    c["head_dim"] = a.head_dim;
    c["attention_bias"] = a.family == Family::llama && a.qkv_bias;
  }
  const RopeScaling& r = a.rope_scaling;
  json rope = {{"rope_type", r.type}, {"rope_theta", r.theta}};
  if (r.type != "default") rope["factor"] = r.factor;
  if (r.type == "llama3") {
    rope["low_freq_factor"] = r.low_freq_factor;
    rope["high_freq_factor"] = r.high_freq_factor;
  }
  if (r.original_max_position_embeddings > 0)
    rope["original_max_position_embeddings"] = int64_t(r.original_max_position_embeddings);
  if (r.type == "yarn") {
    rope["beta_fast"] = r.beta_fast;
    rope["beta_slow"] = r.beta_slow;
    if (r.mscale != 0) rope["mscale"] = r.mscale;
    if (r.mscale_all_dim != 0) rope["mscale_all_dim"] = r.mscale_all_dim;
    if (r.attention_factor > 0) rope["attention_factor"] = r.attention_factor;
  }
  c["rope_parameters"] = rope;
  c["rope_theta"] = r.theta;  // what transformers 4 reads
  return c;
}

}  // namespace dsk::model
