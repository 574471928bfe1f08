// The S3 client against a real S3-compatible server on loopback: s3rver (npm, pinned in
// scripts/deps/npm-registry.txt) with its fixed credentials S3RVER / S3RVER. s3rver 3.7.1 checks
// the access key id but, despite its docs, not SigV4 signatures (its authentication.js accepts
// any V4 signature), so the signer's correctness rests on the AWS vectors in sigv4_test.cpp.
// The test is skipped with a message when s3rver is not installed.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/error.hpp"
#include "registry/multipart.hpp"
#include "registry/s3_client.hpp"

using namespace dsk::registry;

namespace {

const std::filesystem::path s3rver_js =
    std::filesystem::path(DSK_SOURCE_DIR) / ".deps/npm/node_modules/s3rver/bin/s3rver.js";

// Runs s3rver on 127.0.0.1 with bucket "models" until destroyed. Node needs OpenSSL's legacy
// provider for s3rver's continuation tokens (it encrypts them with a cipher OpenSSL 3 retired).
class LoopbackS3 {
 public:
  LoopbackS3() {
    port_ = 20000 + static_cast<int>(::getpid() % 20000);
    dir_ = std::filesystem::temp_directory_path() / ("dsk-s3rver-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    pid_ = ::fork();
    if (pid_ == 0) {
      std::string port = std::to_string(port_), dir = dir_.string(), js = s3rver_js.string();
      ::execlp("node", "node", "--openssl-legacy-provider", js.c_str(), "-d", dir.c_str(), "-a", "127.0.0.1", "-p",
               port.c_str(), "-s", "--configure-bucket", "models", nullptr);
      ::_exit(127);
    }
  }
  ~LoopbackS3() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Waits (bounded) until the server answers a signed HEAD.
  bool ready(S3Client& client) const {
    for (int attempt = 0; attempt < 100; ++attempt) {
      try {
        client.head({"models", "probe"});
        return true;
      } catch (const dsk::RemoteError&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    return false;
  }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
  std::filesystem::path dir_;
};

Connection connection_to(const LoopbackS3& server, const std::string& key_id) {
  return Connection{{key_id, "S3RVER", ""}, "us-east-1", server.url()};
}

}  // namespace

TEST_CASE("put, head, ranged get and delete against s3rver") {
  if (!std::filesystem::exists(s3rver_js)) {
    MESSAGE("s3rver is not installed (scripts/install-deps): skipped");
    return;
  }
  LoopbackS3 server;
  S3Client client(connection_to(server, "S3RVER"));
  REQUIRE(server.ready(client));

  ObjectAddress object{"models", "deepseek-vision/1.0/weights part.bin"};
  std::string bytes = "0123456789abcdefghij";
  CHECK(!client.put(object, bytes).empty());
  auto info = client.head(object);
  REQUIRE(info.has_value());
  CHECK(info->size == 20);
  CHECK(client.get(object) == bytes);
  CHECK(client.get(object, std::pair{5LL, 9LL}) == "56789");
  client.remove(object);
  CHECK(!client.head(object).has_value());
  CHECK(!client.get(object).has_value());

  S3Client wrong(connection_to(server, "NOT-A-KEY"));
  try {
    wrong.put(object, bytes);
    FAIL("an unknown access key was accepted");
  } catch (const dsk::RemoteError& error) {
    std::string message = error.what();
    CHECK(message.find("InvalidAccessKeyId") != std::string::npos);
    CHECK(message.find("HTTP 403") != std::string::npos);
    CHECK(message.find("S3RVER") == std::string::npos);  // the secret is never shown
  }
}

TEST_CASE("listing follows continuation tokens across pages") {
  if (!std::filesystem::exists(s3rver_js)) {
    MESSAGE("s3rver is not installed (scripts/install-deps): skipped");
    return;
  }
  LoopbackS3 server;
  S3Client client(connection_to(server, "S3RVER"));
  REQUIRE(server.ready(client));
  for (int i = 0; i < 7; ++i) client.put({"models", "m/1.0/file" + std::to_string(i)}, "x");
  client.put({"models", "other/file"}, "y");
  auto listed = client.list({"models", "m/"}, 3);
  REQUIRE(listed.size() == 7);
  CHECK(listed.front().key == "m/1.0/file0");
  CHECK(listed.back().key == "m/1.0/file6");
  CHECK(listed.front().size == 1);
}

TEST_CASE("a file spanning three parts uploads from parallel threads and reads back whole") {
  if (!std::filesystem::exists(s3rver_js)) {
    MESSAGE("s3rver is not installed (scripts/install-deps): skipped");
    return;
  }
  LoopbackS3 server;
  S3Client client(connection_to(server, "S3RVER"));
  REQUIRE(server.ready(client));
  auto file = std::filesystem::temp_directory_path() /
              ("dsk-multipart-" + std::to_string(::getpid()));
  std::string bytes;
  for (int i = 0; i < (11 << 20); ++i) bytes += static_cast<char>((i * 7 + i / 4099) & 0xff);
  std::ofstream(file, std::ios::binary) << bytes;
  ObjectAddress object{"models", "m/1.0/model.safetensors"};
  upload_multipart(connection_to(server, "S3RVER"), file, object, {5 << 20, 3});
  CHECK(client.head(object)->size == static_cast<long long>(bytes.size()));
  CHECK(client.get(object) == bytes);
  CHECK(client.get(object, std::pair{(5LL << 20) - 2, (5LL << 20) + 1}) ==
        bytes.substr((5 << 20) - 2, 4));

  ObjectAddress refused{"no-such-bucket", "x"};
  CHECK_THROWS_AS(upload_multipart(connection_to(server, "S3RVER"), file, refused, {5 << 20, 2}),
                  dsk::RemoteError);
  std::filesystem::remove(file);
}

TEST_CASE("S3 XML errors are summarised, anything else is not") {
  CHECK(s3_error_summary("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
                         "<Message>gone</Message></Error>") == "NoSuchKey: gone");
  CHECK(s3_error_summary("not xml").empty());
  CHECK(s3_error_summary("<Other/>").empty());
}

TEST_CASE("a list page is read from ListObjectsV2 XML") {
  ListPage page = parse_list_page(
      "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t1"
      "</NextContinuationToken><Contents><Key>a/b</Key><Size>12</Size><ETag>\"e\"</ETag>"
      "</Contents></ListBucketResult>");
  REQUIRE(page.objects.size() == 1);
  CHECK(page.objects[0].key == "a/b");
  CHECK(page.objects[0].size == 12);
  CHECK(page.next_token == "t1");
  CHECK_THROWS_AS(parse_list_page("<Error/>"), dsk::RemoteError);
}
