// Instruction data: records to masked ids (with file:line errors), token rows whose targets are the
// completion and EOS only (the assistant turns of a chat record), cutting and dropping at data.seq_len, and the batch stream (every
// example once per epoch, a pure function of seed and cursor).
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "../io/scratch_dir.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "finetune/data/examples.hpp"
#include "finetune/instruction_data.hpp"

using namespace dsk;
using namespace dsk::finetune;

namespace {

// The tiny GPT-2 fixture with the tokenizer_config.json the CLI tests give it (EOS, no BOS).
tokenizer::Tokenizer tiny_tokenizer() {
  const auto dir = scratch_dir("instruction-tokenizer");
  std::filesystem::copy_file(std::string(DSK_SOURCE_DIR) + "/tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json",
                             dir / "tokenizer.json");
  std::ofstream(dir / "tokenizer_config.json") << R"({"eos_token": "<|endoftext|>", "add_bos_token": false})";
  return tokenizer::Tokenizer::load(dir / "tokenizer.json");
}

std::string write(const std::string& name, const std::string& text) {
  const auto path = scratch_dir("instruction-" + name) / name;
  std::ofstream(path) << text;
  return path.string();
}

// Example ids and mask of a file holding `jsonl`, read with the tiny tokenizer (no chat template).
std::vector<TokenizedExample> read_text(const std::string& jsonl) {
  return read_instruction_data({write("data.jsonl", jsonl)}, tiny_tokenizer(), nullptr);
}

std::vector<uint8_t> mask_of(size_t untrained, size_t trained) {
  std::vector<uint8_t> mask(untrained, 0);
  mask.resize(untrained + trained, 1);
  return mask;
}

}  // namespace

TEST_CASE("records become masked ids; bad lines are data errors naming file:line") {
  const tokenizer::Tokenizer tok = tiny_tokenizer();
  const auto examples = read_text("{\"prompt\": \"a\", \"completion\": \"b\", \"id\": 1}\n\n"
                                  "{\"prompt\": \"c\", \"completion\": \"\"}\n{\"text\": \"de\"}\n");
  REQUIRE(examples.size() == 3);
  const size_t c = tok.encode("c").size(), de = tok.encode("de").size();
  CHECK(examples[1].trained == mask_of(c, 1));  // the EOS only
  CHECK(examples[2].trained == mask_of(0, de + 1));
  for (auto [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"{\"prompt\": \"a\"}\n", ":1: nothing to train on"},
           {"{\"prompt\": \"a\", \"completion\": \"b\"}\nnot json\n", ":2: not valid JSON"},
           {"[1, 2]\n", ":1: expected a JSON object"},
           {"{\"prompt\": \"a\", \"completion\": 4}\n", ":1: field 'completion'"},
           {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n",
            ":1: a {\"messages\": ...} example needs a chat template"},
           {"\n\n", "no examples"}}) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(read_text(text), doctest::Contains(message.c_str()), DataError);
  }
}

TEST_CASE("a row learns the completion and EOS, never the prompt or the padding") {
  const tokenizer::Tokenizer tok = tiny_tokenizer();
  REQUIRE(tok.eos_id());
  const TokenizedExample t = read_text("{\"prompt\": \"ab\", \"completion\": \"cd\"}\n").at(0);
  const int32_t eos = int32_t(*tok.eos_id());
  const int prompt_tokens = int(tok.encode("ab").size());
  REQUIRE(t.ids.back() == eos);
  REQUIRE(t.trained == mask_of(size_t(prompt_tokens), t.ids.size() - size_t(prompt_tokens)));
  const int T = int(t.ids.size()) + 3;
  std::vector<int32_t> tokens(T), targets(T);
  fill_row(t, eos, T, tokens.data(), targets.data());
  for (int i = 0; i < T; ++i) {
    CAPTURE(i);
    const bool learned = i + 1 >= prompt_tokens && i + 1 < int(t.ids.size());
    CHECK(targets[i] == (learned ? t.ids[i + 1] : -100));
    CHECK(tokens[i] == (i < int(t.ids.size()) ? t.ids[i] : eos));
  }
  CHECK(std::count_if(targets.begin(), targets.end(), [](int32_t v) { return v != -100; }) ==
        int(t.ids.size()) - prompt_tokens);
  const LastTurn turn = last_turn(t);
  CHECK(turn.prompt.size() == size_t(prompt_tokens));
  CHECK(tok.decode(turn.completion, true) == "cd");

  // Cut: a row of 3 positions keeps 4 ids; dropped: a prompt that fills the row.
  const TokenizedSet set = fit_rows(read_text("{\"prompt\": \"ab\", \"completion\": \"cdefgh\"}\n"
                                              "{\"prompt\": \"" + std::string(40, 'x') + "\", \"completion\": \"y\"}\n"),
                                    3);
  CHECK(set.cut == 1);
  CHECK(set.dropped == 1);
  REQUIRE(set.examples.size() == 1);
  CHECK(set.examples[0].ids.size() == 4);
  CHECK(set.examples[0].trained.size() == 4);
}

