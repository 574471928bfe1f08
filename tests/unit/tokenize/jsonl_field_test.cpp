// The JSONL fast path answers only when nlohmann would accept the line and give the same string:
// checked case by case, then against nlohmann on 200,000 generated and mutated lines.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <random>
#include <string>

#include "tokenize/jsonl_field.hpp"

using namespace dsk::tokenize;

namespace {

std::optional<std::string> fast(const std::string& line, const std::string& field = "text") {
  std::string text = "stale";
  if (!extract_jsonl_string_field(line, field, text)) return std::nullopt;
  return text;
}

// nlohmann's answer: the field's string, or nullopt for anything else (an error included).
std::optional<std::string> reference(const std::string& line, const std::string& field = "text") {
  try {
    nlohmann::json record = nlohmann::json::parse(line);
    if (!record.is_object()) return std::nullopt;
    auto it = record.find(field);
    if (it == record.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// Random JSON-ish text: mostly well-formed, with the escapes, numbers and nesting that the
// fast path handles or declines, and valid UTF-8 throughout (the caller checks UTF-8 first).
class LineMaker {
 public:
  explicit LineMaker(uint64_t seed) : random_(seed) {}

  // Half the lines use only well-formed pieces (so the fast path has work), half any piece;
  // a quarter of all are then mutated by one byte.
  std::string line() {
    messy_ = below(2) == 0;
    std::string out = pick({" ", "\t", ""}, {"\xEF\xBB\xBF"});
    out += "{";
    int members = below(5);
    for (int i = 0; i < members; ++i) {
      if (i) out += pick({",", " ,", ", ", ",\t"}, {",,"});
      out += key() + pick({":", " : ", ":\r"}, {""});
      out += below(3) == 0 ? string() : value(0);
    }
    out += pick({"}", " }", "}\r", "} "}, {"}x", "}}", ""});
    return below(4) == 0 ? mutate(out) : out;
  }

 private:
  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(random_); }
  // One of `good`, or on a messy line one of either list.
  std::string pick(std::initializer_list<const char*> good, std::initializer_list<const char*> bad) {
    int choices = int(good.size()) + (messy_ ? int(bad.size()) : 0);
    int at = below(choices);
    return at < int(good.size()) ? *(good.begin() + at) : *(bad.begin() + (at - good.size()));
  }

  std::string key() { return pick({"\"text\"", "\"text\"", "\"id\"", "\"Text\"", "\"meta\"", "\"\""}, {"\"te\\u0078t\""}); }

  std::string string() {
    std::string out = "\"";
    int pieces = below(6);
    for (int i = 0; i < pieces; ++i)
      out += pick({"plain words", "é", "日本語", "🙂", "\\n", "\\\"", "\\\\", "\\/", "\\b\\f\\r\\t", "\\u00e9", "\\u00E9",
                   "\\u0000", "\\ud83d\\ude00", "\x7F", "<｜end▁of▁sentence｜>"},
                  {"\\ud83d", "\\ude00", "\\ud83dx", "\\u12", "\\x", "\t"});
    return out + pick({"\""}, {""});
  }

  std::string value(int depth) {
    switch (below(depth > 3 ? 3 : 6)) {
      case 0: return string();
      case 1: return pick({"0", "-0", "12", "1.5", "-3.25", "123456789012345", "1234567890123456789012", "1e5", "1E-2",
                           "0.1000000000000000055511151231257827"},
                          {"01", "1.", ".5", "-", "1e400", "1e"});
      case 2: return pick({"true", "false", "null"}, {"tru", "nul", "True"});
      case 3: {
        std::string out = "[";
        for (int i = below(4); i > 0; --i) out += value(depth + 1) + (i > 1 ? "," : "");
        return out + pick({"]"}, {",]", ""});
      }
      default: {
        std::string out = "{";
        for (int i = below(3); i > 0; --i) out += key() + ":" + value(depth + 1) + (i > 1 ? "," : "");
        return out + pick({"}"}, {",}", ""});
      }
    }
  }

  // One ASCII byte changed, dropped or inserted (UTF-8 stays valid when an ASCII byte is hit).
  std::string mutate(std::string line) {
    if (line.empty()) return line;
    size_t at = below(int(line.size()));
    if (static_cast<unsigned char>(line[at]) >= 0x80) return line;
    const std::string bytes = "{}[]:,\"\\ 0-.eutnfax";
    char byte = bytes[below(int(bytes.size()))];
    switch (below(3)) {
      case 0: line[at] = byte; break;
      case 1: line.erase(at, 1); break;
      default: line.insert(at, 1, byte); break;
    }
    return line;
  }

  std::mt19937_64 random_;
  bool messy_ = false;
};

}  // namespace

TEST_CASE("the common record is read, escapes decoded, other members skipped") {
  CHECK(fast(R"({"text": "hello"})") == "hello");
  CHECK(fast(R"( {"id": 7, "meta": {"tags": ["a", 1.5, null, true, false, -0]}, "text" : "x\ny" } )") == "x\ny");
  CHECK(fast(R"({"text": "\"\\\/\b\f\n\r\t"})") == "\"\\/\b\f\n\r\t");
  CHECK(fast(R"({"text": "caf\u00e9 \ud83d\ude00 \u0000!"})") == std::string("café 😀 \0!", 13));
  CHECK(fast("{\"text\": \"raw é 日本語\"}") == "raw é 日本語");
  CHECK(fast(R"({"body": "b", "text": "t"})", "body") == "b");
  CHECK(fast(R"({"text": ""})") == "");
}

TEST_CASE("anything unusual is declined, for nlohmann to judge") {
  CHECK_FALSE(fast(R"({"text": "a", "text": "b"})"));  // nlohmann: the last one
  CHECK_FALSE(fast("\xEF\xBB\xBF{\"text\": \"bom\"}"));  // nlohmann skips a BOM
  CHECK_FALSE(fast(R"({"te\u0078t": "escaped key"})"));
  CHECK_FALSE(fast(R"({"text": "a", "n": 1e400})"));     // nlohmann: out of range
  CHECK_FALSE(fast(R"({"text": "a", "n": 12345678901234567890})"));
  CHECK_FALSE(fast(R"({"text": "\ud800"})"));            // a lone surrogate: nlohmann's error
  CHECK_FALSE(fast("{\"text\": \"tab\tinside\"}"));      // control characters must be escaped
  CHECK_FALSE(fast(R"({"text": 5})"));
  CHECK_FALSE(fast(R"({"other": "x"})"));
  CHECK_FALSE(fast(R"(["text", "x"])"));
  CHECK_FALSE(fast(R"({"text": "x"} trailing)"));
  CHECK_FALSE(fast(R"({"text": "x",})"));
  CHECK_FALSE(fast(R"({"text": "unterminated)"));
  std::string deep = R"({"a": )" + std::string(100, '[') + std::string(100, ']') + R"(, "text": "deep"})";
  CHECK_FALSE(fast(deep));
  CHECK(reference(deep) == "deep");
}

TEST_CASE("every answer of the fast path is nlohmann's answer") {
  LineMaker maker(13);
  int answered = 0, agreed_declines = 0;
  for (int i = 0; i < 200000; ++i) {
    const std::string line = maker.line();
    std::optional<std::string> ours = fast(line);
    std::optional<std::string> theirs = reference(line);
    if (ours) {
      ++answered;
      INFO("line: " << line);
      REQUIRE(theirs);
      REQUIRE(*ours == *theirs);
    } else if (!theirs) {
      ++agreed_declines;
    }
  }
  // Not a filter that declines everything: most well-formed records take the fast path.
  CHECK(answered > 5000);
  CHECK(agreed_declines > 20000);
}
