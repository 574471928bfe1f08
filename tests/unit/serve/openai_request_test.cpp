// The request parsers: what OpenAI's clients send is accepted, and each malformed field is a 400
// naming that field.
#include <doctest/doctest.h>

#include "serve/api_error.hpp"
#include "serve/openai_request.hpp"

using namespace dsk::serve;

namespace {

ApiError error_of(const std::string& body, ApiKind kind = ApiKind::completions) {
  try {
    parse_api_request(body, kind);
  } catch (const ApiError& error) {
    return error;
  }
  FAIL("expected an ApiError for " << body);
  return ApiError(0, "", "");
}

}  // namespace

TEST_CASE("a completions body with every field") {
  ApiRequest r = parse_api_request(
      R"({"model": "tiny", "prompt": "Hello", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
          "seed": 42, "stop": ["\n", "END"], "n": 2, "logprobs": 3, "stream": true,
          "stream_options": {"include_usage": true}, "user": "alice", "presence_penalty": 0})",
      ApiKind::completions);
  CHECK(r.model == "tiny");
  REQUIRE(r.prompts.size() == 1);
  CHECK(*r.prompts[0].text == "Hello");
  CHECK(r.max_tokens == 7);
  CHECK(r.temperature == doctest::Approx(0.5));
  CHECK(r.top_p == doctest::Approx(0.9));
  CHECK(r.top_k == 40);
  CHECK(r.seed == 42u);
  CHECK(r.stop == std::vector<std::string>{"\n", "END"});
  CHECK(r.n == 2);
  CHECK(r.logprobs);
  CHECK(r.top_logprobs == 3);
  CHECK(r.stream);
  CHECK(r.include_usage);
  CHECK(r.user == "alice");
}

TEST_CASE("completions defaults and prompt forms") {
  ApiRequest r = parse_api_request(R"({"model": "m", "prompt": [1, 2, 3]})", ApiKind::completions);
  CHECK(r.max_tokens == 16);
  CHECK(r.temperature == 1.0f);
  CHECK(!r.logprobs);
  CHECK(r.prompts.size() == 1);
  CHECK(r.prompts[0].tokens == std::vector<int32_t>{1, 2, 3});
  r = parse_api_request(R"({"model": "m", "prompt": ["a", "b"], "stop": "x", "seed": -1, "top_k": -1})", ApiKind::completions);
  CHECK(r.prompts.size() == 2);
  CHECK(r.stop == std::vector<std::string>{"x"});
  CHECK(r.seed == ~uint64_t{0});
  CHECK(r.top_k == 0);
  r = parse_api_request(R"({"model": "m", "prompt": [[5], [6, 7]], "max_tokens": null})", ApiKind::completions);
  CHECK(r.prompts[1].tokens == std::vector<int32_t>{6, 7});
  CHECK(r.max_tokens == 16);
}

TEST_CASE("a chat body") {
  ApiRequest r = parse_api_request(
      R"({"model": "m", "messages": [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
          "max_completion_tokens": 5, "logprobs": true, "top_logprobs": 2})",
      ApiKind::chat);
  REQUIRE(r.messages.size() == 2);
  CHECK(r.messages[1].content == "Hi there");
  CHECK(r.max_tokens == 5);
  CHECK(r.logprobs);
  CHECK(r.top_logprobs == 2);
  r = parse_api_request(R"({"model": "m", "messages": [{"role": "user", "content": "x"}]})", ApiKind::chat);
  CHECK(!r.max_tokens);  // up to the context
}

TEST_CASE("malformed bodies are 400 naming the field") {
  CHECK(error_of("{not json").status == 400);
  CHECK(error_of("[1]").status == 400);
  CHECK(error_of(R"({"prompt": "x"})").param == "model");
  CHECK(error_of(R"({"model": "m"})").param == "prompt");
  CHECK(error_of(R"({"model": 3, "prompt": "x"})").param == "model");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "temperature": 2.5})").param == "temperature");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "temperature": "hot"})").param == "temperature");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "top_p": 0})").param == "top_p");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "max_tokens": 0})").param == "max_tokens");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "max_tokens": 1.5})").param == "max_tokens");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "n": 0})").param == "n");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "stop": [""]})").param == "stop");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "stop": 5})").param == "stop");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "logprobs": 21})").param == "logprobs");
  CHECK(error_of(R"({"model": "m", "prompt": [1, -2]})").param == "prompt");
  CHECK(error_of(R"({"model": "m", "prompt": []})").param == "prompt");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "stream_options": {"include_usage": true}})").param == "stream_options");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "echo": true})").param == "echo");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "frequency_penalty": 0.5})").param == "frequency_penalty");
  CHECK(error_of(R"({"model": "m", "prompt": "x", "best_of": 3})").param == "best_of");
  CHECK(error_of(R"({"model": "m", "messages": []})", ApiKind::chat).param == "messages");
  CHECK(error_of(R"({"model": "m", "messages": [{"role": "robot", "content": "x"}]})", ApiKind::chat).param == "messages[0].role");
  CHECK(error_of(R"({"model": "m", "messages": [{"role": "user"}]})", ApiKind::chat).param == "messages[0].content");
  CHECK(error_of(R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", ApiKind::chat).param ==
        "messages[0].content");
  CHECK(error_of(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", ApiKind::chat).param ==
        "top_logprobs");
  CHECK(error_of(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "logprobs": 2})", ApiKind::chat).param ==
        "logprobs");
  ApiError error = error_of(R"({"model": "m", "prompt": "x", "n": 999})");
  CHECK(error.body()["error"]["type"] == "invalid_request_error");
  CHECK(error.body()["error"]["param"] == "n");
  CHECK(error.body()["error"]["code"].is_null());
}

TEST_CASE("deeply nested JSON is refused, not recursed into") {
  std::string body = R"({"model": "m", "prompt": "x", "extra": )" + std::string(100000, '[') + std::string(100000, ']') + "}";
  CHECK(error_of(body).status == 400);
}
