#include "finetune/data/clean.hpp"

#include <cstdio>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/log.hpp"
#include "core/record.hpp"
#include "core/sha256.hpp"
#include "core/units.hpp"
#include "finetune/data/jsonl_lines.hpp"
#include "tokenizer/utf8.hpp"

namespace dsk::finetune {
namespace {

const char* const kReasonNames[kDropReasons] = {"invalid_utf8", "invalid_json", "bad_fields", "template_error",
                                                "empty", "duplicate", "too_short", "too_long"};

bool is_blank(const std::string& text) {
  for (uint32_t c : chat::decode_code_points(text))
    if (!chat::python_isspace(c)) return false;
  return true;
}

std::string normalized_string(const std::string& text) {
  std::string unix_newlines;
  for (size_t i = 0; i < text.size(); ++i)
    if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) unix_newlines += text[i];
  // Python's strip(): Unicode whitespace at both ends.
  std::vector<uint32_t> points = chat::decode_code_points(unix_newlines);
  size_t begin = 0, end = points.size();
  while (begin < end && chat::python_isspace(points[begin])) ++begin;
  while (end > begin && chat::python_isspace(points[end - 1])) --end;
  return chat::encode_code_points(points, begin, end);
}

nlohmann::json normalized_json(const nlohmann::ordered_json& value) {
  if (value.is_string()) return normalized_string(value.get<std::string>());
  if (value.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : value) out.push_back(normalized_json(item));
    return out;
  }
  if (value.is_object()) {
    nlohmann::json out = nlohmann::json::object();  // sorted keys
    for (auto it = value.begin(); it != value.end(); ++it) out[it.key()] = normalized_json(it.value());
    return out;
  }
  return nlohmann::json(value);
}

// The text an example trains on must not be whitespace only (an unlabelled one: its prompt).
bool is_empty_example(const Example& example) {
  switch (example.kind) {
    case ExampleKind::text: return is_blank(example.text);
    case ExampleKind::prompt_completion: return example.completion ? is_blank(*example.completion) : is_blank(example.prompt);
    case ExampleKind::messages: {
      bool has_assistant = has_completion(example);
      for (const chat::Value& message : example.messages.as_list()) {
        const chat::Dict& fields = message.as_dict();
        bool is_assistant = fields.find("role")->as_string() == "assistant";
        if (has_assistant && !is_assistant) continue;
        const chat::Value* content = fields.find("content");
        if (fields.find("tool_calls")) return false;
        if (content && !(content->is_string() ? is_blank(content->as_string()) : content->is_none())) return false;
      }
      return true;
    }
  }
  return true;
}

std::pair<uint64_t, uint64_t> hash128(const std::string& text) {
  std::string hex = sha256_hex(text);
  return {std::stoull(hex.substr(0, 16), nullptr, 16), std::stoull(hex.substr(16, 16), nullptr, 16)};
}

}  // namespace

std::string drop_reason_name(DropReason reason) { return kReasonNames[size_t(reason)]; }

uint64_t CleanCounts::dropped_total() const {
  uint64_t total = 0;
  for (uint64_t n : dropped) total += n;
  return total;
}

std::string normalized_example(const Example& example) {
  nlohmann::json canonical;
  canonical["kind"] = example_kind_name(example.kind);
  switch (example.kind) {
    case ExampleKind::prompt_completion:
      canonical["prompt"] = normalized_string(example.prompt);
      if (example.completion) canonical["completion"] = normalized_string(*example.completion);
      break;
    case ExampleKind::text: canonical["text"] = normalized_string(example.text); break;
    case ExampleKind::messages: canonical["messages"] = normalized_json(example.record["messages"]); break;
  }
  return canonical.dump();
}

RecordCleaner::RecordCleaner(CleanOptions options, const tokenizer::Tokenizer* tokenizer, const chat::ChatTemplate* chat)
    : options_(options), tokenizer_(tokenizer), chat_(chat) {}

uint64_t RecordCleaner::length_of(const std::string& text) const {
  if (tokenizer_) return tokenizer_->encode(text).size();
  return chat::decode_code_points(text).size();
}

std::optional<DropReason> RecordCleaner::classify(const std::string& line, const std::string& where) {
  if (tokenizer::first_invalid_utf8(line)) return DropReason::invalid_utf8;
  if (is_blank(line)) return DropReason::empty;
  nlohmann::ordered_json record;
  try {
    record = nlohmann::ordered_json::parse(line);
  } catch (const nlohmann::json::exception&) {
    return DropReason::invalid_json;
  }
  if (!record.is_object()) return DropReason::invalid_json;
  Example example;
  try {
    example = example_from_json(std::move(record), where);
  } catch (const DataError& e) {
    log_debug(e.what());
    return DropReason::bad_fields;
  }
  std::string text;
  try {
    text = example_text(example, chat_);  // renders a conversation, and splits it for the loss mask
  } catch (const DataError& e) {
    log_debug(where, ": ", e.what());
    return DropReason::template_error;
  }
  if (is_empty_example(example)) return DropReason::empty;
  if (options_.drop_duplicates && !seen_.insert(hash128(normalized_example(example))).second) return DropReason::duplicate;
  uint64_t length = length_of(text);
  if (length < options_.min_length) return DropReason::too_short;
  if (options_.max_length && length > *options_.max_length) return DropReason::too_long;
  return std::nullopt;
}

std::optional<DropReason> RecordCleaner::check(const std::string& line, const std::string& where) {
  ++counts_.records;
  std::optional<DropReason> reason = classify(line, where);
  if (reason) {
    ++counts_.dropped[size_t(*reason)];
    log_debug(where, ": dropped (", drop_reason_name(*reason), ")");
  } else {
    ++counts_.kept;
  }
  return reason;
}

