// The parts of a training run around the loop: resolving data.train/data.val, inline model
// configs (YAML -> config.json fields), checkpoints (exact round trip, newest whole one wins, crash
// leftovers removed, keep-last-K), and dropping metrics lines past a resumed step.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../model/tiny_models.hpp"
#include "core/error.hpp"
#include "io/token_shard.hpp"
#include "train/checkpoint.hpp"
#include "train/metrics_log.hpp"
#include "train/model_source.hpp"
#include "train/train_data.hpp"

using namespace dsk;
using namespace dsk::train;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  explicit TempDir(const char* tag)
      : path(fs::temp_directory_path() / (std::string("dsk-") + tag + "-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write_shard(const fs::path& file, uint32_t eos, uint64_t vocab, int tokens) {
  io::ShardWriter writer(file, vocab, eos);
  std::vector<uint32_t> ids;
  for (int i = 0; i < tokens; ++i) ids.push_back(uint32_t(i % int(eos)));
  writer.append(ids);
  writer.end_document();
  writer.commit();
}

// A dsk-tokenize-style directory with one train and one val shard.
void write_shard_dir(const fs::path& dir, const std::string& tokenizer) {
  fs::create_directories(dir);
  write_shard(dir / "train-00000.tok", 9, 10, 50);
  write_shard(dir / "val-00000.tok", 9, 10, 20);
  io::ShardIndex index;
  index.tokenizer = tokenizer;
  index.vocab_size = 10;
  index.token_bytes = 2;
  index.eos_id = 9;
  index.train = {1, 51, 0, {{"train-00000.tok", 1, 51, ""}}};
  index.val = {1, 21, 0, {{"val-00000.tok", 1, 21, ""}}};
  std::ofstream(dir / "index.yaml") << io::shard_index_to_yaml(index);
}

}  // namespace

TEST_CASE("data: directories give their train shards, and their val shards for evaluation") {
  TempDir temp("train-data");
  std::ofstream(temp.path / "tokenizer.json") << "{}";
  write_shard_dir(temp.path / "shards", (temp.path / "tokenizer.json").string());
  TrainData data = resolve_train_data({(temp.path / "shards").string()}, {});
  REQUIRE(data.train.size() == 1);
  CHECK(data.train[0].filename() == "train-00000.tok");
  REQUIRE(data.val.size() == 1);
  CHECK(data.val[0].filename() == "val-00000.tok");
  CHECK(data.vocab_size == 10);
  CHECK(data.eos_id == 9);
  CHECK(data.tokenizer == temp.path / "tokenizer.json");

  SUBCASE("files and glob patterns name shards directly") {
    TrainData globbed = resolve_train_data({(temp.path / "shards" / "*.tok").string()},
                                           {(temp.path / "shards" / "val-00000.tok").string()});
    CHECK(globbed.train.size() == 2);  // train-00000.tok and val-00000.tok, sorted
    CHECK(globbed.val.size() == 1);
  }
  SUBCASE("a name that matches nothing is a data error naming it") {
    CHECK_THROWS_WITH_AS(resolve_train_data({(temp.path / "missing").string()}, {}),
                         doctest::Contains("missing: no such shard"), DataError);
  }
  SUBCASE("shards of two tokenizers (different EOS) are refused") {
    write_shard(temp.path / "other.tok", 7, 10, 20);
    CHECK_THROWS_WITH_AS(resolve_train_data({(temp.path / "shards").string(), (temp.path / "other.tok").string()}, {}),
                         doctest::Contains("EOS id 7"), DataError);
  }
}

TEST_CASE("inline model config: YAML scalars become JSON numbers, booleans, null and strings") {
  YAML::Node node = YAML::Load(
      "{model_type: llama, vocab_size: 32, rms_norm_eps: 1.0e-5, tie_word_embeddings: true, q_lora_rank: null,"
      " name: '123', rope_scaling: {type: linear, factor: 2}}");
  nlohmann::json json = yaml_to_json(node, "test.yaml");
  CHECK(json["model_type"] == "llama");
  CHECK(json["vocab_size"].is_number_integer());
  CHECK(json["vocab_size"] == 32);
  CHECK(json["rms_norm_eps"].is_number_float());
  CHECK(json["tie_word_embeddings"] == true);
  CHECK(json["q_lora_rank"].is_null());
  CHECK(json["name"] == "123");  // quoted: stays a string
  CHECK(json["rope_scaling"]["factor"] == 2);
  // Numbers are the whole scalar (yaml-cpp's own conversion took "16" followed by form feeds).
  nlohmann::json more = yaml_to_json(YAML::Load("a: 16\f\f\nb: 0x10\nc: -.inf\nd: 1e3\ne: +7\nf: 1_000\ng: inf\nh: 12abc\n"), "t");
  CHECK(more["a"] == "16\f\f");
  CHECK(more["b"] == 16);
  CHECK(std::isinf(more["c"].get<double>()));
  CHECK(more["d"] == 1000.0);
  CHECK(more["e"] == 7);
  CHECK(more["f"] == "1_000");
  CHECK(more["g"] == "inf");
  CHECK(more["h"] == "12abc");
}

