#include "serve/http_server.hpp"

#include <httplib.h>

#include <sys/socket.h>

#include <ctime>

#include "core/error.hpp"
#include "core/log.hpp"
#include "serve/api_error.hpp"
#include "serve/generation.hpp"
#include "serve/openai_request.hpp"
#include "serve/openai_response.hpp"

namespace dsk::serve {
namespace {

using Clock = std::chrono::steady_clock;

// cpp-httplib listens with a backlog of 5 (compiled into Debian's library); a burst of clients
// then overflows the accept queue and connections are reset. Linux lets a listening socket's
// backlog be raised by calling listen() again.
class ListeningServer : public httplib::Server {
 public:
  void raise_backlog(int backlog) { ::listen(svr_sock_, backlog); }
};

void write_error(httplib::Response& res, const ApiError& error) {
  res.status = error.status;
  if (error.retry_after_seconds > 0) res.set_header("Retry-After", std::to_string(error.retry_after_seconds));
  res.set_content(dump_json(error.body()), "application/json");
}

const char* status_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 404: case 405: case 400: case 413: return "invalid_request_error";
    default: return "server_error";
  }
}

std::string endpoint_name(ApiKind kind) { return kind == ApiKind::chat ? "chat_completions" : "completions"; }

// What a streaming response needs across calls of httplib's content provider.
struct StreamState {
  std::shared_ptr<Generation> generation;
  ResponseHeader header;
  bool with_logprobs = false;
  bool include_usage = false;
  Clock::time_point last_write = Clock::now();
  bool completed = false;
};

// One call of the chunked content provider: waits for tokens, writes their chunks; false when
// the client is gone (httplib then closes the connection and the releaser cancels).
bool write_stream_step(StreamState& state, httplib::DataSink& sink, std::chrono::milliseconds heartbeat) {
  auto write = [&](const std::string& text) {
    state.last_write = Clock::now();
    return sink.write(text.data(), text.size());
  };
  Generation& generation = *state.generation;
  for (const ChoiceDelta& delta : generation.poll(std::chrono::milliseconds(200)))
    if (!write(sse_chunk(state.header, delta, state.with_logprobs, state.include_usage))) return false;
  if (generation.finished()) {
    if (generation.error() &&
        !write(sse_error(ApiError(500, "server_error", *generation.error(), std::nullopt, "generation_failed").body())))
      return false;
    if (state.include_usage && !write(sse_usage_chunk(state.header, generation.usage()))) return false;
    if (!write(sse_done())) return false;
    state.completed = true;
    sink.done();
    return true;
  }
  // An SSE comment (clients skip it) so that a client that went away is noticed by a failed write.
  if (Clock::now() - state.last_write > heartbeat && !write(": waiting\n\n")) return false;
  return true;
}

}  // namespace

ApiServer::ApiServer(Router& router, Metrics& metrics, ApiKeys keys, HttpOptions options)
    : router_(router), metrics_(metrics), keys_(std::make_shared<const ApiKeys>(std::move(keys))), options_(std::move(options)),
      server_(std::make_unique<ListeningServer>()) {
  const size_t threads = static_cast<size_t>(options_.threads);
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_read_timeout(options_.read_timeout);
  server_->set_write_timeout(options_.write_timeout);
  server_->set_keep_alive_timeout(options_.keep_alive_timeout.count());
  server_->set_keep_alive_max_count(1000);
  server_->set_tcp_nodelay(true);  // a token is a small write that should leave at once
  install_routes();
}

ApiServer::~ApiServer() = default;

int ApiServer::bind() {
  int port = options_.port;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
    if (port < 0) throw ResourceError(str("cannot listen on ", options_.host, " (any port)"));
  } else if (!server_->bind_to_port(options_.host, port)) {
    throw ResourceError(str("cannot listen on ", options_.host, ":", port, " (in use, or not an address of this machine)"));
  }
  static_cast<ListeningServer&>(*server_).raise_backlog(SOMAXCONN);
  return port;
}

void ApiServer::serve() { server_->listen_after_bind(); }

void ApiServer::stop() { server_->stop(); }

void ApiServer::set_keys(ApiKeys keys) {
  auto fresh = std::make_shared<const ApiKeys>(std::move(keys));
  std::lock_guard lock(keys_mutex_);
  keys_ = std::move(fresh);
}

