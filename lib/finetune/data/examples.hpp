// Instruction-tuning examples, one JSON object per JSONL line, in the three shapes the Hugging
// Face ecosystem (TRL, datasets) uses:
//
//   {"prompt": "...", "completion": "..."}      completion absent: an unlabelled example
//   {"messages": [{"role": ..., "content": ...}, ...]}   conversational; rendered by the chat template
//   {"text": "..."}                             plain text, all of it trained
//
// "messages" wins over "prompt", which wins over "text"; other keys ride along untouched.
// Each example becomes pieces of text marked trained or not (the loss is on assistant/completion
// tokens only), and then token ids with a loss mask:
//
//   Example example = parse_example(line, "data.jsonl:12");          // DataError naming the field
//   std::vector<chat::Segment> pieces = example_segments(example, chat);  // chat: null unless messages
//   MaskedTokens t = tokenize_segments(pieces, tokenizer, example.kind);
//
// Segments are encoded one by one and concatenated, so no BPE merge crosses a prompt/completion
// boundary (TRL does the same for prompt-completion data); inside chat templates the boundaries
// fall on special tokens, where the ids equal those of encoding the whole text.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.hpp"
#include "tokenizer/tokenizer.hpp"

namespace dsk::finetune {

enum class ExampleKind { prompt_completion, messages, text };

struct Example {
  ExampleKind kind = ExampleKind::text;
  nlohmann::ordered_json record;          // the whole object, keys in their order
  std::string prompt;                      // prompt_completion
  std::optional<std::string> completion;   // prompt_completion; absent when unlabelled
  chat::Value messages;                    // messages
  std::string text;                        // text
};

// DataError "<where>: ..." when the line is not a JSON object of one of the shapes, or a field
// has the wrong type ("<where>: field 'completion': expected a string, got number").
Example parse_example(std::string_view line, const std::string& where);
// The same from a parsed object.
Example example_from_json(nlohmann::ordered_json record, const std::string& where);

std::string example_kind_name(ExampleKind kind);

// Whether the example has a target to train on or to score: a completion, an assistant message,
// or text.
bool has_completion(const Example& example);

// The example as prompt and completion pieces. prompt_completion: [prompt][completion];
// text: [text] trained; messages: chat->split_for_loss. `chat` may be null for the first two;
// for messages it is required (DataError otherwise). With add_generation_prompt (scoring an
// unlabelled conversation) messages are rendered whole, untrained, with the generation prompt.
std::vector<chat::Segment> example_segments(const Example& example, const chat::ChatTemplate* chat,
                                            bool add_generation_prompt = false);

// The text the example trains on, as one string (what length limits and duplicates look at).
// messages without a chat template: each message as "role: content" on its own line.
std::string example_text(const Example& example, const chat::ChatTemplate* chat);

// A tokenizer directory (tokenizer.json, and tokenizer_config.json with a chat template when
// there is one), or a tokenizer.json path (its directory is searched for the template).
struct TokenizerFiles {
  std::unique_ptr<tokenizer::Tokenizer> tokenizer;
  std::unique_ptr<chat::ChatTemplate> chat;  // null when there is no chat template
};
TokenizerFiles load_tokenizer_files(const std::filesystem::path& path);

struct MaskedTokens {
  std::vector<tokenizer::TokenId> ids;
  std::vector<uint8_t> trained;  // 1 where the loss counts (the token is predicted from the ones before)
};

// Encodes the pieces (special tokens in the text become their ids). For prompt_completion and
// text, BOS is prepended when the tokenizer adds one by default and EOS appended (trained), so
// the model learns to stop; a chat template writes its own BOS and end-of-turn tokens.
MaskedTokens tokenize_segments(const std::vector<chat::Segment>& segments, const tokenizer::Tokenizer& tokenizer,
                               ExampleKind kind);

}  // namespace dsk::finetune
