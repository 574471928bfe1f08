// HF checkpoint directories: save/load round trips (F32 exact, BF16/F16 rounded, sharded with an
// index), both config.json styles, and the DataErrors for tensors that do not fit the config.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "../io/scratch_dir.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "f32_safetensors.hpp"
#include "model/model.hpp"
#include "tiny_models.hpp"

using namespace dsk::model;
using namespace dsk::model::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json read_json(const fs::path& p) { return json::parse(dsk::read_file(p)); }
void write_json(const fs::path& p, const json& j) { dsk::write_file_atomic(p, j.dump(2)); }

std::vector<float> logits_of(Model& model) {
  std::vector<int32_t> tokens = {1, 7, 3, 30, 2, 9};
  return model.logits(tokens.data(), 1, 6);
}

}  // namespace

TEST_CASE("F32 save and load round-trip exactly, config included") {
  fs::path dir = scratch_dir("ckpt-f32");
  Model model(tiny_deepseek(6), 3, 0.1f);
  model.save_hf_checkpoint(dir / "out", "F32");
  CHECK(fs::exists(dir / "out/model.safetensors"));
  CHECK(read_json(dir / "out/config.json")["model_type"] == "deepseek_v3");
  Model loaded = Model::load_hf_checkpoint(dir / "out");
  REQUIRE(loaded.parameter_count() == model.parameter_count());
  for (size_t i = 0; i < model.parameter_count(); i++) REQUIRE(loaded.parameters()[i] == model.parameters()[i]);
  CHECK(loaded.architecture().q_lora_rank == 6);
  CHECK(logits_of(loaded) == logits_of(model));
  fs::remove_all(dir);
}

