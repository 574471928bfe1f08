// A real S3-compatible server for tests: s3rver (npm, pinned in
// scripts/deps/npm-registry.txt) on 127.0.0.1 with its fixed credentials S3RVER / S3RVER.
// s3rver 3.7.1 checks the access key id but, despite its docs, not SigV4 signatures (its
// authentication.js accepts any V4 signature), so the signer's correctness rests on the AWS
// vectors in sigv4_test.cpp.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/error.hpp"
#include "registry/s3_client.hpp"

namespace dsk::registry::testing {

inline const std::filesystem::path s3rver_js =
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
      } catch (const RemoteError&) {
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

inline Connection connection_to(const LoopbackS3& server, const std::string& key_id) {
  return Connection{{key_id, "S3RVER", ""}, "us-east-1", server.url()};
}


}  // namespace dsk::registry::testing

// Skips the calling test case (with a message) when s3rver is not installed.
#define REQUIRE_S3RVER()                                                          \
  if (!std::filesystem::exists(dsk::registry::testing::s3rver_js)) {              \
    MESSAGE("s3rver is not installed (scripts/install-deps): skipped");           \
    return;                                                                       \
  }
