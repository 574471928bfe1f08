#include "serve/openai_request.hpp"

#include <cmath>
#include <algorithm>
#include <limits>

#include "core/error.hpp"
#include "core/json.hpp"
#include "serve/api_error.hpp"

namespace dsk::serve {
namespace {

using nlohmann::json;

constexpr int kMaxStopStrings = 16;
constexpr int kMaxChoices = 128;
constexpr int kMaxTopLogprobs = 20;

// The field's value, or nullptr when absent or null (OpenAI treats null as "not given").
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double number_in(const json& value, const std::string& name, double low, double high) {
  if (!value.is_number()) throw bad_parameter(name, str("'", name, "' must be a number, got ", json_type_name(value)));
  double number = value.get<double>();
  if (!(number >= low && number <= high))
    throw bad_parameter(name, str("'", name, "' must be between ", low, " and ", high, ", got ", value.dump()));
  return number;
}

int64_t integer_in(const json& value, const std::string& name, int64_t low, int64_t high) {
  // 2.0 is accepted as 2 (JSON has one number type; Python clients send floats at times).
  bool integral = value.is_number_integer() || value.is_number_unsigned() ||
                  (value.is_number_float() && std::isfinite(value.get<double>()) &&
                   value.get<double>() == std::floor(value.get<double>()));
  if (!integral) throw bad_parameter(name, str("'", name, "' must be an integer, got ", json_type_name(value)));
  double number = value.get<double>();
  if (number < static_cast<double>(low) || number > static_cast<double>(high))
    throw bad_parameter(name, str("'", name, "' must be between ", low, " and ", high, ", got ", value.dump()));
  return value.is_number_unsigned() ? static_cast<int64_t>(value.get<uint64_t>()) : value.get<int64_t>();
}

bool boolean(const json& value, const std::string& name) {
  if (!value.is_boolean()) throw bad_parameter(name, str("'", name, "' must be a boolean, got ", json_type_name(value)));
  return value.get<bool>();
}

std::string string(const json& value, const std::string& name) {
  if (!value.is_string()) throw bad_parameter(name, str("'", name, "' must be a string, got ", json_type_name(value)));
  return value.get<std::string>();
}

std::vector<int32_t> token_list(const json& list, const std::string& name) {
  std::vector<int32_t> tokens;
  tokens.reserve(list.size());
  for (const json& item : list)
    tokens.push_back(static_cast<int32_t>(integer_in(item, name, 0, std::numeric_limits<int32_t>::max())));
  if (tokens.empty()) throw bad_parameter(name, str("'", name, "' must not be empty"));
  return tokens;
}

// "text", ["a", "b"], [1, 2, 3] or [[1, 2], [3]].
std::vector<PromptInput> parse_prompts(const json& prompt) {
  if (prompt.is_string()) return {PromptInput{prompt.get<std::string>(), {}}};
  if (!prompt.is_array() || prompt.empty())
    throw bad_parameter("prompt", "'prompt' must be a string, a list of strings, or a list of token ids (or of such lists)");
  if (prompt.front().is_number()) return {PromptInput{std::nullopt, token_list(prompt, "prompt")}};
  std::vector<PromptInput> prompts;
  for (const json& item : prompt) {
    if (item.is_string()) prompts.push_back({item.get<std::string>(), {}});
    else if (item.is_array()) prompts.push_back({std::nullopt, token_list(item, "prompt")});
    else throw bad_parameter("prompt", str("'prompt' list items must be strings or token id lists, got ", json_type_name(item)));
  }
  return prompts;
}

std::string message_content(const json& content, size_t index) {
  std::string name = str("messages[", index, "].content");
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw bad_parameter(name, str("'", name, "' must be a string or a list of text parts"));
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      throw bad_parameter(name, str("'", name, "' parts must be {\"type\": \"text\", \"text\": ...}; other part types are not supported"));
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const json& messages) {
  if (!messages.is_array() || messages.empty())
    throw bad_parameter("messages", "'messages' must be a non-empty list of {role, content}");
  std::vector<ChatMessage> parsed;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& message = messages[i];
    if (!message.is_object()) throw bad_parameter(str("messages[", i, "]"), str("'messages[", i, "]' must be an object"));
    const json* role = field(message, "role");
    if (!role) throw bad_parameter(str("messages[", i, "].role"), str("'messages[", i, "].role' is required"));
    ChatMessage out;
    out.role = string(*role, str("messages[", i, "].role"));
    static const std::vector<std::string> roles = {"system", "user", "assistant", "developer", "tool"};
    if (std::find(roles.begin(), roles.end(), out.role) == roles.end())
      throw bad_parameter(str("messages[", i, "].role"),
                          str("'messages[", i, "].role' must be one of system, user, assistant, developer, tool; got '", out.role, "'"));
    if (const json* content = field(message, "content")) out.content = message_content(*content, i);
    else if (out.role != "assistant") throw bad_parameter(str("messages[", i, "].content"), str("'messages[", i, "].content' is required"));
    if (const json* name = field(message, "name")) out.name = string(*name, str("messages[", i, "].name"));
    parsed.push_back(std::move(out));
  }
  return parsed;
}

std::vector<std::string> parse_stop(const json& stop) {
  std::vector<std::string> strings;
  if (stop.is_string()) strings.push_back(stop.get<std::string>());
  else if (stop.is_array()) {
    if (stop.size() > kMaxStopStrings) throw bad_parameter("stop", str("'stop' holds at most ", kMaxStopStrings, " strings"));
    for (const json& item : stop) strings.push_back(string(item, "stop"));
  } else {
    throw bad_parameter("stop", str("'stop' must be a string or a list of strings, got ", json_type_name(stop)));
  }
  for (const std::string& s : strings)
    if (s.empty()) throw bad_parameter("stop", "'stop' strings must not be empty");
  return strings;
}

// What would change the output in a way this server does not do: refused, not ignored.
void refuse_unsupported(const json& body, ApiKind kind) {
  auto refuse = [](const char* name, const std::string& why) {
    throw bad_parameter(name, str("'", name, "' ", why, " is not supported by dsk-serve"));
  };
  for (const char* penalty : {"presence_penalty", "frequency_penalty"})
    if (const json* value = field(body, penalty); value && !(value->is_number() && value->get<double>() == 0))
      refuse(penalty, "other than 0");
  if (const json* value = field(body, "logit_bias"); value && !(value->is_object() && value->empty()))
    refuse("logit_bias", "with entries");
  if (const json* value = field(body, "tools"); value && !(value->is_array() && value->empty())) refuse("tools", "(function calling)");
  if (const json* value = field(body, "response_format"); value && !(value->is_object() && value->value("type", "") == "text"))
    refuse("response_format", "other than {\"type\": \"text\"}");
  if (kind == ApiKind::completions) {
    if (const json* value = field(body, "echo"); value && value->is_boolean() && value->get<bool>()) refuse("echo", "true");
    if (const json* value = field(body, "suffix"); value && !(value->is_string() && value->get<std::string>().empty()))
      refuse("suffix", "(insertion)");
  }
}

void parse_logprobs(const json& body, ApiKind kind, ApiRequest& request) {
  const json* logprobs = field(body, "logprobs");
  if (kind == ApiKind::completions) {
    if (logprobs) {
      request.top_logprobs = static_cast<int>(integer_in(*logprobs, "logprobs", 0, kMaxTopLogprobs));
      request.logprobs = true;
    }
    return;
  }
  if (logprobs) request.logprobs = boolean(*logprobs, "logprobs");
  if (const json* top = field(body, "top_logprobs")) {
    request.top_logprobs = static_cast<int>(integer_in(*top, "top_logprobs", 0, kMaxTopLogprobs));
    if (request.top_logprobs > 0 && !request.logprobs)
      throw bad_parameter("top_logprobs", "'top_logprobs' needs 'logprobs' set to true");
  }
}

void parse_sampling(const json& body, ApiKind kind, ApiRequest& request) {
  const char* max_name = "max_tokens";
  const json* max_tokens = field(body, "max_tokens");
  if (kind == ApiKind::chat) {
    if (const json* completion = field(body, "max_completion_tokens")) max_tokens = completion, max_name = "max_completion_tokens";
  } else if (!max_tokens) {
    request.max_tokens = 16;  // OpenAI's default for completions
  }
  if (max_tokens) request.max_tokens = static_cast<int>(integer_in(*max_tokens, max_name, 1, std::numeric_limits<int32_t>::max()));
  if (const json* value = field(body, "temperature")) request.temperature = static_cast<float>(number_in(*value, "temperature", 0, 2));
  if (const json* value = field(body, "top_p")) {
    request.top_p = static_cast<float>(number_in(*value, "top_p", 0, 1));
    if (request.top_p <= 0) throw bad_parameter("top_p", "'top_p' must be greater than 0");
  }
  if (const json* value = field(body, "top_k")) {
    int64_t top_k = integer_in(*value, "top_k", -1, std::numeric_limits<int32_t>::max());
    request.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);  // vLLM: -1 means all
  }
  if (const json* value = field(body, "seed")) {
    // Negative seeds are valid in OpenAI's API; the bits are what makes a run reproducible.
    request.seed = static_cast<uint64_t>(integer_in(*value, "seed", std::numeric_limits<int64_t>::min(),
                                                    std::numeric_limits<int64_t>::max()));
  }
  if (const json* value = field(body, "stop")) request.stop = parse_stop(*value);
  if (const json* value = field(body, "n")) request.n = static_cast<int>(integer_in(*value, "n", 1, kMaxChoices));
  if (const json* value = field(body, "best_of"); value && integer_in(*value, "best_of", 1, kMaxChoices) != request.n)
    throw bad_parameter("best_of", "'best_of' other than n is not supported by dsk-serve");
}

}  // namespace

