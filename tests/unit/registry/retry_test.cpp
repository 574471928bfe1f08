// Against a scripted HTTP server on loopback: a 503 is retried until the server answers, a 501
// (the server will never do it) is not, the error names the try count; a PUT whose answer's
// ETag is not the MD5 of the bytes sent is refused.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "registry/s3_client.hpp"

using namespace dsk::registry;

namespace {

// Answers each connection's first request with the next status of `statuses` (one request per
// connection: it closes after answering), counting the requests.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<int> statuses, std::string etag = "\"e\"")
      : statuses_(std::move(statuses)), etag_(std::move(etag)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t size = sizeof address;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
    ::listen(listener_, 8);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedServer() {
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }

 private:
  void serve() {
    for (size_t i = 0; i < statuses_.size(); ++i) {
      int connection = ::accept(listener_, nullptr, nullptr);
      if (connection < 0) return;
      std::string request;
      char buffer[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(connection, buffer, sizeof buffer);
        if (n <= 0) break;
        request.append(buffer, static_cast<size_t>(n));
      }
      ++requests_;
      std::string answer = "HTTP/1.1 " + std::to_string(statuses_[i]) +
                           " Scripted\r\nETag: " + etag_ + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      [[maybe_unused]] ssize_t sent = ::write(connection, answer.data(), answer.size());
      ::close(connection);
    }
  }
  std::vector<int> statuses_;
  std::string etag_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

Connection fast_retries(const std::string& url, int attempts) {
  Connection connection{{"KEY", "SECRET", ""}, "us-east-1", url};
  connection.attempts = attempts;
  connection.first_backoff_ms = 10;
  return connection;
}

}  // namespace

TEST_CASE("503 answers are retried with backoff until the server answers") {
  ScriptedServer server({503, 503, 200});
  S3Client client(fast_retries(server.url(), 5));
  CHECK(client.put({"models", "x"}, "bytes") == "\"e\"");
  CHECK(server.requests() == 3);
}

TEST_CASE("a 501 is not retried, and running out of tries says how many") {
  {
    ScriptedServer server({501});
    S3Client client(fast_retries(server.url(), 5));
    CHECK_THROWS_AS(client.put({"models", "x"}, "bytes"), dsk::RemoteError);
    CHECK(server.requests() == 1);
  }
  ScriptedServer server({500, 502, 504});
  S3Client client(fast_retries(server.url(), 3));
  try {
    client.put({"models", "x"}, "bytes");
    FAIL("three 5xx answers made a success");
  } catch (const dsk::RemoteError& error) {
    CHECK(std::string(error.what()).find("HTTP 504") != std::string::npos);
    CHECK(std::string(error.what()).find("after 3 tries") != std::string::npos);
  }
  CHECK(server.requests() == 3);
}

TEST_CASE("a PUT answered with another MD5 than the bytes sent is refused") {
  CHECK(md5_hex("bytes") == "4b3a6218bb3e3a7303e8a171a60fcf92");
  CHECK(md5_base64("bytes") == "SzpiGLs+OnMD6KFxpg/Pkg==");
  {
    ScriptedServer server({200}, "\"4b3a6218bb3e3a7303e8a171a60fcf92\"");
    S3Client client(fast_retries(server.url(), 1));
    CHECK(client.put({"models", "x"}, "bytes") == "\"4b3a6218bb3e3a7303e8a171a60fcf92\"");
  }
  ScriptedServer server({200}, "\"00000000000000000000000000000000\"");
  S3Client client(fast_retries(server.url(), 1));
  try {
    client.put({"models", "x"}, "bytes");
    FAIL("a wrong ETag was accepted");
  } catch (const dsk::RemoteError& error) {
    CHECK(std::string(error.what()).find("stored other bytes") != std::string::npos);
  }
}
