// registry:// and s3:// model URLs, and open_model's cache keyed by the manifest's sha256,
// against s3rver on loopback.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/sha256.hpp"
#include "loopback_s3.hpp"
#include "registry/alias_store.hpp"
#include "registry/fetch_cache.hpp"

using namespace dsk::registry;
using namespace dsk::registry::testing;

TEST_CASE("model URLs name a root, a model and a version or alias") {
  ModelRef ref = parse_model_url("registry://vision@prod", "s3://models/team");
  CHECK(ref.root == "s3://models/team");
  CHECK(ref.name == "vision");
  CHECK(ref.ref == "prod");
  CHECK(parse_model_url("registry://vision", "s3://models").ref.empty());
  ref = parse_model_url("s3://models/team/a/vision/1.0/manifest.yaml", "");
  CHECK(ref.root == "s3://models/team/a");
  CHECK(ref.name == "vision");
  CHECK(ref.ref == "1.0");
  ref = parse_model_url("s3://models/vision/1.0/", "");
  CHECK(ref.root == "s3://models");
  CHECK(ref.name == "vision");
  for (const char* bad : {"registry://", "registry://vision@", "registry://a/b@1", "s3://models/vision"})
    CHECK_THROWS_AS(parse_model_url(bad, "s3://models"), dsk::UsageError);
  CHECK_THROWS_AS(parse_model_url("registry://vision@1.0", ""), dsk::UsageError);
  CHECK(is_model_url("registry://x"));
  CHECK(!is_model_url("./ckpt"));
}

TEST_CASE("open_model downloads once into the cache and resolves aliases by weight") {
  REQUIRE_S3RVER();
  LoopbackS3 server;
  Connection connection = connection_to(server, "S3RVER");
  S3Client client(connection);
  REQUIRE(server.ready(client));
  auto scratch = std::filesystem::temp_directory_path() / ("dsk-cache-" + std::to_string(::getpid()));
  std::filesystem::create_directories(scratch / "ckpt");
  dsk::write_file_atomic(scratch / "ckpt/config.json", "{\"model_type\": \"qwen2\"}");
  dsk::write_file_atomic(scratch / "ckpt/model.safetensors", std::string(3 << 20, 'w'));
  PublishOptions publish;
  for (const char* version : {"1.0", "1.1"})
    publish_version(connection, "s3://models", "vision", version, scratch / "ckpt", publish);
  set_alias(client, "s3://models", "vision", "prod", {{"1.0", 90}, {"1.1", 10}});

  OpenOptions options;
  options.registry_root = "s3://models";
  options.cache_dir = scratch / "cache";
  options.fetch.part_size = 1 << 20;  // three parallel ranges
  options.draw = 0.95;                // lands on 1.1 (weights 90 + 10)
  OpenedModel opened = open_model(connection, "registry://vision@prod", options);
  CHECK(opened.version == "1.1");
  CHECK(!opened.cached);
  CHECK(opened.manifest_sha256 == dsk::sha256_hex(*client.get({"models", "vision/1.1/manifest.yaml"})));
  CHECK(opened.directory == scratch / "cache" / opened.manifest_sha256);
  CHECK(dsk::read_file(opened.directory / "model.safetensors") == std::string(3 << 20, 'w'));

  options.draw = 0.5;  // 1.0
  CHECK(open_model(connection, "registry://vision", options).version == "1.0");  // prod by default
  OpenedModel again = open_model(connection, "s3://models/vision/1.1", options);
  CHECK(again.cached);
  CHECK(again.directory == opened.directory);
  CHECK_THROWS_AS(open_model(connection, "registry://vision@9.9", options), dsk::UsageError);
  std::filesystem::remove_all(scratch);
}
