// Config schema: defaults, file layering, --set, and the errors that name file, line and key.
#include <doctest/doctest.h>

#include <filesystem>
#include <functional>

#include "core/config.hpp"
#include "core/error.hpp"

using namespace dsk;

namespace {
Schema example_schema() {
  Schema schema;
  schema.integer("data.seq_len", 1024, "tokens per sequence").minimum = 1;
  schema.number("optim.lr", 3e-4, "peak learning rate");
  schema.boolean("eval.enabled", true, "run evaluation");
  schema.choice("schedule.kind", "cosine", {"cosine", "linear", "constant", "wsd"}, "learning-rate schedule");
  schema.string_list("data.train", {}, "training shard dirs");
  schema.string("run.name", std::nullopt, "run name");
  schema.tree("model.config", "inline HF config.json fields");
  return schema;
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("defaults apply when the file says nothing") {
  Schema schema = example_schema();
  Config config = Config::from_text(schema, "", "empty.yaml");
  CHECK(config.get_int("data.seq_len") == 1024);
  CHECK(config.get_double("optim.lr") == doctest::Approx(3e-4));
  CHECK(config.get_bool("eval.enabled"));
  CHECK(config.get_string("schedule.kind") == "cosine");
  CHECK_FALSE(config.has("run.name"));
}

TEST_CASE("file values and then --set overrides win in order") {
  Schema schema = example_schema();
  Config config = Config::from_text(schema, "optim:\n  lr: 1e-3\ndata:\n  train: shards/a\n", "a.yaml",
                                    {"optim.lr=2e-3", "data.seq_len=64", "model.config.hidden_size=32"});
  CHECK(config.get_double("optim.lr") == doctest::Approx(2e-3));
  CHECK(config.get_int("data.seq_len") == 64);
  CHECK(config.get_strings("data.train") == std::vector<std::string>{"shards/a"});
  CHECK(config.get_tree("model.config")["hidden_size"].as<int>() == 32);
}

TEST_CASE("the printed config reads back to the same values") {
  Schema schema = example_schema();
  Config first = Config::from_text(schema, "run:\n  name: tiny\nschedule:\n  kind: wsd\n", "a.yaml", {"optim.lr=0.0005"});
  Config second = Config::from_text(schema, first.to_yaml(), "printed.yaml");
  CHECK(second.to_yaml() == first.to_yaml());
  CHECK(second.get_string("run.name") == "tiny");
  CHECK(second.get_double("optim.lr") == doctest::Approx(0.0005));
}

TEST_CASE("the printed config keeps quoted scalars quoted and control characters escaped") {
  Schema schema = example_schema();
  Config config = Config::from_text(schema, "run:\n  name: \"a\\r\"\nmodel:\n  config: {name: '123', n: 123}\n", "q.yaml");
  Config again = Config::from_text(schema, config.to_yaml(), "printed");
  CHECK(again.get_string("run.name") == "a\r");  // a raw CR before the newline was read as part of it
  CHECK(again.get_tree("model.config")["name"].Tag() == "!");  // '123' was printed as the number 123
  CHECK(again.get_tree("model.config")["n"].Tag() == "?");
  // "key=" inside a tree is null, as "key:" in a file, before and after printing (it printed as "").
  Config empty = Config::from_text(schema, "", "e.yaml", {"model.config.q_lora_rank=", "run.name="});
  CHECK(empty.get_tree("model.config")["q_lora_rank"].IsNull());
  CHECK(Config::from_text(schema, empty.to_yaml(), "printed").get_tree("model.config")["q_lora_rank"].IsNull());
  CHECK(empty.get_string("run.name").empty());
}

TEST_CASE("an unknown key names the file, the line and a suggestion") {
  Schema schema = example_schema();
  std::string message = error_of([&] { Config::from_text(schema, "optim:\n  lr: 1\n  lrr: 2\n", "train.yaml"); });
  CHECK(message.find("train.yaml:3") != std::string::npos);
  CHECK(message.find("unknown key 'optim.lrr'") != std::string::npos);
  CHECK(message.find("did you mean 'optim.lr'") != std::string::npos);
}

TEST_CASE("a wrong type names the key and what was expected") {
  Schema schema = example_schema();
  std::string message = error_of([&] { Config::from_text(schema, "data:\n  seq_len: lots\n", "t.yaml"); });
  CHECK(message.find("t.yaml:2") != std::string::npos);
  CHECK(message.find("'data.seq_len' expects an integer") != std::string::npos);
  CHECK(error_of([&] { Config::from_text(schema, "eval:\n  enabled: maybe\n", "t.yaml"); }).find("boolean") !=
        std::string::npos);
  CHECK(error_of([&] { Config::from_text(schema, "optim: 3\n", "t.yaml"); }).find("section") != std::string::npos);
}

TEST_CASE("ranges and choices are enforced, also on --set") {
  Schema schema = example_schema();
  CHECK(error_of([&] { Config::from_text(schema, "", "t.yaml", {"data.seq_len=0"}); }).find("at least 1") !=
        std::string::npos);
  CHECK(error_of([&] { Config::from_text(schema, "schedule:\n  kind: step\n", "t.yaml"); }).find("one of") !=
        std::string::npos);
  CHECK(error_of([&] { Config::from_text(schema, "", "t.yaml", {"nope=1"}); }).find("--set nope=1") !=
        std::string::npos);
  CHECK(error_of([&] { Config::from_text(schema, "", "t.yaml", {"=1"}); }).find("key.path=value") !=
        std::string::npos);
}

TEST_CASE("YAML syntax errors carry the line") {
  Schema schema = example_schema();
  std::string message = error_of([&] { Config::from_text(schema, "optim:\n  lr: [1, 2\n", "bad.yaml"); });
  CHECK(message.find("bad.yaml:") != std::string::npos);
  CHECK(message.find("YAML syntax error") != std::string::npos);
}

TEST_CASE("a key that is itself a mapping is a usage error naming the file and line (once a bare YAML error, exit 3)") {
  Schema schema = example_schema();
  std::string message = error_of([&] { Config::from_text(schema, "optim:\n  lr: 1\n{a: 1}: 2\n", "bad.yaml"); });
  CHECK(message == "bad.yaml:3: a key must be a plain name, not a mapping");
  message = error_of([&] { Config::from_text(schema, "optim:\n  [lr]: 1\n", "bad.yaml"); });
  CHECK(message == "bad.yaml:2: a key must be a plain name, not a list");
}

TEST_CASE("a config file that cannot be read is a usage error naming it (exit 2, not bad data)") {
  Schema schema = example_schema();
  std::string message = error_of([&] { Config::load(schema, "no-such-dir/missing.yaml", {}); });
  CHECK(message.find("no-such-dir/missing.yaml") != std::string::npos);
}

TEST_CASE("where(): the file and line, or the --set, that gave a key its value") {
  Schema schema = example_schema();
  Config config = Config::from_text(schema, "optim:\n  lr: 0.1\nrun:\n  name: x\n", "c.yaml", {"run.name=y"});
  CHECK(config.where("optim.lr") == "c.yaml:2");
  CHECK(config.where("run.name") == "--set run.name=y");
  CHECK(config.where("data.seq_len").find("c.yaml") == 0);  // a default: the source, and that it is one
}

TEST_CASE("paths in a config file are relative to the file; from --set, to the working directory") {
  Schema schema;
  schema.path("run.dir", "runs/default", "run directory");
  schema.path_list("data.train", {}, "shards");
  schema.path("model.init_from", std::nullopt, "checkpoint or registry URL");
  const std::string text = "run:\n  dir: ../runs/a\ndata:\n  train: [shards, /abs/shards, \"-\"]\n"
                           "model:\n  init_from: registry://tiny@prod\n";
  Config config = Config::from_text(schema, text, "configs/train.yaml", {}, {}, "configs");
  CHECK(config.get_string("run.dir") == "runs/a");
  CHECK(config.get_strings("data.train") == std::vector<std::string>{"configs/shards", "/abs/shards", "-"});
  CHECK(config.get_string("model.init_from") == "registry://tiny@prod");

  Config overridden = Config::from_text(schema, text, "configs/train.yaml", {"run.dir=elsewhere"},
                                        {{"--data", "data.train", "\"mine\"", "mine"}}, "configs");
  CHECK(overridden.get_string("run.dir") == "elsewhere");
  CHECK(overridden.get_strings("data.train") == std::vector<std::string>{"mine"});

  // The printed config names them absolute, so it reads back the same from any directory.
  const std::string cwd = std::filesystem::current_path().string();
  Config printed = Config::from_text(schema, config.to_yaml(), "/tmp/elsewhere/printed.yaml", {}, {}, "/tmp/elsewhere");
  CHECK(printed.get_string("run.dir") == cwd + "/runs/a");
  CHECK(printed.get_strings("data.train") == std::vector<std::string>{cwd + "/configs/shards", "/abs/shards", "-"});
  CHECK(printed.get_string("model.init_from") == "registry://tiny@prod");
}

TEST_CASE("a flag override is named as the flag, and null unsets an optional key") {
  Schema schema = example_schema();
  std::string message = error_of([&] {
    Config::from_text(schema, "", "t.yaml", {}, {{"--seq-len", "data.seq_len", "\"0\"", "0"}});
  });
  CHECK(message == "--seq-len 0: key 'data.seq_len' must be at least 1, got 0");
  Config unset = Config::from_text(schema, "model:\n  config: {hidden_size: 8}\nrun:\n  name: x\n", "t.yaml",
                                   {"model.config=null", "run.name=null"});
  CHECK_FALSE(unset.has("model.config"));
  CHECK_FALSE(unset.has("run.name"));
  CHECK(error_of([&] { Config::from_text(schema, "", "t.yaml", {"data.seq_len=null"}); }).find("cannot be empty") !=
        std::string::npos);
}

TEST_CASE("numeric_value_problem: the type, then the range, with the value as given") {
  KeySpec count{"n", ValueType::integer};
  count.minimum = 1;
  count.maximum = 2147483647;
  CHECK(numeric_value_problem(count, "5") == std::nullopt);
  CHECK(numeric_value_problem(count, "0") == "must be at least 1, got 0");
  CHECK(numeric_value_problem(count, "3000000000") == "must be at most 2147483647, got 3000000000");
  CHECK(numeric_value_problem(count, "x") == "expects an integer, got 'x'");
  KeySpec share{"p", ValueType::number};
  share.minimum = 0;
  share.maximum = 1;
  CHECK(numeric_value_problem(share, "0.5") == std::nullopt);
  CHECK(numeric_value_problem(share, "1.5") == "must be at most 1, got 1.5");
  CHECK(numeric_value_problem(share, "nan") == "expects a number, got 'nan'");
}