// A real chat template (Qwen2's, tests/fixtures/chat) over the tiny tokenizer: the loss is on the
// assistant turns and their end-of-turn text, in every turn, never on the system or user text.
TEST_CASE("chat records: the template renders them, the loss is on the assistant turns only") {
  const auto dir = scratch_dir("instruction-chat");
  std::filesystem::copy_file(std::string(DSK_SOURCE_DIR) + "/tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json",
                             dir / "tokenizer.json");
  // Qwen2's template with the tiny tokenizer's own EOS (Qwen2's special tokens are not in it).
  nlohmann::json config = nlohmann::json::parse(
      read_file(std::string(DSK_SOURCE_DIR) + "/tests/fixtures/chat/qwen2/tokenizer_config.json"));
  config = {{"chat_template", config["chat_template"]}, {"eos_token", "<|endoftext|>"}, {"add_bos_token", false}};
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  const TokenizerFiles files = load_tokenizer_files(dir / "tokenizer.json");
  REQUIRE(files.chat);
  const std::string data = write("chat.jsonl",
                                 R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},)"
                                 R"( {"role": "user", "content": "again"}, {"role": "assistant", "content": "sure"}]})"
                                 "\n");
  const TokenizedExample t = read_instruction_data({data}, *files.tokenizer, files.chat.get()).at(0);
  REQUIRE(t.ids.size() == t.trained.size());
  // The trained runs, decoded: each assistant turn with the text the template ends it with.
  std::vector<std::string> runs;
  for (size_t i = 0; i < t.ids.size(); ++i) {
    if (!t.trained[i]) continue;
    if (i == 0 || !t.trained[i - 1]) runs.emplace_back();
    runs.back() += files.tokenizer->decode({uint32_t(t.ids[i])});
  }
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].rfind("yo", 0) == 0);
  CHECK(runs[1].rfind("sure", 0) == 0);
  CHECK(runs[1].find("<|im_end|>") != std::string::npos);
  // The whole rendering is the template's (the ids decode to it), and the prompt of the last turn
  // ends with the generation prompt.
  std::vector<uint32_t> all(t.ids.begin(), t.ids.end());
  const std::string rendered = files.tokenizer->decode(all);
  CHECK(rendered == files.chat->render(chat::Value::from_json(nlohmann::json::parse(read_file(data))["messages"]), {}));
  const LastTurn turn = last_turn(t);
  CHECK(files.tokenizer->decode(turn.prompt).size() + files.tokenizer->decode(turn.completion).size() <= rendered.size());
  CHECK(files.tokenizer->decode(turn.prompt).ends_with("<|im_start|>assistant\n"));
}

TEST_CASE("the batch stream draws every example once per epoch, reproducibly from the cursor") {
  const tokenizer::Tokenizer tok = tiny_tokenizer();
  std::string jsonl;
  for (int i = 0; i < 10; ++i)
    jsonl += "{\"prompt\": \"p" + std::to_string(i) + "\", \"completion\": \"" + std::string(1 + i % 3, 'c') + "\"}\n";
  const std::vector<TokenizedExample> examples = read_text(jsonl);
  auto make = [&] {
    return InstructionBatches(fit_rows(examples, 16), fit_rows(examples, 16), 0, tok.vocab_size(), 7);
  };
  InstructionBatches a = make(), b = make();
  train::Batch batch, other;
  std::set<std::vector<int32_t>> first_epoch;
  for (int i = 0; i < 5; ++i) {
    a.next(batch, 2, 16);
    for (int r = 0; r < 2; ++r) first_epoch.insert({batch.tokens.begin() + r * 16, batch.tokens.begin() + (r + 1) * 16});
  }
  CHECK(first_epoch.size() == 10);
  CHECK(a.cursor() == 10);
  a.next(batch, 2, 16);
  b.set_cursor(10);
  b.next(other, 2, 16);
  CHECK(batch.tokens == other.tokens);
  CHECK(batch.targets == other.targets);
  // Validation: in file order, the last batch filled with empty rows.
  a.validation_batch(2, batch, 4, 16);
  CHECK(std::all_of(batch.targets.begin() + 2 * 16, batch.targets.end(), [](int32_t t) { return t == -100; }));
}
