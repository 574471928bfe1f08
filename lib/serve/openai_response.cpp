#include "serve/openai_response.hpp"

#include <random>

namespace dsk::serve {
namespace {

using nlohmann::json;

json usage_json(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

json byte_list(const std::string& text) {
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}.
json chat_logprobs(const std::vector<TokenLogprob>& logprobs) {
  json content = json::array();
  for (const TokenLogprob& entry : logprobs) {
    json top = json::array();
    for (const auto& [token, logprob] : entry.top)
      top.push_back({{"token", token}, {"logprob", logprob}, {"bytes", byte_list(token)}});
    content.push_back({{"token", entry.token}, {"logprob", entry.logprob}, {"bytes", byte_list(entry.token)},
                       {"top_logprobs", top}});
  }
  return {{"content", content}};
}

// Completions: parallel lists; text_offset counts bytes from the start of the choice's text.
json completion_logprobs(const std::vector<TokenLogprob>& logprobs, size_t first_offset) {
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), offsets = json::array();
  size_t offset = first_offset;
  for (const TokenLogprob& entry : logprobs) {
    tokens.push_back(entry.token);
    token_logprobs.push_back(entry.logprob);
    json top = json::object();
    for (const auto& [token, logprob] : entry.top) top[token] = logprob;
    top_logprobs.push_back(top);
    offsets.push_back(offset);
    offset += entry.token.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", offsets}};
}

json logprobs_json(ApiKind kind, const std::vector<TokenLogprob>& logprobs) {
  return kind == ApiKind::chat ? chat_logprobs(logprobs) : completion_logprobs(logprobs, 0);
}

json header_json(const ResponseHeader& header, const char* object) {
  return {{"id", header.id}, {"object", object}, {"created", header.created}, {"model", header.model},
          {"system_fingerprint", header.system_fingerprint}};
}

}  // namespace

std::string response_id(ApiKind kind) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* digits = "0123456789abcdef";
  std::string id = kind == ApiKind::chat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id += digits[rng() % 16];
  return id;
}

json complete_response(const ResponseHeader& header, const std::vector<ChoiceResult>& choices, const Usage& usage,
                       bool with_logprobs) {
  bool chat = header.kind == ApiKind::chat;
  json response = header_json(header, chat ? "chat.completion" : "text_completion");
  json list = json::array();
  for (const ChoiceResult& choice : choices) {
    json item = {{"index", choice.index}, {"finish_reason", choice.finish_reason}};
    if (chat) item["message"] = {{"role", "assistant"}, {"content", choice.text}};
    else item["text"] = choice.text;
    item["logprobs"] = with_logprobs ? logprobs_json(header.kind, choice.logprobs) : json(nullptr);
    list.push_back(std::move(item));
  }
  response["choices"] = std::move(list);
  response["usage"] = usage_json(usage);
  return response;
}

std::string sse_chunk(const ResponseHeader& header, const ChoiceDelta& delta, bool with_logprobs, bool include_usage) {
  bool chat = header.kind == ApiKind::chat;
  json chunk = header_json(header, chat ? "chat.completion.chunk" : "text_completion");
  json item = {{"index", delta.index}};
  if (chat) {
    json content = {{"content", delta.text}};
    if (delta.first) content["role"] = "assistant";
    item["delta"] = std::move(content);
  } else {
    item["text"] = delta.text;
  }
  item["logprobs"] = with_logprobs && !delta.logprobs.empty() ? logprobs_json(header.kind, delta.logprobs) : json(nullptr);
  item["finish_reason"] = delta.finish_reason ? json(*delta.finish_reason) : json(nullptr);
  chunk["choices"] = json::array({std::move(item)});
  if (include_usage) chunk["usage"] = nullptr;
  return "data: " + dump_json(chunk) + "\n\n";
}

std::string sse_usage_chunk(const ResponseHeader& header, const Usage& usage) {
  json chunk = header_json(header, header.kind == ApiKind::chat ? "chat.completion.chunk" : "text_completion");
  chunk["choices"] = json::array();
  chunk["usage"] = usage_json(usage);
  return "data: " + dump_json(chunk) + "\n\n";
}

std::string sse_error(const json& error_body) { return "data: " + dump_json(error_body) + "\n\n"; }

std::string dump_json(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace dsk::serve
