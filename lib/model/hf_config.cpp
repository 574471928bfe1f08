#include "model/hf_config.hpp"

#include <charconv>
#include <fstream>
#include <string>

#include "core/error.hpp"

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

RopeScaling read_rope(const json& config, const std::string& where) {
  RopeScaling r;
  r.theta = get<double>(config, "rope_theta", 10000.0, where);
  json params = json::object();
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object())
    params = config["rope_parameters"];
  else if (config.contains("rope_scaling") && config["rope_scaling"].is_object())
    params = config["rope_scaling"];
  std::string place = where + ": rope_parameters";
  r.type = get<std::string>(params, "rope_type", get<std::string>(params, "type", "default", place), place);
  r.theta = get<double>(params, "rope_theta", r.theta, place);
  r.factor = get<double>(params, "factor", 1.0, place);
  r.low_freq_factor = get<double>(params, "low_freq_factor", 1.0, place);
  r.high_freq_factor = get<double>(params, "high_freq_factor", 4.0, place);
  r.original_max_position_embeddings = get<double>(params, "original_max_position_embeddings", 0.0, place);
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
  if (r.type == "yarn" && !params.contains("factor") && r.original_max_position_embeddings > 0)
    r.factor = get<double>(config, "max_position_embeddings", 0.0, where) / r.original_max_position_embeddings;
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
    a.vocab = get<int>(c, "vocab_size", qwen ? 151936 : 32000, where);
    a.hidden = get<int>(c, "hidden_size", 4096, where);
    a.intermediate = get<int>(c, "intermediate_size", qwen ? 22016 : 11008, where);
    a.layers = get<int>(c, "num_hidden_layers", 32, where);
    a.heads = get<int>(c, "num_attention_heads", 32, where);
    a.kv_heads = get<int>(c, "num_key_value_heads", a.heads, where);
    a.head_dim = get<int>(c, "head_dim", a.heads > 0 ? a.hidden / a.heads : 0, where);
    a.max_position_embeddings = get<double>(c, "max_position_embeddings", qwen ? 32768 : 2048, where);
    a.rms_eps = get<float>(c, "rms_norm_eps", 1e-6f, where);
    bool attention_bias = get<bool>(c, "attention_bias", false, where);
    if (qwen && get<bool>(c, "use_sliding_window", false, where))
      throw DataError(where + ": use_sliding_window = true is not supported");
    a.qkv_bias = qwen || attention_bias;
    a.o_bias = !qwen && attention_bias;
  } else if (type == "deepseek_v3") {
    a.family = Family::deepseek_v3;
    a.vocab = get<int>(c, "vocab_size", 129280, where);
    a.hidden = get<int>(c, "hidden_size", 7168, where);
    a.intermediate = get<int>(c, "intermediate_size", 18432, where);
    a.moe_intermediate = get<int>(c, "moe_intermediate_size", 2048, where);
    a.layers = get<int>(c, "num_hidden_layers", 61, where);
    a.heads = get<int>(c, "num_attention_heads", 128, where);
    a.kv_heads = get<int>(c, "num_key_value_heads", a.heads, where);
    a.n_shared = get<int>(c, "n_shared_experts", 1, where);
    a.n_routed = get<int>(c, "n_routed_experts", 256, where);
    a.routed_scaling = get<float>(c, "routed_scaling_factor", 2.5f, where);
    a.kv_lora_rank = get<int>(c, "kv_lora_rank", 512, where);
    a.q_lora_rank = c.contains("q_lora_rank") && c["q_lora_rank"].is_null() ? 0 : get<int>(c, "q_lora_rank", 1536, where);
    a.qk_rope_dim = get<int>(c, "qk_rope_head_dim", 64, where);
    a.v_head_dim = get<int>(c, "v_head_dim", 128, where);
    a.qk_nope_dim = get<int>(c, "qk_nope_head_dim", 128, where);
    a.n_group = get<int>(c, "n_group", 8, where);
    a.topk_group = get<int>(c, "topk_group", 4, where);
    a.top_k = get<int>(c, "num_experts_per_tok", 8, where);
    a.first_k_dense = get<int>(c, "first_k_dense_replace", 3, where);
    a.norm_topk_prob = get<bool>(c, "norm_topk_prob", true, where);
    a.max_position_embeddings = get<double>(c, "max_position_embeddings", 4096, where);
    a.rms_eps = get<float>(c, "rms_norm_eps", 1e-6f, where);
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
  std::ifstream in(path);
  if (!in) throw DataError(str(path.string(), ": cannot open"));
  json config;
  try {
    config = json::parse(in);
  } catch (const json::parse_error& e) {
    throw DataError(str(path.string(), ": not valid JSON (", e.what(), ")"));
  }
  return architecture_from_hf_config(config, path.string());
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
