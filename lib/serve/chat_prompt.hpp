// The seam between chat messages and the model's prompt: the chat template of the model's
// tokenizer_config.json ("chat_template", Jinja, or chat_template.jinja beside it), rendered as
// transformers' apply_chat_template does with add_generation_prompt=True (lib/chat).
#pragma once

#include <string>
#include <vector>

#include <optional>

#include "chat/chat_template.hpp"
#include "serve/openai_request.hpp"

namespace dsk::serve {

// The prompt text for `messages`. ApiError(400) when the model has no chat template or the
// template rejects the conversation (raise_exception in the template).
std::string render_chat(const std::vector<ChatMessage>& messages, const std::optional<chat::ChatTemplate>& chat_template);

}  // namespace dsk::serve