TEST_CASE("checkpoints: exact round trip, the newest whole one, leftovers removed, keep K") {
  TempDir temp("train-ckpt");
  model::Model model(model::testing::tiny_deepseek(8), 3);
  AdamW optimizer(model.ops(), model.parameter_count(), {});
  std::vector<float> m(model.parameter_count()), v(model.parameter_count());
  for (size_t i = 0; i < model.parameter_count(); ++i) {
    m[i] = float(i) * 1e-3f;
    v[i] = float(i) * 1e-6f;
  }
  optimizer.restore(m, v, 7);
  TrainingState state;
  state.step = 7;
  state.tokens = 7 * 256;
  state.data_cursor = 56;
  state.seed = 11;
  state.skipped_steps = 1;
  state.train_loss = 3.14159265358979;
  state.val_loss = 2.718281828459045;
  CheckpointExtras extras;
  extras.eos_id = 1;
  extras.config_yaml = "seed: 11\n";
  extras.dtype = "BF16";
  const fs::path saved = save_checkpoint(temp.path, model, optimizer, state, extras);
  CHECK(saved == temp.path / "checkpoints" / "step-000007");
  CHECK(fs::exists(saved / "config.json"));
  CHECK(fs::exists(saved / "generation_config.json"));
  // transformers 5 checks config.json's types: integer fields must not be written as 512.0.
  const nlohmann::json config = nlohmann::json::parse(std::ifstream(saved / "config.json"));
  for (const char* key : {"max_position_embeddings", "vocab_size", "hidden_size", "num_hidden_layers", "n_routed_experts"})
    CHECK_MESSAGE(config[key].is_number_integer(), key);
  CHECK(config["rope_parameters"]["original_max_position_embeddings"].is_number_integer());
  // Float fields as written by people (1e-06), not their double widening (9.99999997e-07).
  CHECK(config["rms_norm_eps"].get<double>() == 1e-6);

  model::Model restored(model::testing::tiny_deepseek(8), 99);  // other random weights
  AdamW restored_optimizer(restored.ops(), model.parameter_count(), {});
  TrainingState back = load_checkpoint_state(saved, restored, restored_optimizer);
  CHECK(back.step == 7);
  CHECK(back.data_cursor == 56);
  CHECK(back.seed == 11);
  CHECK(back.skipped_steps == 1);
  CHECK(back.train_loss == state.train_loss);  // bit for bit
  CHECK(*back.val_loss == *state.val_loss);
  CHECK(restored_optimizer.steps_taken() == 7);
  CHECK(std::equal(model.parameters().begin(), model.parameters().end(), restored.parameters().begin()));
  CHECK(restored_optimizer.copy_first_moment() == optimizer.copy_first_moment());
  CHECK(restored_optimizer.copy_second_moment() == optimizer.copy_second_moment());

  state.step = 9;
  save_checkpoint(temp.path, model, optimizer, state, extras);
  fs::create_directories(temp.path / "checkpoints" / "step-000012.tmp-4242");  // a crash mid-save
  CHECK(latest_checkpoint(temp.path) == temp.path / "checkpoints" / "step-000009");
  CHECK_FALSE(fs::exists(temp.path / "checkpoints" / "step-000012.tmp-4242"));
  state.step = 10;
  save_checkpoint(temp.path, model, optimizer, state, extras);
  prune_checkpoints(temp.path, 2);
  CHECK_FALSE(fs::exists(temp.path / "checkpoints" / "step-000007"));
  CHECK(fs::exists(temp.path / "checkpoints" / "step-000009"));
  CHECK(fs::exists(temp.path / "checkpoints" / "step-000010"));

  SUBCASE("a checkpoint of another model is refused, naming the file") {
    model::Model other(model::testing::tiny_llama(), 1);
    AdamW other_optimizer(other.ops(), other.parameter_count(), {});
    CHECK_THROWS_WITH_AS(load_checkpoint_state(saved.parent_path() / "step-000010", other, other_optimizer),
                         doctest::Contains("optimizer.bin.zst"), DataError);
  }
}

TEST_CASE("metrics: lines past the resumed step, and a torn last line, are dropped") {
  TempDir temp("train-metrics");
  const fs::path file = temp.path / "metrics.jsonl";
  {
    MetricsLog log(file);
    for (int step = 1; step <= 5; ++step) log.append({step, 1.0, 1e-3, 1.0, 1.0, 1.0, 0, {}, std::nullopt});
  }
  std::ofstream(file, std::ios::app) << "{\"step\": 6, \"lo";  // killed mid-line
  MetricsLog log(file);
  log.truncate_after(3);
  log.append({4, 2.0, 1e-3, 1.0, 1.0, 1.0, 0, {}, std::nullopt});
  std::ifstream in(file);
  std::vector<int> steps;
  for (std::string line; std::getline(in, line);) steps.push_back(nlohmann::json::parse(line)["step"]);
  CHECK(steps == std::vector<int>{1, 2, 3, 4});
}
