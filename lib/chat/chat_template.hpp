// A model's chat template, as transformers' apply_chat_template renders it:
//
//   ChatTemplate chat = ChatTemplate::load(model_dir);          // tokenizer_config.json [+ chat_template.jinja]
//   std::string prompt = chat.render(messages, {.add_generation_prompt = true});
//   std::vector<Segment> parts = chat.split_for_loss(messages);  // for fine-tuning loss masks
//
// The template is tokenizer_config.json's "chat_template": a string, or the named-template list
// form [{"name": "default", "template": ...}, {"name": "tool_use", ...}]; a chat_template.jinja
// beside it takes precedence, as in transformers. Variables are those transformers passes:
// messages, tools, documents, add_generation_prompt, the special tokens (bos_token, eos_token,
// unk_token, sep_token, pad_token, cls_token, mask_token, additional_special_tokens; an
// AddedToken object counts by its "content"; null ones are left undefined) and any extra
// variables the caller gives (which win over the special tokens).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/template.hpp"
#include "chat/value.hpp"

namespace dsk::chat {

struct RenderOptions {
  bool add_generation_prompt = false;
  Value tools;      // none, or a list of JSON schemas
  Value documents;  // none, or a list of {"title", "text"}
  std::string template_name;  // a named template; empty: "tool_use" when tools are given and it exists, else "default"
  Dict extra;       // more template variables (date_string, enable_thinking ...)
};

// A piece of a rendered conversation: `trained` marks assistant output, the text the loss is on.
struct Segment {
  std::string text;
  bool trained = false;
};

class ChatTemplate {
 public:
  // From tokenizer_config.json's text (and chat_template.jinja's, when there is one); `where`
  // names the file in errors. DataError when there is no chat template or it does not parse.
  static ChatTemplate from_tokenizer_config(std::string_view config_json, const std::string& where,
                                            const std::optional<std::string>& chat_template_jinja = std::nullopt);
  // From a model (or tokenizer) directory.
  static ChatTemplate load(const std::filesystem::path& directory);
  // A bare template string with the given special tokens (tests, --chat-template FILE).
  static ChatTemplate from_string(std::string_view source, const std::string& name, Dict special_tokens = {});

  // The conversation as text. `messages` is a list of dicts ({"role", "content", ...}).
  // DataError naming the template and position on a template error or raise_exception.
  std::string render(const Value& messages, const RenderOptions& options = {}) const;

  // The conversation as prompt and completion pieces whose texts concatenate to
  // render(messages, options) with add_generation_prompt false. Method: when the template marks
  // assistant output with {% generation %}, those spans; otherwise render prefix by prefix:
  // for each assistant message i, render messages[:i] with add_generation_prompt and then
  // messages[:i+1] without it; the difference is message i's completion (its content and the
  // end-of-turn text the template appends, so the model learns to stop), everything else is
  // prompt. DataError when a prefix does not render as a prefix of the longer conversation
  // (a template that rewrites earlier turns, as DeepSeek-R1's drops reasoning); such a template
  // needs {% generation %} blocks to be masked.
  std::vector<Segment> split_for_loss(const Value& messages, const RenderOptions& options = {}) const;

  const Dict& special_tokens() const { return special_tokens_; }
  std::vector<std::string> template_names() const;

 private:
  std::map<std::string, Template> templates_;
  Dict special_tokens_;
  std::string where_;

  const Template& select(const RenderOptions& options) const;
  Dict variables(const Value& messages, const RenderOptions& options, bool add_generation_prompt) const;
};

// The messages of one {"messages": [...]} record as a template value; DataError naming `where`
// when it is not a list of objects each with a string "role".
Value messages_from_json(const nlohmann::ordered_json& messages, const std::string& where);

}  // namespace dsk::chat
