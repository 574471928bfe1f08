// dsk-finetune's config: the flat keys users write land on dsk's nested keys (model_name as a
// registry name or a path), a flat and a nested key that disagree are an error, a flag wins over a
// flat key, and the required keys are required under either name.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "finetune/finetune_config.hpp"

using namespace dsk;
using namespace dsk::finetune;

namespace {

Config load(const std::string& text, const std::vector<std::string>& overrides = {},
            const std::vector<FlagOverride>& flags = {}) {
  return Config::from_text(finetune_schema(), text, "test.yaml", overrides, flags);
}

}  // namespace

TEST_CASE("the finance example's flat keys are accepted as written and mapped") {
  Config config = load(
      "model_name: deepseek-7b\npeft_method: lora\nlora_alpha: 16\nlora_dropout: 0.1\nbatch_size: 32\n"
      "learning_rate: 3e-5\nwarmup_steps: 100\ntrain_file: data.jsonl\nnum_train_epochs: 3\n");
  const std::vector<std::string> mapped = map_flat_keys(config);
  CHECK(mapped.size() == 9);
  CHECK(mapped[0] == "model_name -> model.base (test.yaml:1)");
  CHECK(config.get_string("model.base") == "registry://deepseek-7b");
  CHECK(config.get_string("peft.method") == "lora");
  CHECK(config.get_double("lora.alpha") == 16);
  CHECK(config.get_double("lora.dropout") == doctest::Approx(0.1));
  CHECK(config.get_int("data.micro_batch") == 32);
  CHECK(config.get_double("optim.lr") == doctest::Approx(3e-5));
  CHECK(config.get_int("schedule.warmup_steps") == 100);
  CHECK(config.get_double("epochs") == 3);
  CHECK(!config.has("model_name"));
  CHECK(config.to_yaml().find("learning_rate") == std::string::npos);
}

TEST_CASE("model_name that is a path or a URL stays one") {
  Config path = load("model_name: runs/base\ntrain_file: d.jsonl\n");
  map_flat_keys(path);
  CHECK(path.get_string("model.base").ends_with("/runs/base"));
  Config url = load("model_name: registry://tiny@prod\ntrain_file: d.jsonl\n");
  map_flat_keys(url);
  CHECK(url.get_string("model.base") == "registry://tiny@prod");
}

TEST_CASE("a flat and a nested key that disagree are an error; a flag wins; required keys") {
  Config both = load("model_name: base\nlora_r: 4\nlora:\n  r: 8\ntrain_file: d.jsonl\n");
  CHECK_THROWS_WITH_AS(map_flat_keys(both), doctest::Contains("lora_r and lora.r"), UsageError);
  Config same = load("model_name: base\nlora_r: 8\nlora:\n  r: 8\ntrain_file: d.jsonl\n");
  CHECK_NOTHROW(map_flat_keys(same));
  Config flagged = load("model_name: base\ntrain_file: d.jsonl\n", {}, {{"--base", "model.base", "\"other\"", "other"}});
  map_flat_keys(flagged);
  CHECK(flagged.get_string("model.base").ends_with("other"));
  Config no_base = load("train_file: d.jsonl\n");
  CHECK_THROWS_WITH_AS(map_flat_keys(no_base), doctest::Contains("model.base"), UsageError);
  Config no_data = load("model_name: base\n");
  CHECK_THROWS_WITH_AS(map_flat_keys(no_data), doctest::Contains("data.train"), UsageError);
  CHECK_THROWS_AS(load("lora_r: 0\n"), UsageError);  // checked as lora.r is
  CHECK_THROWS_AS(load("peft_method: ia3\n"), UsageError);
}
