#include "tokenize/jsonl_field.hpp"

namespace dsk::tokenize {
namespace {

// Deeper nesting is rare in JSONL records; nlohmann takes those lines.
constexpr int kMaxDepth = 64;
// A number of at most this many characters and no exponent is a double or a 64-bit integer
// that nlohmann accepts; longer ones (or 1e400) may be refused as out of range.
constexpr size_t kMaxNumberLength = 15;

class Scanner {
 public:
  explicit Scanner(std::string_view line) : at_(line.data()), end_(line.data() + line.size()) {}

  bool object_field(std::string_view field, std::string& text) {
    skip_space();
    if (!consume('{')) return false;
    bool found = false;
    bool read = members([&](std::string_view key) {
      if (key != field) return value(1);
      if (found || peek() != '"') return false;
      found = true;
      return string(&text);
    });
    skip_space();
    return read && found && at_ == end_;
  }

 private:
  char peek() const { return at_ < end_ ? *at_ : '\0'; }
  bool consume(char c) {
    if (at_ == end_ || *at_ != c) return false;
    ++at_;
    return true;
  }
  void skip_space() {
    while (at_ < end_ && (*at_ == ' ' || *at_ == '\t' || *at_ == '\n' || *at_ == '\r')) ++at_;
  }

  bool value(int depth) {
    switch (peek()) {
      case '"': return string(nullptr);
      case '{':
        ++at_;
        return depth < kMaxDepth && members([&](std::string_view) { return value(depth + 1); });
      case '[': return depth < kMaxDepth && elements(depth + 1);
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }

  // The members of an object whose "{" was just read; on_value(key) reads each value.
  template <typename OnValue>
  bool members(OnValue on_value) {
    skip_space();
    if (consume('}')) return true;
    do {
      skip_space();
      std::string_view key;
      if (!plain_key(key)) return false;
      skip_space();
      if (!consume(':')) return false;
      skip_space();
      if (!on_value(key)) return false;
      skip_space();
    } while (consume(','));
    return consume('}');
  }

  bool elements(int depth) {
    ++at_;  // '['
    skip_space();
    if (consume(']')) return true;
    do {
      skip_space();
      if (!value(depth)) return false;
      skip_space();
    } while (consume(','));
    return consume(']');
  }

  bool literal(std::string_view word) {
    if (static_cast<size_t>(end_ - at_) < word.size() || std::string_view(at_, word.size()) != word) return false;
    at_ += word.size();
    return true;
  }

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)? and short: what nlohmann always accepts.
  bool number() {
    const char* start = at_;
    consume('-');
    if (consume('0')) {
    } else if (at_ < end_ && *at_ >= '1' && *at_ <= '9') {
      while (at_ < end_ && is_digit(*at_)) ++at_;
    } else {
      return false;
    }
    if (consume('.')) {
      if (at_ == end_ || !is_digit(*at_)) return false;
      while (at_ < end_ && is_digit(*at_)) ++at_;
    }
    if (peek() == 'e' || peek() == 'E') return false;
    return static_cast<size_t>(at_ - start) <= kMaxNumberLength;
  }

  // A key without escapes (with one, nlohmann compares the unescaped key: let it).
  bool plain_key(std::string_view& key) {
    if (!consume('"')) return false;
    const char* start = at_;
    while (at_ < end_ && *at_ != '"') {
      if (*at_ == '\\' || static_cast<unsigned char>(*at_) < 0x20) return false;
      ++at_;
    }
    if (at_ == end_) return false;
    key = std::string_view(start, at_ - start);
    ++at_;
    return true;
  }

  // A string value, unescaped into *out when out is given. The bytes are valid UTF-8 already.
  bool string(std::string* out) {
    ++at_;  // '"'
    if (out) out->clear();
    for (;;) {
      const char* start = at_;
      while (at_ < end_ && *at_ != '"' && *at_ != '\\' && static_cast<unsigned char>(*at_) >= 0x20) ++at_;
      if (out) out->append(start, at_);
      if (at_ == end_ || static_cast<unsigned char>(*at_) < 0x20) return false;
      if (*at_++ == '"') return true;
      if (!escape(out)) return false;
    }
  }

  bool escape(std::string* out) {
    if (at_ == end_) return false;
    char c = *at_++;
    char plain;
    switch (c) {
      case '"': plain = '"'; break;
      case '\\': plain = '\\'; break;
      case '/': plain = '/'; break;
      case 'b': plain = '\b'; break;
      case 'f': plain = '\f'; break;
      case 'n': plain = '\n'; break;
      case 'r': plain = '\r'; break;
      case 't': plain = '\t'; break;
      case 'u': return unicode_escape(out);
      default: return false;
    }
    if (out) out->push_back(plain);
    return true;
  }

  bool hex4(unsigned& value) {
    if (end_ - at_ < 4) return false;
    value = 0;
    for (int i = 0; i < 4; ++i) {
      char c = *at_++;
      unsigned digit;
      if (c >= '0' && c <= '9') digit = c - '0';
      else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
      else return false;
      value = value * 16 + digit;
    }
    return true;
  }

  // \uXXXX, a surrogate pair as two; a lone surrogate is nlohmann's error to report.
  bool unicode_escape(std::string* out) {
    unsigned code;
    if (!hex4(code)) return false;
    if (code >= 0xDC00 && code <= 0xDFFF) return false;
    if (code >= 0xD800 && code <= 0xDBFF) {
      unsigned low;
      if (!consume('\\') || !consume('u') || !hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
      code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    if (out) append_utf8(*out, code);
    return true;
  }

  static void append_utf8(std::string& out, unsigned code) {
    if (code < 0x80) {
      out.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (code >> 6)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (code >> 12)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (code >> 18)));
      out.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  const char* at_;
  const char* end_;
};

}  // namespace

bool extract_jsonl_string_field(std::string_view line, std::string_view field, std::string& text) {
  return Scanner(line).object_field(field, text);
}

}  // namespace dsk::tokenize
