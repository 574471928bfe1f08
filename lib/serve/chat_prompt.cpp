#include "serve/chat_prompt.hpp"

#include "serve/api_error.hpp"

namespace dsk::serve {

std::string render_chat(const std::vector<ChatMessage>& messages, const nlohmann::json& tokenizer_config) {
  (void)messages;
  if (!tokenizer_config.is_object() || !tokenizer_config.contains("chat_template") || tokenizer_config["chat_template"].is_null())
    throw ApiError(400, "invalid_request_error",
                   "This model has no chat template (tokenizer_config.json chat_template): use /v1/completions", "messages",
                   "no_chat_template");
  // lib/chat (the Jinja renderer) is wired in here once it is merged.
  throw ApiError(501, "server_error", "Chat templates are not available in this build of dsk-serve: use /v1/completions",
                 "messages", "chat_template_unavailable");
}

}  // namespace dsk::serve
