// Jinja2's lexer as transformers configures it: trim_blocks (the first newline after a block or
// comment tag is dropped), lstrip_blocks (spaces and tabs before a block or comment tag at the
// start of a line are dropped), "-" and "+" whitespace control, keep_trailing_newline off.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include "chat/ast.hpp"
#include "core/error.hpp"

namespace dsk::chat::detail {
namespace {

std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

class Lexer {
 public:
  Lexer(std::string source, const std::string& where) : source_(std::move(source)), where_(where) {}

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < source_.size()) {
      size_t start = find_tag(pos);
      std::string text = source_.substr(pos, start - pos);
      if (start == source_.size()) {
        push_text(text, pos);
        break;
      }
      char kind = source_[start + 1];  // '{', '%' or '#'
      char sign = start + 2 < source_.size() ? source_[start + 2] : '\0';
      if (sign == '-') {
        size_t keep = text.size();
        while (keep > 0 && is_space(text[keep - 1])) --keep;
        text.resize(keep);
      } else if (sign != '+' && kind != '{') {
        size_t line_begin = text.rfind('\n');
        line_begin = line_begin == std::string::npos ? 0 : line_begin + 1;
        bool only_space = line_begin < text.size() &&
                          std::all_of(text.begin() + long(line_begin), text.end(), [](char c) { return is_space(c); });
        if ((line_begin > 0 || line_starting) && only_space) text.resize(line_begin);
      }
      push_text(text, pos);
      size_t inner = start + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        pos = skip_comment(start, inner);
      } else {
        pos = lex_tag(kind == '{', start, inner);
      }
      line_starting = pos > 0 && source_[pos - 1] == '\n';
    }
    tokens_.push_back({TokenKind::end, "", Value(), position_of(source_.size())});
    return std::move(tokens_);
  }

 private:
  std::string source_;
  const std::string& where_;
  std::vector<Token> tokens_;
  size_t line_cursor_ = 0;
  Position line_position_;

  size_t find_tag(size_t from) const {
    for (size_t i = from; i + 1 < source_.size(); ++i)
      if (source_[i] == '{' && (source_[i + 1] == '{' || source_[i + 1] == '%' || source_[i + 1] == '#')) return i;
    return source_.size();
  }

  Position position_of(size_t offset) {
    if (offset < line_cursor_) {
      line_cursor_ = 0;
      line_position_ = Position{};
    }
    for (; line_cursor_ < offset; ++line_cursor_) {
      if (source_[line_cursor_] == '\n') {
        ++line_position_.line;
        line_position_.column = 1;
      } else if ((static_cast<unsigned char>(source_[line_cursor_]) & 0xC0) != 0x80) {
        ++line_position_.column;
      }
    }
    return line_position_;
  }

  [[noreturn]] void fail(size_t offset, const std::string& message) {
    Position p = position_of(offset);
    throw DataError(str(where_, ":", p.line, ":", p.column, ": ", message));
  }

  void push_text(const std::string& text, size_t offset) {
    if (!text.empty()) tokens_.push_back({TokenKind::text, text, Value(), position_of(offset)});
  }

  // After a block or comment end: "-" eats all following whitespace, "+" keeps it, plain drops one
  // newline (trim_blocks).
  size_t after_block_end(size_t end_of_tag, char sign) const {
    size_t pos = end_of_tag;
    if (sign == '-') {
      while (pos < source_.size() && is_space(source_[pos])) ++pos;
    } else if (sign != '+' && pos < source_.size() && source_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  size_t skip_comment(size_t start, size_t inner) {
    size_t end = source_.find("#}", inner);
    if (end == std::string::npos) fail(start, "unterminated comment (missing '#}')");
    char sign = end > inner && (source_[end - 1] == '-' || source_[end - 1] == '+') ? source_[end - 1] : '\0';
    return after_block_end(end + 2, sign);
  }

  size_t lex_tag(bool variable, size_t start, size_t pos) {
    tokens_.push_back({variable ? TokenKind::variable_begin : TokenKind::block_begin, "", Value(), position_of(start)});
    int depth = 0;
    while (true) {
      while (pos < source_.size() && is_space(source_[pos])) ++pos;
      if (pos >= source_.size()) fail(start, variable ? "unterminated '{{' (missing '}}')" : "unterminated '{%' (missing '%}')");
      if (depth == 0) {
        if (size_t end = tag_end(variable, pos)) {
          tokens_.push_back({variable ? TokenKind::variable_end : TokenKind::block_end, "", Value(), position_of(pos)});
          char sign = source_[pos] == '-' || source_[pos] == '+' ? source_[pos] : '\0';
          if (variable) {
            if (sign == '-')
              while (end < source_.size() && is_space(source_[end])) ++end;
            return end;
          }
          return after_block_end(end, sign);
        }
      }
      pos = lex_expression_token(pos, depth);
    }
  }

  // The offset just past the tag's end marker at pos, or 0 when there is none there.
  size_t tag_end(bool variable, size_t pos) const {
    const char* marker = variable ? "}}" : "%}";
    auto at = [&](size_t p, const char* s) { return source_.compare(p, std::strlen(s), s) == 0; };
    if (at(pos, marker)) return pos + 2;
    if ((source_[pos] == '-' || (!variable && source_[pos] == '+')) && at(pos + 1, marker)) return pos + 3;
    return 0;
  }

  size_t lex_expression_token(size_t pos, int& depth) {
    char c = source_[pos];
    Position p = position_of(pos);
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = pos;
      while (end < source_.size() && (std::isalnum(static_cast<unsigned char>(source_[end])) || source_[end] == '_')) ++end;
      tokens_.push_back({TokenKind::name, source_.substr(pos, end - pos), Value(), p});
      return end;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number(pos, p);
    if (c == '\'' || c == '"') return lex_string(pos, p);
    static const char* two_char[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* op : two_char)
      if (source_.compare(pos, 2, op) == 0) {
        tokens_.push_back({TokenKind::op, op, Value(), p});
        return pos + 2;
      }
    if (std::strchr("+-*/%~<>=()[]{},.:|", c) && c != '\0') {
      if (c == '(' || c == '[' || c == '{') ++depth;
      if (c == ')' || c == ']' || c == '}') depth = std::max(0, depth - 1);
      tokens_.push_back({TokenKind::op, std::string(1, c), Value(), p});
      return pos + 1;
    }
    fail(pos, str("unexpected character '", c, "'"));
  }

  size_t lex_number(size_t pos, Position p) {
    size_t end = pos;
    auto digits = [&] {
      while (end < source_.size() && (std::isdigit(static_cast<unsigned char>(source_[end])) || source_[end] == '_')) ++end;
    };
    digits();
    bool is_float = false;
    if (end + 1 < source_.size() && source_[end] == '.' && std::isdigit(static_cast<unsigned char>(source_[end + 1]))) {
      is_float = true;
      ++end;
      digits();
    }
    if (end < source_.size() && (source_[end] == 'e' || source_[end] == 'E')) {
      size_t e = end + 1;
      if (e < source_.size() && (source_[e] == '+' || source_[e] == '-')) ++e;
      if (e < source_.size() && std::isdigit(static_cast<unsigned char>(source_[e]))) {
        is_float = true;
        end = e;
        digits();
      }
    }
    std::string text;
    for (size_t i = pos; i < end; ++i)
      if (source_[i] != '_') text += source_[i];
    Value value;
    if (is_float) {
      double d = 0;
      std::from_chars(text.data(), text.data() + text.size(), d);
      value = Value(d);
    } else {
      int64_t i = 0;
      auto result = std::from_chars(text.data(), text.data() + text.size(), i);
      if (result.ec != std::errc()) fail(pos, "integer literal out of range: " + text);
      value = Value(i);
    }
    tokens_.push_back({is_float ? TokenKind::number : TokenKind::integer, text, value, p});
    return end;
  }

  // A Python string literal with its escapes decoded (Jinja decodes them as "unicode-escape").
  size_t lex_string(size_t pos, Position p) {
    char quote = source_[pos];
    std::string out;
    size_t i = pos + 1;
    while (true) {
      if (i >= source_.size()) fail(pos, "unterminated string literal");
      char c = source_[i];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= source_.size()) fail(pos, "unterminated string literal");
      char e = source_[i + 1];
      i += 2;
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case 'x': case 'u': case 'U': {
          size_t width = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          auto result = std::from_chars(source_.data() + i, source_.data() + std::min(i + width, source_.size()), cp, 16);
          if (result.ec != std::errc() || size_t(result.ptr - (source_.data() + i)) != width || cp > 0x10FFFF)
            fail(i - 2, str("bad \\", e, " escape in string literal"));
          append_utf8(out, cp);
          i += width;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = uint32_t(e - '0');
            for (int k = 0; k < 2 && i < source_.size() && source_[i] >= '0' && source_[i] <= '7'; ++k, ++i)
              cp = cp * 8 + uint32_t(source_[i] - '0');
            append_utf8(out, cp);
          } else {
            out += '\\';  // Python keeps unknown escapes as they are
            out += e;
          }
      }
    }
    tokens_.push_back({TokenKind::string, out, Value(), p});
    return i + 1;
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const std::string& where) {
  return Lexer(normalize_newlines(source), where).run();
}

}  // namespace dsk::chat::detail
