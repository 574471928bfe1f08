// The bodies of POST /v1/completions and POST /v1/chat/completions, parsed and checked as
// OpenAI's API defines them (and vLLM extends them: top_k). Pure functions: no model, no
// tokenizer; what depends on the model (prompt length against the context, the model name)
// is checked by the caller. Every problem is an ApiError (400) naming the field.
//
// Accepted fields
//   both:        model, max_tokens, temperature [0, 2], top_p (0, 1], top_k (vLLM; 0 or -1: all),
//                seed, stop (a string or up to 16 strings), n [1, 128], stream,
//                stream_options.include_usage, user
//   completions: prompt (a string, a list of strings, a list of token ids, or a list of such
//                lists), logprobs (an integer 0..20: that many alternatives per token)
//   chat:        messages (role + content: a string or a list of {"type": "text", "text"} parts),
//                max_completion_tokens, logprobs (boolean), top_logprobs [0, 20]
// Fields that would change the output in ways dsk-serve does not implement (echo, best_of > n,
// suffix, logit_bias, non-zero penalties, tools, a response_format other than text) are refused
// with 400 rather than silently ignored; unknown fields are ignored, as OpenAI does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsk::serve {

enum class ApiKind { completions, chat };

struct ChatMessage {
  std::string role;     // system, user, assistant, developer, tool
  std::string content;  // text parts joined
  std::optional<std::string> name;
};

// One prompt of a completions request: text, or token ids given directly.
struct PromptInput {
  std::optional<std::string> text;
  std::vector<int32_t> tokens;  // when text is empty
};

struct ApiRequest {
  ApiKind kind = ApiKind::completions;
  std::string model;
  std::vector<PromptInput> prompts;   // completions: at least one
  std::vector<ChatMessage> messages;  // chat: at least one
  std::optional<int> max_tokens;      // absent: completions 16, chat up to the context
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  int n = 1;
  bool logprobs = false;  // the chosen tokens' logprobs
  int top_logprobs = 0;   // alternatives per token
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  std::string user;
};

// Throws ApiError(400) for malformed JSON, a wrong type or a value out of range.
ApiRequest parse_api_request(std::string_view body, ApiKind kind);

}  // namespace dsk::serve
