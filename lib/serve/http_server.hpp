// dsk-serve's HTTP front: cpp-httplib (a thread pool, one connection per thread, keep-alive)
// speaking OpenAI's API over the router, the engines and the metrics.
//
//   POST /v1/completions, POST /v1/chat/completions   (API key when keys are configured)
//   GET  /v1/models
//   GET  /health   200 while the process runs
//   GET  /ready    200 when models are loaded and the server is not draining, else 503
//   GET  /metrics  Prometheus text
//
// Limits: bodies over max_body_bytes get 413; a read or write that stalls past its timeout
// closes the connection (a slow or half-closed client cannot hold a thread for ever); a full
// engine queue gets 503 with Retry-After. A streaming client that goes away has its requests
// cancelled (a failed write ends the stream; SSE comments are sent while a stream waits, so that
// a vanished client is noticed even before its first token).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "serve/api_keys.hpp"
#include "serve/metrics.hpp"
#include "serve/router.hpp"

namespace httplib {
class Server;
}

namespace dsk::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (bind() says which)
  int threads = 512;  // connections served at once (a streaming client holds one)
  size_t max_body_bytes = 8u << 20;
  std::chrono::seconds read_timeout{30};
  std::chrono::seconds write_timeout{30};
  std::chrono::seconds keep_alive_timeout{5};
  int retry_after_seconds = 1;
  std::chrono::milliseconds stream_heartbeat{2000};
};

class ApiServer {
 public:
  ApiServer(Router& router, Metrics& metrics, ApiKeys keys, HttpOptions options);
  ~ApiServer();

  // Binds the listening socket; returns the port. ResourceError when the address is taken.
  int bind();
  // Serves until stop(); returns then.
  void serve();
  // Answers /ready and new API requests with 503; running streams go on.
  void start_draining() { draining_ = true; }
  bool draining() const { return draining_; }
  void stop();
  // New keys (SIGHUP re-reads the key file); requests already admitted are not affected.
  void set_keys(ApiKeys keys);

 private:
  void install_routes();
  Router& router_;
  Metrics& metrics_;
  mutable std::mutex keys_mutex_;
  std::shared_ptr<const ApiKeys> keys_;
  HttpOptions options_;
  std::atomic<bool> draining_{false};
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace dsk::serve
