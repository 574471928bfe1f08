// The pieces of resume and lifecycle that need no server: the upload state file, its path and
// the cleaning of its directory, S3's multipart ETag, lifecycle XML, and manifest creation times.
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "core/error.hpp"
#include "registry/lifecycle.hpp"
#include "registry/multipart.hpp"
#include "registry/prune.hpp"

using namespace dsk::registry;

TEST_CASE("the upload state file round-trips and names a bad file") {
  UploadState state{"id-1", "s3://models/a/b.bin", "/data/b.bin", 123, std::string(64, 'f'), 5 << 20,
                    {{1, {"\"etag-1\"", "0cc175b9c0f1b6a831c399e269772661"}}, {3, {"\"etag-3\"", "md5-3"}}}};
  UploadState again = parse_upload_state(upload_state_to_yaml(state), "state.yaml");
  CHECK(again.upload_id == "id-1");
  CHECK(again.object == state.object);
  CHECK(again.size == 123);
  CHECK(again.sha256 == state.sha256);
  CHECK(again.part_size == 5 << 20);
  REQUIRE(again.parts.size() == 2);
  CHECK(again.parts[1].etag == "\"etag-1\"");
  CHECK(again.parts[1].md5 == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(again.parts[3].md5 == "md5-3");
  CHECK_THROWS_AS(parse_upload_state("parts: [", "state.yaml"), dsk::DataError);
  CHECK_THROWS_AS(parse_upload_state("a: 1\n", "state.yaml"), dsk::DataError);

  // An older dsk's file (bare ETags, mtime, no sha256) still names its upload, to be aborted.
  UploadState old = parse_upload_state("upload_id: id-0\nsize: 9\nmtime: 4\nparts:\n  1: \"\\\"e\\\"\"\n", "old.yaml");
  CHECK(old.upload_id == "id-0");
  CHECK(old.sha256.empty());
  CHECK(old.parts[1].etag == "\"e\"");

  Connection connection{{"k", "s", ""}, "us-east-1", "http://127.0.0.1:1"};
  auto path = upload_state_path("/state", connection, {"models", "a/b.bin"}, 5 << 20);
  CHECK(path.parent_path() == "/state");
  CHECK(path == upload_state_path("/state", connection, {"models", "a/b.bin"}, 5 << 20));
  CHECK(path != upload_state_path("/state", connection, {"models", "a/b.bin"}, 6 << 20));
  CHECK(path != upload_state_path("/state", connection, {"models", "a/c.bin"}, 5 << 20));
}

TEST_CASE("S3's multipart ETag is the MD5 of the parts' binary MD5s and their count") {
  // md5("a"), md5("b"); the expected value from Python's hashlib: md5(md5(a) + md5(b)) + "-2"
  CHECK(multipart_etag({"0cc175b9c0f1b6a831c399e269772661", "92eb5ffee6ae2fec3ad71c777531578f"}) ==
        "96e024ba2074fe77e8e965ba43a704be-2");
  CHECK(multipart_etag({md5_hex("a")}) == md5_hex(std::string("\x0c\xc1\x75\xb9\xc0\xf1\xb6\xa8\x31\xc3\x99\xe2\x69\x77\x26\x61", 16)) + "-1");
}

TEST_CASE("temporary state files of processes that are gone are removed once a minute old") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("dsk-state-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);  // reaped: its pid names no process now
  auto plant = [&](const std::string& name, std::chrono::seconds age) {
    std::ofstream(dir / name) << "upload_id: half";
    fs::last_write_time(dir / name, fs::file_time_type::clock::now() - age);
    return dir / name;
  };
  using std::chrono::seconds;
  fs::path stale = plant("a.yaml.tmp." + std::to_string(child), seconds(600));
  fs::path fresh = plant("b.yaml.tmp." + std::to_string(child), seconds(1));
  fs::path live = plant("c.yaml.tmp." + std::to_string(::getpid()), seconds(600));
  fs::path state = plant("d.yaml", seconds(600));
  fs::path other = plant("e.yaml.tmp.x1", seconds(600));
  CHECK(remove_stale_temporaries(dir) == 1);
  CHECK(!fs::exists(stale));
  CHECK(fs::exists(fresh));  // perhaps a live process of another host sharing the directory
  CHECK(fs::exists(live));
  CHECK(fs::exists(state));
  CHECK(fs::exists(other));
  CHECK(remove_stale_temporaries(dir, seconds(0)) == 1);
  CHECK(!fs::exists(fresh));
  CHECK(remove_stale_temporaries(dir / "missing") == 0);
  fs::remove_all(dir);
}

TEST_CASE("lifecycle rules round-trip through S3's XML") {
  std::vector<LifecycleRule> rules{{"dsk-registry-team", "team/", true, 0, 7},
                                   {"old", "scratch/", false, 30, 0}};
  std::vector<LifecycleRule> again = parse_lifecycle(lifecycle_to_xml(rules));
  REQUIRE(again.size() == 2);
  CHECK(again[0].id == "dsk-registry-team");
  CHECK(again[0].prefix == "team/");
  CHECK(again[0].enabled);
  CHECK(again[0].abort_incomplete_days == 7);
  CHECK(again[0].expire_days == 0);
  CHECK(!again[1].enabled);
  CHECK(again[1].expire_days == 30);
  CHECK_THROWS_AS(parse_lifecycle("<Error/>"), dsk::RemoteError);
}

TEST_CASE("manifest creation times parse as UTC") {
  auto time = parse_utc_time("1970-01-02T00:00:01Z", "m.yaml");
  CHECK(std::chrono::system_clock::to_time_t(time) == 86401);
  CHECK_THROWS_AS(parse_utc_time("yesterday", "m.yaml"), dsk::DataError);
  CHECK_THROWS_AS(parse_utc_time("2026-11-22T18:40:00", "m.yaml"), dsk::DataError);
}
