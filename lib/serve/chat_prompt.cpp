#include "serve/chat_prompt.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "serve/api_error.hpp"

namespace dsk::serve {

std::string render_chat(const std::vector<ChatMessage>& messages, const std::optional<chat::ChatTemplate>& chat_template) {
  if (!chat_template)
    throw ApiError(400, "invalid_request_error",
                   "This model has no chat template (tokenizer_config.json chat_template): use /v1/completions", "messages",
                   "no_chat_template");
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const ChatMessage& message : messages) {
    nlohmann::ordered_json item = {{"role", message.role}, {"content", message.content}};
    if (message.name) item["name"] = *message.name;
    list.push_back(std::move(item));
  }
  try {
    return chat_template->render(chat::messages_from_json(list, "messages"), chat::RenderOptions{.add_generation_prompt = true, .tools = {}, .documents = {}, .template_name = {}, .extra = {}});
  } catch (const DataError& error) {
    // raise_exception("Conversation roles must alternate ...") and the like: the client's to fix.
    throw ApiError(400, "invalid_request_error", str("The chat template refused the messages: ", error.what()), "messages");
  }
}

}  // namespace dsk::serve