void ApiServer::install_routes() {
  httplib::Server& server = *server_;

  // Statuses httplib answers itself (413 over the body limit, 404 for an unknown path, 400 for
  // a malformed request line) get OpenAI's JSON body too.
  server.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = res.status == 413 ? str("The request body is larger than ", options_.max_body_bytes, " bytes")
                          : res.status == 404 ? std::string("No such endpoint")
                                              : str("HTTP ", res.status);
    ApiError error(res.status, status_type(res.status), message);
    res.set_content(dump_json(error.body()), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  server.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr failure) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& error) {
      what = error.what();
    } catch (...) {
    }
    log_error(req.method, " ", req.path, ": ", what);
    write_error(res, ApiError(500, "server_error", "Internal error in dsk-serve"));
  });

  // -v: one line per request (no header is logged: Authorization holds a key).
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (log_enabled(LogLevel::debug)) log_debug(req.remote_addr, " ", req.method, " ", req.path, " ", res.status);
  });

  auto authorized = [this](const httplib::Request& req) {
    std::shared_ptr<const ApiKeys> keys;
    {
      std::lock_guard lock(keys_mutex_);
      keys = keys_;
    }
    return !keys->enabled() || keys->accepts(req.get_header_value("Authorization"));
  };
  auto unauthorized = [](httplib::Response& res) {
    write_error(res, ApiError(401, "invalid_request_error", "Missing or incorrect API key (Authorization: Bearer <key>)",
                              std::nullopt, "invalid_api_key"));
  };

  auto completions = [this, authorized, unauthorized](ApiKind kind) {
    return [this, kind, authorized, unauthorized](const httplib::Request& req, httplib::Response& res) {
      std::string model_label = "";
      try {
        if (!authorized(req)) {
          unauthorized(res);
        } else if (draining_) {
          ApiError error(503, "server_error", "The server is shutting down", std::nullopt, "draining");
          error.retry_after_seconds = options_.retry_after_seconds;
          write_error(res, error);
        } else {
          ApiRequest request = parse_api_request(req.body, kind);
          model_label = request.model;
          Route route = router_.route(request.model, request.user);
          PreparedPrompts prompts = prepare_prompts(request, *route.model);
          auto generation = std::make_shared<Generation>(request, std::move(prompts), route.model, metrics_,
                                                         options_.retry_after_seconds);
          ResponseHeader header{kind, response_id(kind), static_cast<int64_t>(std::time(nullptr)), route.model->name,
                                route.model->fingerprint()};
          res.set_header("x-dsk-model-version", route.model->version);
          if (route.fell_back) res.set_header("x-dsk-fallback-from", route.requested);
          bool with_logprobs = request.logprobs;
          if (!request.stream) {
            while (!generation->finished()) generation->poll(std::chrono::milliseconds(500));
            if (generation->error()) {
              write_error(res, ApiError(500, "server_error", *generation->error(), std::nullopt, "generation_failed"));
            } else {
              res.set_content(dump_json(complete_response(header, generation->results(), generation->usage(), with_logprobs)),
                              "application/json");
            }
          } else {
            auto state = std::make_shared<StreamState>(StreamState{generation, header, with_logprobs, request.include_usage});
            auto heartbeat = options_.stream_heartbeat;
            res.set_header("Cache-Control", "no-cache");
            res.set_chunked_content_provider(
                "text/event-stream",
                [state, heartbeat](size_t, httplib::DataSink& sink) {
                  try {
                    return write_stream_step(*state, sink, heartbeat);
                  } catch (const std::exception& error) {
                    // A bug must end this stream, not the process (this runs on httplib's thread).
                    log_error("stream ", state->header.id, ": ", error.what());
                    return false;
                  }
                },
                [this, state, labels = Labels{{"model", route.model->name}, {"version", route.model->version}}](bool) {
                  if (!state->completed) {
                    state->generation->cancel();
                    metrics_.add("dsk_serve_client_disconnects_total", labels);
                  }
                  state->generation.reset();
                });
          }
        }
      } catch (const ApiError& error) {
        write_error(res, error);
      }
      metrics_.add("dsk_serve_requests_total",
                   {{"endpoint", endpoint_name(kind)}, {"model", model_label}, {"status", std::to_string(res.status == -1 ? 200 : res.status)}});
    };
  };
  server.Post("/v1/completions", completions(ApiKind::completions));
  server.Post("/v1/chat/completions", completions(ApiKind::chat));

  server.Get("/v1/models", [this, authorized, unauthorized](const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req)) return unauthorized(res);
    nlohmann::json data = nlohmann::json::array();
    for (const std::string& name : router_.model_names()) {
      nlohmann::json versions = nlohmann::json::array();
      for (const auto& version : router_.versions_of(name)) versions.push_back(version->version);
      data.push_back({{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "dsk"}, {"versions", versions}});
    }
    res.set_content(dump_json({{"object", "list"}, {"data", data}}), "application/json");
  });
  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  server.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    bool ready = router_.has_models() && !draining_;
    res.status = ready ? 200 : 503;
    res.set_content(ready ? R"({"status":"ready"})" : draining_ ? R"({"status":"draining"})" : R"({"status":"loading"})",
                    "application/json");
  });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render(router_.gauges()), "text/plain; version=0.0.4");
  });
}

}  // namespace dsk::serve