CleanCounts clean_jsonl(const std::vector<std::string>& inputs, RecordCleaner& cleaner,
                        const std::function<void(const std::string&)>& keep) {
  JsonlLines lines(inputs);
  JsonlLine line;
  while (lines.next(line))
    if (!cleaner.check(line.bytes, line.where())) keep(line.bytes);
  return cleaner.counts();
}

Record clean_report(const CleanCounts& counts, const std::string& output, const std::string& length_unit) {
  Record record("clean_report");
  record.set("path", output).set("records", counts.records).set("kept", counts.kept).set("dropped", counts.dropped_total());
  for (size_t i = 0; i < kDropReasons; ++i) record.set(kReasonNames[i], counts.dropped[i]);
  record.set("length_unit", length_unit);
  return record;
}

namespace {

class CleanCommand : public DataCommand {
 public:
  CleanCommand() : DataCommand("Drop empty, duplicate, too short or long, and malformed records from instruction JSONL", "clean") {
    add_option("inputs", inputs_, "JSONL files (plain or .zst); none or - reads stdin")->type_name("FILE");
    add_option("-o,--output", output_, "Write the kept records here (default: stdout)")->type_name("FILE");
    add_option("--tokenizer", tokenizer_, "Tokenizer directory (or tokenizer.json): lengths in tokens, messages rendered by its chat template")
        ->type_name("DIR");
    auto* min_tokens = add_option("--min-tokens", min_tokens_, "Drop records shorter than N tokens (needs --tokenizer)")
                           ->type_name("N")->check(cli::numeric<uint64_t>());
    auto* max_tokens = add_option("--max-tokens", max_tokens_, "Drop records longer than N tokens (needs --tokenizer)")
                           ->type_name("N")->check(cli::numeric<uint64_t>());
    auto* min_chars = add_option("--min-chars", min_chars_, "Drop records shorter than N characters (default: 1)")
                          ->type_name("N")->check(cli::numeric<uint64_t>());
    auto* max_chars = add_option("--max-chars", max_chars_, "Drop records longer than N characters")
                          ->type_name("N")->check(cli::numeric<uint64_t>());
    min_chars->excludes(min_tokens)->excludes(max_tokens);
    max_chars->excludes(min_tokens)->excludes(max_tokens);
    add_flag("--keep-duplicates", keep_duplicates_, "Keep records that repeat an earlier one");
    add_option("--report", report_, "Write the counts per reason as YAML to FILE")->type_name("FILE");
  }

  int run() override {
    apply_log_flags();
    bool in_tokens = min_tokens_ || max_tokens_;
    if (in_tokens && tokenizer_.empty()) throw UsageError("--min-tokens/--max-tokens need --tokenizer");
    CleanOptions options;
    options.drop_duplicates = !keep_duplicates_;
    bool by_tokens = in_tokens || (!tokenizer_.empty() && !min_chars_ && !max_chars_);
    options.min_length = (by_tokens ? min_tokens_ : min_chars_).value_or(1);
    options.max_length = by_tokens ? max_tokens_ : max_chars_;
    if (options.max_length && *options.max_length < options.min_length)
      throw UsageError(str("the maximum length (", *options.max_length, ") is below the minimum (", options.min_length, ")"));
    TokenizerFiles files;
    if (!tokenizer_.empty()) files = load_tokenizer_files(tokenizer_);
    RecordCleaner cleaner(options, by_tokens ? files.tokenizer.get() : nullptr, files.chat.get());
    std::string unit = by_tokens ? "tokens" : "characters";
    CleanCounts counts = output_.empty() ? clean_to_stdout(cleaner) : clean_to_file(cleaner);
    log_info("kept ", count_of(counts.kept, "record"), " of ", counts.records, summary(counts));
    Record report = clean_report(counts, output_.empty() ? "-" : output_, unit);
    if (!report_.empty()) write_file_atomic(report_, report.to_yaml());
    if (!output_.empty()) report.print();  // stdout holds the records themselves otherwise
    return 0;
  }

 private:
  std::vector<std::string> inputs_;
  std::string output_, tokenizer_, report_;
  std::optional<uint64_t> min_tokens_, max_tokens_, min_chars_, max_chars_;
  bool keep_duplicates_ = false;

  static std::string summary(const CleanCounts& counts) {
    std::string out;
    for (size_t i = 0; i < kDropReasons; ++i)
      if (counts.dropped[i]) out += str(out.empty() ? "; dropped " : ", ", counts.dropped[i], " ", kReasonNames[i]);
    return out;
  }

  CleanCounts clean_to_stdout(RecordCleaner& cleaner) {
    CleanCounts counts = clean_jsonl(inputs_, cleaner, [](const std::string& line) {
      if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fputc('\n', stdout) == EOF)
        throw ResourceError("cannot write to stdout");
    });
    if (std::fflush(stdout) != 0) throw ResourceError("cannot write to stdout");
    return counts;
  }

  CleanCounts clean_to_file(RecordCleaner& cleaner) {
    AtomicFile file(output_);
    CleanCounts counts = clean_jsonl(inputs_, cleaner, [&](const std::string& line) {
      file.write(line);
      file.write("\n");
    });
    file.commit();
    return counts;
  }
};

}  // namespace

void add_clean_command(CLI::App& app) { app.add_subcommand(std::make_shared<CleanCommand>()); }

}  // namespace dsk::finetune
