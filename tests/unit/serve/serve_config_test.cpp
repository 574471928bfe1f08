// dsk-serve's config: the example file reads as documented; mistakes name the key.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "serve/serve_config.hpp"

using namespace dsk;
using namespace dsk::serve;

TEST_CASE("configs/serve.example.yaml reads as documented") {
  Config config = Config::load(serve_schema(), DSK_SOURCE_DIR "/configs/serve.example.yaml", {});
  ServeSettings settings = serve_settings(config);
  REQUIRE(settings.models.size() == 2);
  CHECK(settings.models[0].name == "deepseek-chat");
  CHECK(settings.models[0].source == "registry://deepseek-chat@prod");
  CHECK(settings.models[0].fallback.fallback == "deepseek-chat-small");
  CHECK(settings.models[0].fallback.max_queue_wait == doctest::Approx(2));
  CHECK(settings.models[0].fallback.max_time_to_first_token == doctest::Approx(1.5));
  CHECK(settings.models[0].fallback.min_engaged == std::chrono::seconds(10));
  CHECK(settings.http.host == "0.0.0.0");
  CHECK(settings.http.max_body_bytes == 8u << 20);
  CHECK(settings.engine.device == "cuda");
  CHECK(settings.registry.root == "s3://models/team");
  CHECK(settings.drain_grace == std::chrono::seconds(30));
}

TEST_CASE("--model flags: names from the source, or NAME=SOURCE") {
  std::string yaml = models_yaml_from_flags({"runs/a/step-000100", "big=registry://big@prod", "registry://tiny@canary"});
  Config config = Config::from_text(serve_schema(), "", "flags", {}, {{"--model", "models", yaml, "--model"}});
  ServeSettings settings = serve_settings(config);
  REQUIRE(settings.models.size() == 3);
  CHECK(settings.models[0].name == "step-000100");
  CHECK(std::filesystem::path(settings.models[0].source).is_absolute());
  CHECK(settings.models[1].name == "big");
  CHECK(settings.models[1].source == "registry://big@prod");
  CHECK(settings.models[2].name == "tiny");
}

TEST_CASE("a bad models list is a usage error naming the entry") {
  auto settings_of = [](const std::string& text) { return serve_settings(Config::from_text(serve_schema(), text, "serve.yaml")); };
  CHECK_THROWS_WITH_AS(settings_of("models: [{name: a}]"), doctest::Contains("models[0].source"), UsageError);
  CHECK_THROWS_WITH_AS(settings_of("models: [{name: a, source: x, colour: red}]"), doctest::Contains("colour"), UsageError);
  CHECK_THROWS_WITH_AS(settings_of("models: [{name: a, source: x, fallback: b, max_queue_wait: 1s}]"),
                       doctest::Contains("not in models"), UsageError);
  CHECK_THROWS_WITH_AS(settings_of("models: [{name: a, source: x, fallback: a}]"), doctest::Contains("max_queue_wait"), UsageError);
  CHECK_THROWS_WITH_AS(settings_of("models: [{name: a, source: x}, {name: a, source: y}]"), doctest::Contains("twice"), UsageError);
  CHECK_THROWS_AS(settings_of("models: [{source: x, max_queue_wait: soon}]"), UsageError);
  CHECK_THROWS_AS(settings_of("port: 70000"), UsageError);
}
