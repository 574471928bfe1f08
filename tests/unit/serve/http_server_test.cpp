// The HTTP layer end to end over a scripted engine: OpenAI's wire format, streaming, errors,
// limits, auth, disconnects, metrics, and many concurrent streams.
#include <doctest/doctest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "server_fixture.hpp"

using namespace dsk::serve;
using namespace dsk::serve::testing;
using nlohmann::json;

namespace {

const std::string kText = "Hello world, \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 END tail";

Script text_script(std::chrono::milliseconds step = std::chrono::milliseconds(1)) {
  auto tokenizer = dsk::tokenizer::Tokenizer::load(tiny_model_dir() / "tokenizer.json");
  Script script;
  for (uint32_t id : tokenizer.encode(kText)) script.tokens.push_back(static_cast<int32_t>(id));
  script.step = step;
  return script;
}

// The text and the finish reasons of an SSE body; checks its framing on the way.
struct Streamed {
  std::map<int, std::string> text;
  std::map<int, std::string> finish;
  bool done = false;
  std::optional<json> usage;
  int chunks = 0;
};

Streamed parse_sse(const std::string& body, bool chat) {
  Streamed out;
  std::istringstream lines(body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == ':') continue;
    REQUIRE(line.rfind("data: ", 0) == 0);
    std::string data = line.substr(6);
    if (data == "[DONE]") {
      out.done = true;
      continue;
    }
    CHECK(!out.done);
    json chunk = json::parse(data);
    ++out.chunks;
    if (chunk.contains("usage") && !chunk["usage"].is_null()) out.usage = chunk["usage"];
    for (const json& choice : chunk["choices"]) {
      int index = choice["index"];
      out.text[index] += chat ? choice["delta"].value("content", "") : choice["text"].get<std::string>();
      if (!choice["finish_reason"].is_null()) out.finish[index] = choice["finish_reason"];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("a completion, whole and streamed, carries the scripted text, usage and version") {
  ServerFixture fixture;
  fixture.router.set_model("tiny", {{scripted_model("tiny", "1.0", text_script())}}, {});
  auto client = fixture.client();

  auto res = client.Post("/v1/completions", R"({"model": "tiny", "prompt": "Hi", "max_tokens": 100})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("x-dsk-model-version") == "1.0");
  json body = json::parse(res->body);
  CHECK(body["object"] == "text_completion");
  CHECK(body["model"] == "tiny");
  CHECK(body["system_fingerprint"] == "tiny@1.0");
  CHECK(body["choices"][0]["text"] == kText);
  CHECK(body["choices"][0]["finish_reason"] == "stop");  // eos after the script
  const int prompt_tokens = static_cast<int>(dsk::tokenizer::Tokenizer::load(tiny_model_dir() / "tokenizer.json").encode("Hi").size());
  CHECK(body["usage"]["prompt_tokens"] == prompt_tokens);
  CHECK(body["usage"]["completion_tokens"].get<int>() == static_cast<int>(text_script().tokens.size()) + 1);

  res = client.Post("/v1/completions",
                    R"({"model": "tiny", "prompt": "Hi", "max_tokens": 100, "stream": true, "stream_options": {"include_usage": true}})",
                    "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Content-Type") == "text/event-stream");
  Streamed streamed = parse_sse(res->body, false);
  CHECK(streamed.done);
  CHECK(streamed.text[0] == kText);
  CHECK(streamed.finish[0] == "stop");
  REQUIRE(streamed.usage);
  CHECK((*streamed.usage)["total_tokens"].get<int>() == prompt_tokens + static_cast<int>(text_script().tokens.size()) + 1);
}

TEST_CASE("max_tokens, stop strings, n and logprobs") {
  ServerFixture fixture;
  ScriptedEngine* engine = nullptr;
  fixture.router.set_model("tiny", {{scripted_model("tiny", "local", text_script(), &engine)}}, {});
  auto client = fixture.client();

  auto res = client.Post("/v1/completions", R"({"model": "tiny", "prompt": "Hi", "max_tokens": 2})", "application/json");
  json body = json::parse(res->body);
  CHECK(body["choices"][0]["finish_reason"] == "length");
  CHECK(body["usage"]["completion_tokens"] == 2);

  res = client.Post("/v1/completions", R"({"model": "tiny", "prompt": "Hi", "max_tokens": 100, "stop": [" END", "xyz"], "n": 3,
                                           "stream": true})",
                    "application/json");
  Streamed streamed = parse_sse(res->body, false);
  for (int i = 0; i < 3; ++i) {
    CHECK(streamed.text[i] == kText.substr(0, kText.find(" END")));
    CHECK(streamed.finish[i] == "stop");
  }

  res = client.Post("/v1/completions", R"({"model": "tiny", "prompt": [5, 6], "max_tokens": 3, "logprobs": 2, "seed": 7})",
                    "application/json");
  body = json::parse(res->body);
  json logprobs = body["choices"][0]["logprobs"];
  CHECK(logprobs["tokens"].size() == 3);
  CHECK(logprobs["token_logprobs"][0] == doctest::Approx(-0.5));
  CHECK(logprobs["top_logprobs"][0].size() == 2);
  CHECK(engine->prompts_seen.back() == std::vector<int32_t>{5, 6});
  CHECK(engine->sampling_seen.back().seed == 7u);
  CHECK(engine->sampling_seen.back().top_logprobs == 2);
}

TEST_CASE("errors: OpenAI's JSON with the right status") {
  ServerFixture fixture(ApiKeys::of({"sk-right"}), HttpOptions{.max_body_bytes = 4096});
  Script script = text_script();
  script.context_length = 16;
  fixture.router.set_model("tiny", {{scripted_model("tiny", "local", script)}}, {});
  auto client = fixture.client();
  httplib::Headers key = {{"Authorization", "Bearer sk-right"}};

  auto res = client.Post("/v1/completions", R"({"model": "tiny", "prompt": "x"})", "application/json");
  CHECK(res->status == 401);
  CHECK(json::parse(res->body)["error"]["code"] == "invalid_api_key");
  res = client.Post("/v1/completions", {{"Authorization", "Bearer sk-wrong"}}, R"({"model": "tiny", "prompt": "x"})",
                    "application/json");
  CHECK(res->status == 401);
  CHECK(res->body.find("sk-") == std::string::npos);  // the key is never echoed

  res = client.Post("/v1/completions", key, "{bad json", "application/json");
  CHECK(res->status == 400);
  CHECK(json::parse(res->body)["error"]["type"] == "invalid_request_error");
  res = client.Post("/v1/completions", key, R"({"model": "big", "prompt": "x"})", "application/json");
  CHECK(res->status == 404);
  CHECK(json::parse(res->body)["error"]["code"] == "model_not_found");
  res = client.Post("/v1/completions", key, R"({"model": "tiny", "prompt": "x", "max_tokens": 100})", "application/json");
  CHECK(res->status == 400);
  CHECK(json::parse(res->body)["error"]["param"] == "max_tokens");
  res = client.Post("/v1/completions", key, R"({"model": "tiny", "prompt": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]})",
                    "application/json");
  CHECK(res->status == 400);
  res = client.Post("/v1/completions", key, R"({"model": "tiny", "prompt": [99999]})", "application/json");
  CHECK(res->status == 400);
  res = client.Post("/v1/completions", key, std::string(10000, ' '), "application/json");
  CHECK(res->status == 413);
  CHECK(json::parse(res->body)["error"]["message"].get<std::string>().find("4096") != std::string::npos);
  res = client.Get("/v1/nothing", key);
  CHECK(res->status == 404);
  res = client.Get("/v1/models", key);
  CHECK(res->status == 200);
  CHECK(json::parse(res->body)["data"][0]["id"] == "tiny");
  CHECK(client.Get("/health")->status == 200);  // open without a key
}

TEST_CASE("a full queue answers 503 with Retry-After; draining stops new requests") {
  ServerFixture fixture(ApiKeys{}, HttpOptions{.retry_after_seconds = 3});
  Script script = text_script(std::chrono::milliseconds(50));
  script.max_batch = 1;
  script.max_queue = 1;
  fixture.router.set_model("tiny", {{scripted_model("tiny", "local", script)}}, {});
  std::vector<std::thread> clients;
  std::atomic<int> ok{0}, overloaded{0};
  for (int i = 0; i < 6; ++i)
    clients.emplace_back([&] {
      auto res = fixture.client().Post("/v1/completions", R"({"model": "tiny", "prompt": "x", "max_tokens": 5})", "application/json");
      if (res && res->status == 200) ++ok;
      if (res && res->status == 503 && res->get_header_value("Retry-After") == "3" &&
          json::parse(res->body)["error"]["code"] == "queue_full")
        ++overloaded;
    });
  for (auto& t : clients) t.join();
  CHECK(ok >= 1);
  CHECK(overloaded >= 1);
  CHECK(ok + overloaded == 6);

  CHECK(fixture.client().Get("/ready")->status == 200);
  fixture.server->start_draining();
  CHECK(fixture.client().Get("/ready")->status == 503);
  auto res = fixture.client().Post("/v1/completions", R"({"model": "tiny", "prompt": "x"})", "application/json");
  CHECK(res->status == 503);
  CHECK(json::parse(res->body)["error"]["code"] == "draining");
}

TEST_CASE("a client that disconnects mid-stream has its request cancelled") {
  ServerFixture fixture(ApiKeys{}, HttpOptions{.stream_heartbeat = std::chrono::milliseconds(50)});
  ScriptedEngine* engine = nullptr;
  Script script = text_script(std::chrono::milliseconds(20));
  script.tokens.resize(2000 / 20, script.tokens[0]);  // about 2 s of tokens
  script.context_length = 4096;
  fixture.router.set_model("tiny", {{scripted_model("tiny", "local", script, &engine)}}, {});

  int sock = connect_loopback(fixture.port);
  REQUIRE(sock >= 0);
  std::string body = R"({"model": "tiny", "prompt": "x", "max_tokens": 1000, "stream": true})";
  std::string request = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body;
  REQUIRE(::send(sock, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
  char buffer[256];
  REQUIRE(::recv(sock, buffer, sizeof buffer, 0) > 0);  // the stream began
  ::close(sock);
  for (int i = 0; i < 100 && engine->cancels.empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(engine->cancels.size() == 1);
  CHECK(fixture.metrics.counter_value("dsk_serve_client_disconnects_total", {{"model", "tiny"}, {"version", "local"}}) == 1);
  // The server still answers.
  CHECK(fixture.client().Get("/health")->status == 200);
}

TEST_CASE("malformed and slow connections do not take the server down") {
  ServerFixture fixture(ApiKeys{}, HttpOptions{.read_timeout = std::chrono::seconds(1), .keep_alive_timeout = std::chrono::seconds(1)});
  fixture.router.set_model("tiny", {{scripted_model("tiny", "local", text_script())}}, {});
  auto raw = [&](const std::string& bytes, bool half_close) {
    int sock = connect_loopback(fixture.port);
    REQUIRE(sock >= 0);
    (void)::send(sock, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (half_close) ::shutdown(sock, SHUT_WR);
    std::string answer;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(sock, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, static_cast<size_t>(n));
    ::close(sock);
    return answer;
  };
  std::string garbage = raw("GARBAGE\r\n\r\n", false);
  CHECK_MESSAGE(garbage.find("400") != std::string::npos, garbage);
  // A body shorter than its Content-Length, then silence: the read times out, the thread is freed.
  raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"mo", false);
  // Half-closed after a whole request: cpp-httplib takes a client that shut its side as gone
  // (it peeks for EOF before writing), so no answer comes, and nothing else happens.
  std::string body = R"({"model": "tiny", "prompt": "x", "max_tokens": 2})";
  raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body, true);
  raw("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", true);
  CHECK(fixture.client().Get("/health")->status == 200);
}

TEST_CASE("256 concurrent streaming clients each get every token once") {
  ServerFixture fixture;
  Script script = text_script(std::chrono::milliseconds(2));
  script.max_batch = 64;
  fixture.router.set_model("tiny", {{scripted_model("tiny", "local", script)}}, {});
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 256; ++i)
    clients.emplace_back([&, i] {
      std::string body = R"({"model": "tiny", "stream": true, "max_tokens": 100, "prompt": "client )" + std::to_string(i) + "\"}";
      auto res = fixture.client().Post("/v1/completions", body, "application/json");
      if (!res || res->status != 200) {
        MESSAGE("client " << i << ": " << (res ? std::to_string(res->status) : httplib::to_string(res.error())));
        return;
      }
      Streamed streamed = parse_sse(res->body, false);
      if (streamed.done && streamed.text[0] == kText && streamed.finish[0] == "stop") ++good;
      else MESSAGE("client " << i << ": " << res->body.substr(0, 300));
    });
  for (auto& t : clients) t.join();
  CHECK(good == 256);
  std::string metrics = fixture.client().Get("/metrics")->body;
  CHECK_MESSAGE(metrics.find("dsk_serve_requests_total{endpoint=\"completions\",model=\"tiny\",status=\"200\"} 256") != std::string::npos, metrics.substr(0, 600));
}

TEST_CASE("/metrics speaks Prometheus text with the dsk_serve_ families") {
  ServerFixture fixture;
  fixture.router.set_model("tiny", {{scripted_model("tiny", "1.2", text_script())}}, {});
  auto client = fixture.client();
  client.Post("/v1/completions", R"({"model": "tiny", "prompt": "x", "max_tokens": 4})", "application/json");
  auto res = client.Get("/metrics");
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Content-Type").find("text/plain") == 0);
  for (const char* line : {"# TYPE dsk_serve_time_to_first_token_seconds histogram",
                           "dsk_serve_time_to_first_token_seconds_count{model=\"tiny\",version=\"1.2\"} 1",
                           "dsk_serve_inter_token_latency_seconds_count{model=\"tiny\",version=\"1.2\"} 3",
                           "dsk_serve_generation_tokens_total{model=\"tiny\",version=\"1.2\"} 4",
                           "dsk_serve_prompt_tokens_total{model=\"tiny\",version=\"1.2\"} 1",
                           "dsk_serve_queue_depth{model=\"tiny\",version=\"1.2\"} 0",
                           "dsk_serve_kv_blocks_total{model=\"tiny\",version=\"1.2\"} 100",
                           "dsk_serve_version_weight{model=\"tiny\",version=\"1.2\"} 100"})
    CHECK_MESSAGE(res->body.find(line) != std::string::npos, line);
}

TEST_CASE("chat completions render the model's chat template; a model without one answers 400") {
  ServerFixture fixture;
  ScriptedEngine* engine = nullptr;
  fixture.router.set_model("chat", {{scripted_model("chat", "local", text_script(), &engine, tiny_chat_model_dir())}}, {});
  fixture.router.set_model("plain", {{scripted_model("plain", "local", text_script())}}, {});
  auto client = fixture.client();
  std::string messages = R"("messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])";
  auto res = client.Post("/v1/chat/completions", R"({"model": "chat", "max_tokens": 60, )" + messages + "}", "application/json");
  REQUIRE_MESSAGE(res->status == 200, res->body);
  json body = json::parse(res->body);
  CHECK(body["object"] == "chat.completion");
  CHECK(body["choices"][0]["message"]["role"] == "assistant");
  CHECK(body["choices"][0]["message"]["content"] == kText);
  auto tokenizer = dsk::tokenizer::Tokenizer::load(tiny_model_dir() / "tokenizer.json");
  std::vector<int32_t> expected;
  for (uint32_t id : tokenizer.encode("[system] Be brief.\n[user] Hi\n[assistant] ")) expected.push_back(static_cast<int32_t>(id));
  CHECK(engine->prompts_seen.back() == expected);

  res = client.Post("/v1/chat/completions", R"({"model": "chat", "stream": true, "max_tokens": 3, "logprobs": true, )" + messages + "}",
                    "application/json");
  Streamed streamed = parse_sse(res->body, true);
  CHECK(streamed.finish[0] == "length");
  CHECK(res->body.find(R"("role":"assistant")") != std::string::npos);
  CHECK(res->body.find(R"("logprobs":{"content":[{)") != std::string::npos);

  res = client.Post("/v1/chat/completions", R"({"model": "plain", )" + messages + "}", "application/json");
  CHECK(res->status == 400);
  CHECK(json::parse(res->body)["error"]["code"] == "no_chat_template");
}
