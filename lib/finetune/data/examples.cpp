#include "finetune/data/examples.hpp"

#include "core/error.hpp"
#include "core/fs.hpp"

namespace dsk::finetune {
namespace {

std::string string_field(const nlohmann::ordered_json& record, const char* key, const std::string& where) {
  const auto& value = record.at(key);
  if (!value.is_string())
    throw DataError(str(where, ": field '", key, "': expected a string, got ", value.type_name()));
  return value.get<std::string>();
}

}  // namespace

std::string example_kind_name(ExampleKind kind) {
  switch (kind) {
    case ExampleKind::prompt_completion: return "prompt_completion";
    case ExampleKind::messages: return "messages";
    case ExampleKind::text: return "text";
  }
  return "text";
}

Example parse_example(std::string_view line, const std::string& where) {
  nlohmann::ordered_json record;
  try {
    record = nlohmann::ordered_json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(str(where, ": not valid JSON (", e.what(), ")"));
  }
  return example_from_json(std::move(record), where);
}

Example example_from_json(nlohmann::ordered_json record, const std::string& where) {
  if (!record.is_object()) throw DataError(str(where, ": expected a JSON object, got ", record.type_name()));
  Example example;
  if (record.contains("messages")) {
    example.kind = ExampleKind::messages;
    example.messages = chat::messages_from_json(record["messages"], where + ": field 'messages'");
  } else if (record.contains("prompt")) {
    example.kind = ExampleKind::prompt_completion;
    example.prompt = string_field(record, "prompt", where);
    if (record.contains("completion") && !record["completion"].is_null())
      example.completion = string_field(record, "completion", where);
  } else if (record.contains("text")) {
    example.kind = ExampleKind::text;
    example.text = string_field(record, "text", where);
  } else {
    throw DataError(str(where, ": expected a field 'messages', 'prompt' (with 'completion') or 'text'"));
  }
  example.record = std::move(record);
  return example;
}

bool has_completion(const Example& example) {
  switch (example.kind) {
    case ExampleKind::prompt_completion: return example.completion.has_value();
    case ExampleKind::text: return true;
    case ExampleKind::messages:
      for (const chat::Value& message : example.messages.as_list()) {
        const chat::Value* role = message.as_dict().find("role");
        if (role && role->as_string() == "assistant") return true;
      }
      return false;
  }
  return false;
}

std::vector<chat::Segment> example_segments(const Example& example, const chat::ChatTemplate* chat,
                                            bool add_generation_prompt) {
  switch (example.kind) {
    case ExampleKind::prompt_completion: {
      std::vector<chat::Segment> pieces{{example.prompt, false}};
      if (example.completion) pieces.push_back({*example.completion, true});
      return pieces;
    }
    case ExampleKind::text: return {{example.text, true}};
    case ExampleKind::messages: {
      if (!chat) throw DataError("a {\"messages\": ...} example needs a chat template (the tokenizer's tokenizer_config.json has none)");
      if (add_generation_prompt) {
        chat::RenderOptions options;
        options.add_generation_prompt = true;
        return {{chat->render(example.messages, options), false}};
      }
      return chat->split_for_loss(example.messages);
    }
  }
  return {};
}

std::string example_text(const Example& example, const chat::ChatTemplate* chat) {
  if (example.kind == ExampleKind::messages && !chat) {
    std::string text;
    for (const chat::Value& message : example.messages.as_list()) {
      const chat::Value* role = message.as_dict().find("role");
      const chat::Value* content = message.as_dict().find("content");
      text += role->as_string() + ": " + (content ? content->str() : std::string()) + "\n";
    }
    return text;
  }
  std::string text;
  for (const chat::Segment& piece : example_segments(example, chat)) text += piece.text;
  return text;
}

TokenizerFiles load_tokenizer_files(const std::filesystem::path& path) {
  std::error_code unreadable;  // a path that cannot be examined counts as absent: the reads below say why
  bool is_directory = std::filesystem::is_directory(path, unreadable);
  std::filesystem::path directory = is_directory ? path : path.parent_path();
  std::filesystem::path tokenizer_json = is_directory ? path / "tokenizer.json" : path;
  if (!std::filesystem::exists(tokenizer_json, unreadable))
    throw UsageError(str(tokenizer_json.string(), ": no such file (--tokenizer takes a tokenizer directory or its tokenizer.json)"));
  TokenizerFiles files;
  files.tokenizer = std::make_unique<tokenizer::Tokenizer>(tokenizer::Tokenizer::load(tokenizer_json));
  std::filesystem::path config = directory / "tokenizer_config.json";
  bool has_template = std::filesystem::exists(directory / "chat_template.jinja", unreadable);
  if (!has_template && std::filesystem::exists(config, unreadable))
    has_template = read_file(config).find("\"chat_template\"") != std::string::npos;
  if (has_template) files.chat = std::make_unique<chat::ChatTemplate>(chat::ChatTemplate::load(directory));
  return files;
}

MaskedTokens tokenize_segments(const std::vector<chat::Segment>& segments, const tokenizer::Tokenizer& tokenizer,
                               ExampleKind kind) {
  MaskedTokens out;
  bool plain = kind != ExampleKind::messages;
  if (plain && tokenizer.add_bos_by_default() && tokenizer.bos_id()) {
    out.ids.push_back(*tokenizer.bos_id());
    out.trained.push_back(0);
  }
  for (const chat::Segment& piece : segments) {
    tokenizer.encode_into(piece.text, out.ids);
    out.trained.resize(out.ids.size(), piece.trained ? 1 : 0);
  }
  if (plain && tokenizer.eos_id()) {
    bool any_trained = false;
    for (const chat::Segment& piece : segments) any_trained = any_trained || piece.trained;
    if (any_trained) {
      out.ids.push_back(*tokenizer.eos_id());
      out.trained.push_back(1);
    }
  }
  return out;
}

}  // namespace dsk::finetune