TEST_CASE("BF16 and F16 saves round to within half a unit in the last place, sharded with an index") {
  fs::path dir = scratch_dir("ckpt-bf16");
  Model model(tiny_llama(), 4, 0.1f);
  for (const char* dtype : {"BF16", "F16"}) {
    fs::path out = dir / dtype;
    model.save_hf_checkpoint(out, dtype, 4096);
    json index = read_json(out / "model.safetensors.index.json");
    CHECK(index["weight_map"]["model.norm.weight"].get<std::string>().ends_with(".safetensors"));
    CHECK(!fs::exists(out / "model.safetensors"));
    Model loaded = Model::load_hf_checkpoint(out);
    double relative = std::string(dtype) == "BF16" ? 1.0 / 256 : 1.0 / 2048;
    for (size_t i = 0; i < model.parameter_count(); i++) {
      float want = model.parameters()[i], got = loaded.parameters()[i];
      REQUIRE(std::fabs(got - want) <= relative * std::fabs(want) + 1e-7);  // f16 subnormals: absolute
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("the Hub's config style (rope_theta + rope_scaling with \"type\") loads like transformers 5's") {
  fs::path dir = scratch_dir("ckpt-hub");
  fs::path fixture = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/models/deepseek_v3/checkpoint";
  fs::copy(fixture, dir / "hub");
  json config = read_json(dir / "hub/config.json");
  json rope = config["rope_parameters"];
  config.erase("rope_parameters");
  config["rope_theta"] = rope["rope_theta"];
  rope.erase("rope_theta");
  rope.erase("rope_type");
  rope["type"] = "yarn";
  config["rope_scaling"] = rope;
  write_json(dir / "hub/config.json", config);
  Model v5 = Model::load_hf_checkpoint(fixture);
  Model hub = Model::load_hf_checkpoint(dir / "hub");
  CHECK(hub.architecture().rope_scaling.type == "yarn");
  CHECK(hub.architecture().rope_scaling.mscale_all_dim == doctest::Approx(0.8));
  CHECK(logits_of(hub) == logits_of(v5));
  fs::remove_all(dir);
}

TEST_CASE("tensors that do not fit the config are DataErrors naming them") {
  fs::path dir = scratch_dir("ckpt-errors");
  Model model(tiny_llama(), 5, 0.1f);
  model.save_hf_checkpoint(dir / "m", "F32");
  json config = read_json(dir / "m/config.json");
  auto load_with = [&](const json& c) {
    write_json(dir / "m/config.json", c);
    Model::load_hf_checkpoint(dir / "m");
  };
  json more_layers = config;
  more_layers["num_hidden_layers"] = 3;
  CHECK_THROWS_WITH_AS(load_with(more_layers), doctest::Contains("missing tensors: model.layers.2."), dsk::DataError);
  json fewer_layers = config;
  fewer_layers["num_hidden_layers"] = 1;
  CHECK_THROWS_WITH_AS(load_with(fewer_layers), doctest::Contains("unexpected tensors for this config: model.layers.1."),
                       dsk::DataError);
  json wider = config;
  wider["intermediate_size"] = 32;
  CHECK_THROWS_WITH_AS(load_with(wider), doctest::Contains("has shape [24,16], expected [32,16]"), dsk::DataError);
  json other = config;
  other["model_type"] = "gpt2";
  CHECK_THROWS_WITH_AS(load_with(other), doctest::Contains("model_type \"gpt2\" is not supported"), dsk::DataError);
  json dynamic = config;
  dynamic["rope_parameters"] = {{"rope_type", "dynamic"}, {"factor", 2.0}};
  CHECK_THROWS_WITH_AS(load_with(dynamic), doctest::Contains("rope_type \"dynamic\" is not supported"), dsk::DataError);
  json gelu = config;
  gelu["hidden_act"] = "gelu";
  CHECK_THROWS_AS(load_with(gelu), dsk::DataError);
  write_json(dir / "m/config.json", config);
  fs::remove(dir / "m/model.safetensors");
  CHECK_THROWS_WITH_AS(Model::load_hf_checkpoint(dir / "m"), doctest::Contains("no model.safetensors"), dsk::DataError);
  { std::ofstream(dir / "m/model.safetensors") << "garbage"; }
  CHECK_THROWS_AS(Model::load_hf_checkpoint(dir / "m"), dsk::DataError);
  fs::remove_all(dir);
}

TEST_CASE("deepseek_v3: tensors of layers past num_hidden_layers (the MTP layer) are skipped as HF does") {
  fs::path dir = scratch_dir("ckpt-mtp");
  Model model(tiny_deepseek(6, 3), 6, 0.1f);
  model.save_hf_checkpoint(dir / "m", "F32");
  json config = read_json(dir / "m/config.json");
  config["num_hidden_layers"] = 2;
  write_json(dir / "m/config.json", config);
  Model loaded = Model::load_hf_checkpoint(dir / "m");
  CHECK(loaded.architecture().layers == 2);
  CHECK(loaded.parameter("model.norm.weight")[0] == model.parameter("model.norm.weight")[0]);
  fs::remove_all(dir);
}

TEST_CASE("tensors HF skips on load are skipped: lm_head of a tied model, old rotary_emb.inv_freq buffers") {
  fs::path dir = scratch_dir("ckpt-skip");
  Model model(tiny_qwen2(), 7, 0.1f);
  model.save_hf_checkpoint(dir / "m", "F32");
  fs::path file = dir / "m/model.safetensors";
  auto tensors = read_f32_safetensors(file);
  tensors["lm_head.weight"] = tensors.at("model.embed_tokens.weight");
  tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = F32Tensor{{2}, {1.0f, 0.01f}};
  write_f32_safetensors(file, tensors);
  Model loaded = Model::load_hf_checkpoint(dir / "m");
  CHECK(logits_of(loaded) == logits_of(model));
  tensors["model.layers.0.mlp.extra.weight"] = F32Tensor{{1}, {0.0f}};
  write_f32_safetensors(file, tensors);
  CHECK_THROWS_WITH_AS(Model::load_hf_checkpoint(dir / "m"), doctest::Contains("model.layers.0.mlp.extra.weight"),
                       dsk::DataError);
  fs::remove_all(dir);
}
