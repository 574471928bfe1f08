// OpenAI's answers, built from what a request produced: the whole response of a non-streaming
// request, and the server-sent events of a streaming one
//   data: {"id": "cmpl-...", "object": "text_completion", "choices": [...]}\n\n   ...   data: [DONE]\n\n
// Completions and chat differ in object names, where the text goes (text / message.content /
// delta.content) and the logprobs layout (tokens + token_logprobs + top_logprobs + text_offset,
// or content: [{token, logprob, bytes, top_logprobs}]).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/openai_request.hpp"

namespace dsk::serve {

struct TokenLogprob {
  std::string token;  // the token's text
  float logprob = 0;
  std::vector<std::pair<std::string, float>> top;  // alternatives, most likely first
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

// What every response and chunk of one request repeats.
struct ResponseHeader {
  ApiKind kind = ApiKind::completions;
  std::string id;       // cmpl-... / chatcmpl-...
  int64_t created = 0;  // Unix seconds
  std::string model;    // the model that answered (a fallback names itself)
  std::string system_fingerprint;  // the version that served: "<model>@<version>"
};

// A fresh random id with the kind's prefix.
std::string response_id(ApiKind kind);

struct ChoiceResult {
  int index = 0;
  std::string text;
  std::string finish_reason;  // stop | length
  std::vector<TokenLogprob> logprobs;  // when the request asked for them
};

nlohmann::json complete_response(const ResponseHeader& header, const std::vector<ChoiceResult>& choices,
                                 const Usage& usage, bool with_logprobs);

// One streamed piece of one choice. A chat stream's first chunk per choice carries the role.
struct ChoiceDelta {
  int index = 0;
  std::string text;
  std::optional<std::string> finish_reason;
  std::vector<TokenLogprob> logprobs;
  bool first = false;  // chat: add role "assistant"
};

// "data: {...}\n\n" for one delta; with include_usage the chunk says "usage": null as OpenAI's do.
std::string sse_chunk(const ResponseHeader& header, const ChoiceDelta& delta, bool with_logprobs, bool include_usage);
// The last chunk before [DONE] when stream_options.include_usage: no choices, the usage.
std::string sse_usage_chunk(const ResponseHeader& header, const Usage& usage);
// An error in the middle of a stream (the status line is already sent): data: {"error": ...}.
std::string sse_error(const nlohmann::json& error_body);
inline const char* sse_done() { return "data: [DONE]\n\n"; }

// JSON text that never throws on odd bytes (replaced by U+FFFD).
std::string dump_json(const nlohmann::json& value);

}  // namespace dsk::serve
