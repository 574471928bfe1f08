// Instruction data: records to examples (with file:line errors), token rows whose targets are the
// completion and EOS only, cutting and dropping at data.seq_len, and the batch stream (every
// example once per epoch, a pure function of seed and cursor).
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "../io/scratch_dir.hpp"
#include "core/error.hpp"
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

}  // namespace

TEST_CASE("records become examples; bad lines are data errors naming file:line") {
  const std::string good = write("good.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\", \"id\": 1}\n\n"
                                               "{\"prompt\": \"c\", \"completion\": \"\"}\n");
  const auto examples = read_examples({good}, {prompt_completion});
  REQUIRE(examples.size() == 2);
  CHECK(examples[1].prompt == "c");
  for (auto [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"{\"prompt\": \"a\"}\nnot json\n", ":1: \"completion\" must be a string"},
           {"{\"prompt\": \"a\", \"completion\": \"b\"}\nnot json\n", ":2: not a JSON record"},
           {"[1, 2]\n", ":1: expected a JSON object"},
           {"{\"text\": \"a\"}\n", ":1: expected {\"prompt\""},
           {"{\"messages\": []}\n", ":1: chat records"},
           {"\n\n", "no examples"}}) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(read_examples({write("bad.jsonl", text)}, {prompt_completion}), doctest::Contains(message.c_str()),
                         DataError);
  }
}

TEST_CASE("a row learns the completion and EOS, never the prompt or the padding") {
  const tokenizer::Tokenizer tok = tiny_tokenizer();
  REQUIRE(tok.eos_id());
  const TokenizedExample t = tokenize_example({"ab", "cd"}, tok);
  const int32_t eos = int32_t(*tok.eos_id());
  REQUIRE(t.ids.back() == eos);
  const int T = int(t.ids.size()) + 3;
  std::vector<int32_t> tokens(T), targets(T);
  fill_row(t, eos, T, tokens.data(), targets.data());
  for (int i = 0; i < T; ++i) {
    CAPTURE(i);
    const bool learned = i + 1 >= t.prompt_tokens && i + 1 < int(t.ids.size());
    CHECK(targets[i] == (learned ? t.ids[i + 1] : -100));
    CHECK(tokens[i] == (i < int(t.ids.size()) ? t.ids[i] : eos));
  }
  CHECK(std::count_if(targets.begin(), targets.end(), [](int32_t v) { return v != -100; }) ==
        int(t.ids.size()) - t.prompt_tokens);

  // Cut: a row of 3 positions keeps 4 ids; dropped: a prompt that fills the row.
  const TokenizedSet set = tokenize_examples({{"ab", "cdefgh"}, {std::string(40, 'x'), "y"}}, tok, 3);
  CHECK(set.cut == 1);
  CHECK(set.dropped == 1);
  REQUIRE(set.examples.size() == 1);
  CHECK(set.examples[0].ids.size() == 4);
}

TEST_CASE("the batch stream draws every example once per epoch, reproducibly from the cursor") {
  const tokenizer::Tokenizer tok = tiny_tokenizer();
  std::vector<Example> examples;
  for (int i = 0; i < 10; ++i) examples.push_back({"p" + std::to_string(i), std::string(1 + i % 3, 'c')});
  auto make = [&] {
    return InstructionBatches(tokenize_examples(examples, tok, 16), tokenize_examples(examples, tok, 16), 0,
                              tok.vocab_size(), 7);
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