ApiRequest parse_api_request(std::string_view text, ApiKind kind) {
  json body;
  try {
    body = parse_json(text, "request body");
  } catch (const DataError& error) {
    throw ApiError(400, "invalid_request_error", error.what());
  }
  if (!body.is_object()) throw ApiError(400, "invalid_request_error", "The request body must be a JSON object");

  ApiRequest request;
  request.kind = kind;
  const json* model = field(body, "model");
  if (!model) throw bad_parameter("model", "'model' is required");
  request.model = string(*model, "model");
  if (kind == ApiKind::completions) {
    const json* prompt = field(body, "prompt");
    if (!prompt) throw bad_parameter("prompt", "'prompt' is required");
    request.prompts = parse_prompts(*prompt);
  } else {
    const json* messages = field(body, "messages");
    if (!messages) throw bad_parameter("messages", "'messages' is required");
    request.messages = parse_messages(*messages);
  }
  refuse_unsupported(body, kind);
  parse_sampling(body, kind, request);
  parse_logprobs(body, kind, request);
  if (const json* value = field(body, "stream")) request.stream = boolean(*value, "stream");
  if (const json* options = field(body, "stream_options")) {
    if (!options->is_object()) throw bad_parameter("stream_options", "'stream_options' must be an object");
    if (!request.stream) throw bad_parameter("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (const json* usage = field(*options, "include_usage")) request.include_usage = boolean(*usage, "stream_options.include_usage");
  }
  if (const json* value = field(body, "user")) request.user = string(*value, "user");
  return request;
}

}  // namespace dsk::serve
