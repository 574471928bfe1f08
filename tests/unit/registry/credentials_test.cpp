#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <unistd.h>

#include "core/error.hpp"
#include "registry/credentials.hpp"

using namespace dsk::registry;

namespace {

struct FakeEnvironment {
  std::map<std::string, std::string> values;
  std::optional<std::string> operator()(const char* name) const {
    auto found = values.find(name);
    if (found == values.end()) return std::nullopt;
    return found->second;
  }
};

std::filesystem::path write_credentials(const std::string& text) {
  auto path = std::filesystem::temp_directory_path() /
              ("dsk-registry-credentials-" + std::to_string(::getpid()));
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("profiles are read as the AWS CLI reads them") {
  auto file = write_credentials(
      "# comment\n[default]\naws_access_key_id = AKDEF\naws_secret_access_key=SDEF\n"
      "; another\n[work]\n aws_access_key_id = AKWORK \naws_secret_access_key = SWORK\n"
      "region = eu-west-1\n");
  FakeEnvironment env{{{"AWS_SHARED_CREDENTIALS_FILE", file.string()}}};
  auto fallback = resolve_connection({}, env);
  CHECK(fallback.credentials.access_key_id == "AKDEF");
  CHECK(fallback.region == "us-east-1");

  ConnectionFlags work;
  work.profile = "work";
  auto chosen = resolve_connection(work, env);
  CHECK(chosen.credentials.access_key_id == "AKWORK");
  CHECK(chosen.credentials.secret_access_key == "SWORK");
  CHECK(chosen.region == "eu-west-1");

  env.values["AWS_PROFILE"] = "work";
  CHECK(resolve_connection({}, env).credentials.access_key_id == "AKWORK");

  ConnectionFlags missing;
  missing.profile = "nope";
  CHECK_THROWS_AS(resolve_connection(missing, env), dsk::UsageError);
  std::filesystem::remove(file);
}

TEST_CASE("flags beat the environment, which beats the file") {
  auto file = write_credentials("[default]\naws_access_key_id=AKFILE\naws_secret_access_key=S\n");
  FakeEnvironment env{{{"AWS_SHARED_CREDENTIALS_FILE", file.string()},
                       {"AWS_ACCESS_KEY_ID", "AKENV"},
                       {"AWS_SECRET_ACCESS_KEY", "SENV"},
                       {"AWS_SESSION_TOKEN", "TENV"},
                       {"AWS_REGION", "ap-south-1"},
                       {"AWS_ENDPOINT_URL", "http://127.0.0.1:4568"}}};
  auto from_env = resolve_connection({}, env);
  CHECK(from_env.credentials.access_key_id == "AKENV");
  CHECK(from_env.credentials.session_token == "TENV");
  CHECK(from_env.region == "ap-south-1");
  CHECK(from_env.endpoint_url == "http://127.0.0.1:4568");

  ConnectionFlags flags;
  flags.access_key_id = "AKFLAG";
  flags.secret_access_key = "SFLAG";
  flags.region = "us-west-2";
  auto from_flags = resolve_connection(flags, env);
  CHECK(from_flags.credentials.access_key_id == "AKFLAG");
  CHECK(from_flags.credentials.session_token.empty());  // a pair is never mixed
  CHECK(from_flags.region == "us-west-2");
  std::filesystem::remove(file);
}

TEST_CASE("no credentials anywhere is a usage error that shows no secret") {
  FakeEnvironment env{{{"AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"}}};
  CHECK_THROWS_AS(resolve_connection({}, env), dsk::UsageError);
  ConnectionFlags half;
  half.access_key_id = "AKONLY";
  try {
    resolve_connection(half, env);
    FAIL("expected an error");
  } catch (const dsk::UsageError& error) {
    CHECK(std::string(error.what()).find("AWS_SECRET_ACCESS_KEY") != std::string::npos);
  }
}

TEST_CASE("a malformed credentials file names the line") {
  auto file = write_credentials("[default]\nthis line has no equals sign\n");
  try {
    read_profiles(file);
    FAIL("expected an error");
  } catch (const dsk::DataError& error) {
    CHECK(std::string(error.what()).find(":2:") != std::string::npos);
  }
  std::filesystem::remove(file);
}
