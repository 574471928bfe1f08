// config.json -> ModelConfig: transformers' defaults, rope_scaling and rope_parameters, the
// deepseek_v3 fields, validation errors naming the field, and write -> read round trips.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "io/model_config.hpp"

using namespace dsk;
using namespace dsk::io;

namespace {
ModelConfig parse(const std::string& text) { return parse_model_config(text, "config.json"); }
}  // namespace

TEST_CASE("llama: defaults from LlamaConfig") {
  auto c = parse(R"({"model_type":"llama","hidden_size":64,"num_attention_heads":4,"intermediate_size":128,
                     "num_hidden_layers":2,"vocab_size":100})");
  CHECK(c.num_key_value_heads == 4);
  CHECK(c.head_dim == 16);
  CHECK(c.rms_norm_eps == doctest::Approx(1e-6));
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.max_position_embeddings == 2048);
  CHECK(c.bos_token_id == 1);
  CHECK(c.eos_token_id == 2);
  CHECK(!c.tie_word_embeddings);
  CHECK(c.rope_scaling.type == "default");
}

TEST_CASE("llama3 rope_scaling and transformers-5 rope_parameters") {
  auto c = parse(R"({"model_type":"llama","num_key_value_heads":8,"rope_scaling":{"rope_type":"llama3",
    "factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192},
    "rope_theta":500000.0})");
  CHECK(c.rope_scaling.type == "llama3");
  CHECK(c.rope_scaling.factor == 8.0);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(c.rope_theta == 500000.0);
  auto v5 = parse(R"({"model_type":"qwen2","rope_parameters":{"rope_type":"linear","factor":2.0,"rope_theta":1e6},
                      "dtype":"float32"})");
  CHECK(v5.rope_scaling.type == "linear");
  CHECK(v5.rope_theta == 1e6);
  CHECK(v5.torch_dtype == "float32");
  CHECK(v5.qkv_bias);
  CHECK(v5.vocab_size == 151936);
}

TEST_CASE("deepseek_v3 fields and defaults") {
  auto c = parse(R"({"model_type":"deepseek_v3","q_lora_rank":null,"n_routed_experts":16,"n_group":4,
    "topk_group":2,"num_experts_per_tok":4,"rope_scaling":{"type":"yarn","factor":40,"beta_fast":32,
    "beta_slow":1,"mscale":1.0,"mscale_all_dim":1.0,"original_max_position_embeddings":4096}})");
  CHECK(!c.q_lora_rank);
  CHECK(c.kv_lora_rank == 512);
  CHECK(c.qk_rope_head_dim == 64);
  CHECK(c.head_dim == 64);
  CHECK(c.n_shared_experts == 1);
  CHECK(c.routed_scaling_factor == 2.5);
  CHECK(c.scoring_func == "sigmoid");
  CHECK(c.topk_method == "noaux_tc");
  CHECK(c.first_k_dense_replace == 3);
  CHECK(c.rope_scaling.type == "yarn");
  CHECK(c.rope_scaling.mscale_all_dim == 1.0);
  CHECK(c.eos_token_id == 1);
}

TEST_CASE("validation names the file and field") {
  auto fails = [](const std::string& text, const std::string& part) {
    CHECK_THROWS_WITH_AS(parse(text), doctest::Contains(part.c_str()), DataError);
  };
  fails("nope", "config.json: not valid JSON");
  fails("[]", "not a JSON object");
  fails(R"({"hidden_size":4})", "'model_type'");
  fails(R"({"model_type":"gpt2"})", "model_type 'gpt2' is not supported");
  fails(R"({"model_type":"llama","hidden_size":"x"})", "field 'hidden_size' must be an integer");
  fails(R"({"model_type":"llama","hidden_size":100,"num_attention_heads":3})", "'num_attention_heads'");
  fails(R"({"model_type":"llama","num_key_value_heads":5})", "'num_key_value_heads'");
  fails(R"({"model_type":"llama","vocab_size":0})", "'vocab_size' must be positive");
  fails(R"({"model_type":"llama","rope_scaling":{"type":"dynamic2"}})", "rope type 'dynamic2'");
  fails(R"({"model_type":"deepseek_v3","num_experts_per_tok":300})", "'num_experts_per_tok'");
  fails(R"({"model_type":"deepseek_v3","n_group":7})", "'n_group': must divide");
  fails(R"({"model_type":"deepseek_v3","topk_group":9})", "'topk_group'");
}

TEST_CASE("sizes are bounded so that a corrupt config.json cannot make dsk build a huge model") {
  auto fails = [](const std::string& text, const std::string& part) {
    CHECK_THROWS_WITH_AS(parse(text), doctest::Contains(part.c_str()), DataError);
  };
  fails(R"({"model_type":"deepseek_v3","n_routed_experts":323948858})", "'n_routed_experts' must be at most 4096");
  fails(R"({"model_type":"deepseek_v3","n_routed_experts":4096,"n_group":1,"topk_group":1})",
        "'n_routed_experts': times the 58 MoE layers must be at most 65536");
  fails(R"({"model_type":"llama","vocab_size":1099511627792})", "'vocab_size' must be at most 16777216");
  fails(R"({"model_type":"llama","hidden_size":18446744073709551615})", "'hidden_size' must be an integer");
  fails(R"({"model_type":"llama","num_hidden_layers":5000})", "'num_hidden_layers' must be at most 1024");
  fails(R"({"model_type":"llama","max_position_embeddings":-7})", "'max_position_embeddings' must be positive");
  fails(R"({"model_type":"llama","rms_norm_eps":1e309})", "not valid JSON");
  CHECK_NOTHROW(parse(R"({"model_type":"deepseek_v3"})"));  // DeepSeek-V3 itself: 256 experts x 58 layers
}

TEST_CASE("write then read gives the same config") {
  for (const char* text :
       {R"({"model_type":"llama","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,
            "tie_word_embeddings":true,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":2.0,
            "high_freq_factor":4.0,"original_max_position_embeddings":8192}})",
        R"({"model_type":"qwen2","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2})",
        R"({"model_type":"deepseek_v3","q_lora_rank":null,"n_routed_experts":16,"n_group":4,"topk_group":2,
            "num_experts_per_tok":4,"rope_scaling":{"type":"yarn","factor":40,"mscale_all_dim":1.0}})"}) {
    auto a = parse(text);
    auto b = parse(model_config_json(a));
    CHECK(model_config_json(a) == model_config_json(b));
    CHECK(b.num_key_value_heads == a.num_key_value_heads);
    CHECK(b.rope_scaling.type == a.rope_scaling.type);
    CHECK(b.rope_scaling.factor == a.rope_scaling.factor);
    CHECK(b.q_lora_rank == a.q_lora_rank);
    CHECK(b.head_dim == a.head_dim);
  }
}
