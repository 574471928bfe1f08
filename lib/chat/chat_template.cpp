#include "chat/chat_template.hpp"

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/json.hpp"

namespace dsk::chat {
namespace {

// transformers' SPECIAL_TOKENS_ATTRIBUTES, the names apply_chat_template passes.
const char* const kSpecialTokenNames[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};

std::string token_content(const JsonField& field) {
  if (field.json().is_string()) return field.string();
  if (field.json().is_object()) return field.at("content").string();
  field.fail("a string or an AddedToken object with \"content\"");
}

Dict read_special_tokens(const JsonField& config) {
  Dict tokens;
  for (const char* name : kSpecialTokenNames)
    if (config.has(name)) tokens.set(name, Value(token_content(config.at(name))));
  if (config.has("additional_special_tokens")) {
    JsonField list = config.at("additional_special_tokens").array();
    List contents;
    for (size_t i = 0; i < list.size(); ++i) contents.push_back(Value(token_content(list.item(i))));
    if (!contents.empty()) tokens.set("additional_special_tokens", Value(std::move(contents)));
  }
  return tokens;
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.size() >= prefix.size() && text.compare(0, prefix.size(), prefix) == 0;
}

void append_segment(std::vector<Segment>& segments, std::string text, bool trained) {
  if (text.empty()) return;
  if (!segments.empty() && segments.back().trained == trained) {
    segments.back().text += text;
    return;
  }
  segments.push_back({std::move(text), trained});
}

}  // namespace

ChatTemplate ChatTemplate::from_tokenizer_config(std::string_view config_json, const std::string& where,
                                                 const std::optional<std::string>& chat_template_jinja) {
  nlohmann::json root = parse_json(config_json, where);
  JsonField config = JsonField(root, where).object();
  ChatTemplate chat;
  chat.where_ = where;
  chat.special_tokens_ = read_special_tokens(config);
  if (chat_template_jinja) {
    chat.templates_.emplace("default", Template::parse(*chat_template_jinja, "chat_template.jinja"));
    return chat;
  }
  if (!config.has("chat_template")) throw DataError(where + ": has no chat_template (the model is not a chat model)");
  JsonField field = config.at("chat_template");
  if (field.json().is_string()) {
    chat.templates_.emplace("default", Template::parse(field.string(), where + " chat_template"));
    return chat;
  }
  if (!field.json().is_array()) field.fail("a template string or a list of {\"name\", \"template\"}");
  for (size_t i = 0; i < field.size(); ++i) {
    JsonField entry = field.item(i).object();
    std::string name = entry.at("name").string();
    chat.templates_.insert_or_assign(name, Template::parse(entry.at("template").string(), str(entry.where(), " (", name, ")")));
  }
  if (chat.templates_.empty()) field.fail("at least one named template");
  return chat;
}

ChatTemplate ChatTemplate::load(const std::filesystem::path& directory) {
  std::filesystem::path config = directory / "tokenizer_config.json";
  std::filesystem::path jinja = directory / "chat_template.jinja";
  std::optional<std::string> jinja_text;
  std::error_code unreadable;  // then tokenizer_config.json's read says what is wrong with the directory
  if (std::filesystem::exists(jinja, unreadable)) jinja_text = read_file(jinja);
  return from_tokenizer_config(read_file(config), config.string(), jinja_text);
}

ChatTemplate ChatTemplate::from_string(std::string_view source, const std::string& name, Dict special_tokens) {
  ChatTemplate chat;
  chat.where_ = name;
  chat.special_tokens_ = std::move(special_tokens);
  chat.templates_.emplace("default", Template::parse(source, name));
  return chat;
}

std::vector<std::string> ChatTemplate::template_names() const {
  std::vector<std::string> names;
  for (const auto& [name, t] : templates_) names.push_back(name);
  return names;
}

const Template& ChatTemplate::select(const RenderOptions& options) const {
  std::string name = options.template_name;
  if (name.empty()) name = !options.tools.is_none() && templates_.count("tool_use") ? "tool_use" : "default";
  auto it = templates_.find(name);
  if (it == templates_.end()) {
    std::string known;
    for (const auto& n : template_names()) known += (known.empty() ? "" : ", ") + n;
    throw DataError(where_ + ": no chat template named '" + name + "' (it has: " + known + ")");
  }
  return it->second;
}

Dict ChatTemplate::variables(const Value& messages, const RenderOptions& options, bool add_generation_prompt) const {
  Dict vars;
  vars.set("messages", messages);
  vars.set("tools", options.tools);
  vars.set("documents", options.documents);
  vars.set("add_generation_prompt", Value(add_generation_prompt));
  for (const auto& [k, v] : special_tokens_.items()) vars.set(k, v);
  for (const auto& [k, v] : options.extra.items()) vars.set(k, v);
  return vars;
}

std::string ChatTemplate::render(const Value& messages, const RenderOptions& options) const {
  return select(options).render(variables(messages, options, options.add_generation_prompt)).text;
}

std::vector<Segment> ChatTemplate::split_for_loss(const Value& messages, const RenderOptions& options) const {
  const Template& chosen = select(options);
  std::vector<Segment> segments;
  if (chosen.has_generation_blocks()) {
    Rendered whole = chosen.render(variables(messages, options, false));
    size_t done = 0;
    for (auto [begin, end] : whole.generation_spans) {
      append_segment(segments, whole.text.substr(done, begin - done), false);
      append_segment(segments, whole.text.substr(begin, end - begin), true);
      done = end;
    }
    append_segment(segments, whole.text.substr(done), false);
    return segments;
  }
  if (!messages.is_list()) throw DataError(where_ + ": messages must be a list, got " + messages.type_name());
  const List& all = messages.as_list();
  std::string done;
  auto mismatch = [&](size_t i) {
    return DataError(str(chosen.name(), ": rendering the conversation up to message ", i,
                         " does not give a prefix of the longer conversation, so prompt and completion cannot be "
                         "told apart; a template that rewrites earlier turns needs {% generation %} blocks"));
  };
  for (size_t i = 0; i < all.size(); ++i) {
    if (!all[i].is_dict()) continue;
    const Value* role = all[i].as_dict().find("role");
    if (!role || !role->is_string() || role->as_string() != "assistant") continue;
    List before(all.begin(), all.begin() + long(i)), through(all.begin(), all.begin() + long(i) + 1);
    std::string prompt = chosen.render(variables(Value(before), options, true)).text;
    std::string with_answer = chosen.render(variables(Value(through), options, false)).text;
    if (!starts_with(prompt, done) || !starts_with(with_answer, prompt)) throw mismatch(i);
    append_segment(segments, prompt.substr(done.size()), false);
    append_segment(segments, with_answer.substr(prompt.size()), true);
    done = std::move(with_answer);
  }
  std::string whole = chosen.render(variables(messages, options, false)).text;
  if (!starts_with(whole, done)) throw mismatch(all.size());
  append_segment(segments, whole.substr(done.size()), false);
  return segments;
}

Value messages_from_json(const nlohmann::ordered_json& messages, const std::string& where) {
  if (!messages.is_array()) throw DataError(where + ": expected a list of messages, got " + std::string(messages.type_name()));
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& message = messages[i];
    if (!message.is_object()) throw DataError(str(where, "[", i, "]: expected an object, got ", message.type_name()));
    auto role = message.find("role");
    if (role == message.end() || !role->is_string())
      throw DataError(str(where, "[", i, "].role: expected a string"));
  }
  return Value::from_json(messages);
}

}  // namespace dsk::chat
