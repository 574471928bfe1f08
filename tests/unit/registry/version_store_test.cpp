// Publishing and fetching versions (the registry layout) against s3rver on loopback.
#include <doctest/doctest.h>

#include <fstream>
#include <thread>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/sha256.hpp"
#include "loopback_s3.hpp"
#include "registry/alias_store.hpp"
#include "registry/version_store.hpp"

using namespace dsk::registry;
using namespace dsk::registry::testing;

TEST_CASE("a published version reads back verified; collisions and corruption are refused") {
  REQUIRE_S3RVER();
  LoopbackS3 server;
  Connection connection = connection_to(server, "S3RVER");
  S3Client client(connection);
  REQUIRE(server.ready(client));
  auto scratch = std::filesystem::temp_directory_path() /
                 ("dsk-publish-" + std::to_string(::getpid()));
  std::filesystem::create_directories(scratch / "ckpt/tokenizer");
  dsk::write_file_atomic(scratch / "ckpt/config.json", "{\"model_type\": \"llama\"}");
  dsk::write_file_atomic(scratch / "ckpt/tokenizer/vocab.txt", std::string(6 << 20, 'v'));
  PublishOptions options;
  options.multipart.part_size = 5 << 20;
  options.multipart.concurrency = 2;
  PublishOptions force = options;
  force.force = true;
  const std::string root = "s3://models/team";

  Published published =
      publish_version(connection, root, "vision", "1.0", scratch / "ckpt", options);
  CHECK(published.manifest_url == "s3://models/team/vision/1.0/manifest.yaml");
  CHECK(published.manifest_sha256 ==
        dsk::sha256_hex(*client.get({"models", "team/vision/1.0/manifest.yaml"})));
  CHECK_THROWS_AS(publish_version(connection, root, "vision", "1.0", scratch / "ckpt", options),
                  dsk::UsageError);
  publish_version(connection, root, "vision", "1.0", scratch / "ckpt", force);

  Manifest fetched = fetch_version(connection, root, "vision", "1.0", scratch / "out");
  CHECK(fetched.files.size() == 2);
  CHECK(dsk::read_file(scratch / "out/tokenizer/vocab.txt") == std::string(6 << 20, 'v'));
  CHECK(std::filesystem::exists(scratch / "out/manifest.yaml"));
  CHECK_THROWS_AS(fetch_version(connection, root, "vision", "9.9", scratch / "none"),
                  dsk::UsageError);

  client.put({"models", "team/vision/1.0/config.json"}, "tampered");
  CHECK_THROWS_AS(fetch_version(connection, root, "vision", "1.0", scratch / "bad"),
                  dsk::DataError);
  client.put({"models", "team/vision/1.0/manifest.yaml"}, "files: [oops");
  CHECK_THROWS_AS(fetch_version(connection, root, "vision", "1.0", scratch / "bad"),
                  dsk::DataError);
  std::filesystem::remove_all(scratch);
}

TEST_CASE("manifests round-trip and bad ones name the problem") {
  Manifest manifest{"vision", "1.0", "2026-11-22T18:40:00Z",
                    {{"a/b.bin", 3, std::string(64, 'a')}}, "llama", "org/base", 42, {}};
  Manifest again = parse_manifest(manifest_to_yaml(manifest), "m.yaml");
  CHECK(again.version == "1.0");
  REQUIRE(again.files.size() == 1);
  CHECK(again.files[0].path == "a/b.bin");
  CHECK(again.files[0].size == 3);
  CHECK(again.model_type == "llama");
  CHECK(again.base_model == "org/base");
  CHECK(again.parameters == 42);
  for (const char* bad : {"name: x\nversion: '1'\n", "[1]",
                          "name: x\nversion: '1'\nfiles: [{path: ../x, size: 1, sha256: "
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}]\n",
                          "name: x\nversion: '1'\nfiles: [{path: x, size: 1, sha256: ab}]\n",
                          "files: []\n"})
    CHECK_THROWS_AS(parse_manifest(bad, "m.yaml"), dsk::DataError);
}


TEST_CASE("two concurrent alias writers both keep their change") {
  REQUIRE_S3RVER();
  LoopbackS3 server;
  Connection connection = connection_to(server, "S3RVER");
  S3Client client(connection);
  REQUIRE(server.ready(client));
  const std::string root = "s3://models";
  for (const char* version : {"1.0", "1.1"})
    client.put({"models", std::string("vision/") + version + "/manifest.yaml"}, "x");

  auto writer = [&](std::string alias, std::vector<WeightedVersion> versions) {
    S3Client own(connection);
    set_alias(own, root, "vision", alias, versions, {8, std::chrono::milliseconds(150)});
  };
  std::thread first(writer, "prod", std::vector<WeightedVersion>{{"1.0", 90}, {"1.1", 10}});
  std::thread second(writer, "canary", std::vector<WeightedVersion>{{"1.1", 100}});
  first.join();
  second.join();
  AliasTable table = read_aliases(client, root, "vision");
  CHECK(table["prod"] == std::vector<WeightedVersion>{{"1.0", 90}, {"1.1", 10}});
  CHECK(table["canary"] == std::vector<WeightedVersion>{{"1.1", 100}});
  CHECK_THROWS_AS(set_alias(client, root, "vision", "prod", {{"2.0", 100}}), dsk::UsageError);
}
