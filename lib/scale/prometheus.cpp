#include "scale/prometheus.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "core/error.hpp"

namespace dsk::scale {
namespace {

// A cursor over one line, with errors that name where it is.
class LineReader {
 public:
  LineReader(std::string_view line, std::string where) : line_(line), where_(std::move(where)) {}

  bool done() const { return position_ >= line_.size(); }
  char peek() const { return done() ? '\0' : line_[position_]; }
  void skip_blanks() {
    while (!done() && (peek() == ' ' || peek() == '\t')) ++position_;
  }
  void expect(char wanted, const char* what) {
    if (peek() != wanted) fail(str("expected ", what));
    ++position_;
  }
  std::string identifier(bool allow_colon, const char* what) {
    size_t start = position_;
    auto allowed = [&](char c, bool first) {
      return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (allow_colon && c == ':') ||
             (!first && std::isdigit(static_cast<unsigned char>(c)));
    };
    while (!done() && allowed(peek(), position_ == start)) ++position_;
    if (position_ == start) fail(str("expected ", what));
    return std::string(line_.substr(start, position_ - start));
  }
  std::string quoted() {
    expect('"', "a quoted label value");
    std::string value;
    while (true) {
      if (done()) fail("unterminated label value");
      char c = line_[position_++];
      if (c == '"') return value;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (done()) fail("unterminated escape in label value");
      char escaped = line_[position_++];
      if (escaped == 'n') value += '\n';
      else if (escaped == '\\' || escaped == '"') value += escaped;
      else fail(str("unknown escape \\", escaped, " in label value"));
    }
  }
  std::string word() {
    size_t start = position_;
    while (!done() && peek() != ' ' && peek() != '\t') ++position_;
    return std::string(line_.substr(start, position_ - start));
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError(str(where_, ": ", what, " at column ", position_ + 1, ": ", line_));
  }

 private:
  std::string_view line_;
  std::string where_;
  size_t position_ = 0;
};

double parse_value(const std::string& text, const LineReader& reader) {
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (text == "+Inf" || text == "Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || std::isnan(value) || std::isinf(value))
    reader.fail(str("expected a number, NaN, +Inf or -Inf, got '", text, "'"));
  return value;
}

PrometheusSample parse_sample(LineReader& reader) {
  PrometheusSample sample;
  sample.name = reader.identifier(true, "a metric name");
  if (reader.peek() == '{') {
    reader.expect('{', "{");
    reader.skip_blanks();
    while (reader.peek() != '}') {
      std::string label = reader.identifier(false, "a label name");
      reader.skip_blanks();
      reader.expect('=', "= after the label name");
      reader.skip_blanks();
      sample.labels[label] = reader.quoted();
      reader.skip_blanks();
      if (reader.peek() == ',') {
        reader.expect(',', ",");
        reader.skip_blanks();
      } else if (reader.peek() != '}') {
        reader.fail("expected , or } after a label");
      }
    }
    reader.expect('}', "}");
  }
  reader.skip_blanks();
  sample.value = parse_value(reader.word(), reader);
  reader.skip_blanks();
  if (!reader.done()) {
    std::string timestamp = reader.word();
    char* end = nullptr;
    std::strtoll(timestamp.c_str(), &end, 10);
    if (*end != '\0') reader.fail(str("expected an integer timestamp, got '", timestamp, "'"));
    reader.skip_blanks();
    if (!reader.done()) reader.fail("unexpected text after the timestamp");
  }
  return sample;
}

}  // namespace

std::vector<PrometheusSample> parse_prometheus_text(std::string_view text, const std::string& source) {
  std::vector<PrometheusSample> samples;
  size_t line_number = 0;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;  // # HELP, # TYPE and comments
    LineReader reader(line.substr(first), str(source, ":", line_number));
    samples.push_back(parse_sample(reader));
  }
  return samples;
}

std::map<std::string, double> sum_by_name(const std::vector<PrometheusSample>& samples) {
  std::map<std::string, double> sums;
  for (const auto& sample : samples)
    if (!std::isnan(sample.value)) sums[sample.name] += sample.value;
  return sums;
}

}  // namespace dsk::scale
