// Instruction examples: the three shapes and their precedence, errors naming the field, and the
// loss mask of each shape (prompt untrained, completion and EOS trained; assistant turns of a
// real chat template trained with their end-of-turn text).
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "finetune/data/examples.hpp"
#include "test_files.hpp"

using namespace dsk;
using namespace dsk::finetune;

namespace {

std::string trained_text(const MaskedTokens& t, const tokenizer::Tokenizer& tokenizer, bool trained) {
  std::vector<tokenizer::TokenId> ids;
  for (size_t i = 0; i < t.ids.size(); ++i)
    if (bool(t.trained[i]) == trained) ids.push_back(t.ids[i]);
  return tokenizer.decode(ids);
}

}  // namespace

TEST_CASE("the three shapes, their precedence, and errors naming the field") {
  Example pc = parse_example(R"({"prompt": "p", "completion": "c", "extra": [1]})", "f:1");
  CHECK(pc.kind == ExampleKind::prompt_completion);
  CHECK(*pc.completion == "c");
  CHECK(pc.record["extra"][0] == 1);
  CHECK(!parse_example(R"({"prompt": "p"})", "f:2").completion);
  CHECK(!parse_example(R"({"prompt": "p", "completion": null})", "f:2").completion);
  CHECK(parse_example(R"({"text": "t", "prompt": "p"})", "f:3").kind == ExampleKind::prompt_completion);
  CHECK(parse_example(R"({"prompt": "p", "messages": []})", "f:4").kind == ExampleKind::messages);
  CHECK(parse_example(R"({"text": "t"})", "f:5").kind == ExampleKind::text);
  CHECK_THROWS_WITH_AS(parse_example(R"({"prompt": 1})", "f:6"), "f:6: field 'prompt': expected a string, got number", DataError);
  CHECK_THROWS_WITH_AS(parse_example(R"({"other": 1})", "f:7"),
                       "f:7: expected a field 'messages', 'prompt' (with 'completion') or 'text'", DataError);
  CHECK_THROWS_WITH_AS(parse_example("[1]", "f:8"), "f:8: expected a JSON object, got array", DataError);
  CHECK_THROWS_WITH_AS(parse_example(R"({"messages": [{"role": 3}]})", "f:9"), "f:9: field 'messages'[0].role: expected a string", DataError);
  CHECK_THROWS_AS(parse_example("{nope", "f:10"), DataError);
  CHECK(has_completion(pc));
  CHECK(!has_completion(parse_example(R"({"messages": [{"role": "user", "content": "q"}]})", "f")));
}

TEST_CASE("prompt/completion: prompt untrained, completion and EOS trained") {
  auto tokenizer = tokenizer::Tokenizer::load(testing::kTinyTokenizer);
  Example example = parse_example(R"({"prompt": "Question: two plus two?", "completion": " Four."})", "t");
  MaskedTokens t = tokenize_segments(example_segments(example, nullptr), tokenizer, example.kind);
  REQUIRE(t.ids.size() == t.trained.size());
  std::vector<tokenizer::TokenId> prompt = tokenizer.encode("Question: two plus two?");
  std::vector<tokenizer::TokenId> completion = tokenizer.encode(" Four.");
  size_t bos = tokenizer.add_bos_by_default() && tokenizer.bos_id() ? 1 : 0;
  size_t eos = tokenizer.eos_id() ? 1 : 0;
  CHECK(t.ids.size() == bos + prompt.size() + completion.size() + eos);
  CHECK(std::count(t.trained.begin(), t.trained.end(), 1) == long(completion.size() + eos));
  for (size_t i = 0; i < bos + prompt.size(); ++i) CHECK(t.trained[i] == 0);
  if (eos) CHECK(t.ids.back() == *tokenizer.eos_id());
  CHECK(trained_text(t, tokenizer, false).find("Question: two plus two?") != std::string::npos);
  // Unlabelled: nothing trained, no EOS.
  Example unlabelled = parse_example(R"({"prompt": "Question"})", "t");
  MaskedTokens u = tokenize_segments(example_segments(unlabelled, nullptr), tokenizer, unlabelled.kind);
  CHECK(std::count(u.trained.begin(), u.trained.end(), 1) == 0);
  CHECK(u.ids.size() == bos + tokenizer.encode("Question").size());
}

TEST_CASE("messages: assistant turns and their end-of-turn text trained, by the real chat template") {
  auto tokenizer = tokenizer::Tokenizer::load(testing::kTinyTokenizer);
  chat::ChatTemplate chat = chat::ChatTemplate::load(testing::kChatFixtures / "qwen2");
  Example example = parse_example(
      R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                       {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]})", "t");
  std::vector<chat::Segment> pieces = example_segments(example, &chat);
  REQUIRE(pieces.size() == 4);
  CHECK(pieces[1].text == "hello<|im_end|>\n");
  CHECK(pieces[1].trained);
  CHECK(pieces[2].text == "<|im_start|>user\nbye<|im_end|>\n<|im_start|>assistant\n");
  CHECK(!pieces[2].trained);
  std::string whole;
  for (const auto& p : pieces) whole += p.text;
  CHECK(whole == chat.render(example.messages));
  MaskedTokens t = tokenize_segments(pieces, tokenizer, example.kind);
  CHECK(trained_text(t, tokenizer, true) == "hello<|im_end|>\nciao<|im_end|>\n");
  CHECK(example_text(example, &chat) == whole);
  CHECK(example_text(example, nullptr) == "user: hi\nassistant: hello\nuser: bye\nassistant: ciao\n");
  CHECK_THROWS_AS(example_segments(example, nullptr), DataError);
  // For scoring an unlabelled conversation: rendered whole with the generation prompt, untrained.
  Example open = parse_example(R"({"messages": [{"role": "user", "content": "hi"}]})", "t");
  std::vector<chat::Segment> prompt = example_segments(open, &chat, true);
  REQUIRE(prompt.size() == 1);
  CHECK(prompt[0].text.size() > 10);
  CHECK(prompt[0].text.substr(prompt[0].text.size() - 22) == "<|im_start|>assistant\n");
}
