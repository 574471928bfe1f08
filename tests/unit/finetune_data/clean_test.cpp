// clean: each drop reason on a record built to trigger it, order and bytes of kept records,
// lengths in characters and in tokens, the report, and the subcommand's flags and exit codes.
#include <doctest/doctest.h>

#include "core/cli.hpp"
#include "core/error.hpp"
#include "core/fs.hpp"
#include "finetune/data/clean.hpp"
#include "test_files.hpp"

using namespace dsk;
using namespace dsk::finetune;
using dsk::finetune::testing::ScratchDirectory;

namespace {

struct Outcome {
  std::vector<std::string> kept;
  CleanCounts counts;
};

Outcome clean_text(const std::string& jsonl, CleanOptions options = {}, const tokenizer::Tokenizer* tokenizer = nullptr,
                   const chat::ChatTemplate* chat = nullptr) {
  ScratchDirectory dir("clean");
  auto input = dir.write("in.jsonl", jsonl);
  RecordCleaner cleaner(options, tokenizer, chat);
  Outcome out;
  out.counts = clean_jsonl({input.string()}, cleaner, [&](const std::string& line) { out.kept.push_back(line); });
  return out;
}

uint64_t dropped(const CleanCounts& c, DropReason r) { return c.dropped[size_t(r)]; }


}  // namespace

TEST_CASE("every drop reason, counted, and the kept records in order and unchanged") {
  std::string jsonl =
      "{\"prompt\": \"2+2?\", \"completion\": \"4\", \"id\": 1}\n"       // kept
      "{\"prompt\": \"bad\xff\", \"completion\": \"x\"}\n"                // invalid_utf8
      "{\"prompt\": \"unterminated\n"                                    // invalid_json
      "[1, 2]\n"                                                         // invalid_json (not an object)
      "{\"prompt\": \"q\", \"completion\": 4}\n"                         // bad_fields
      "{\"question\": \"q\"}\n"                                          // bad_fields
      "{\"messages\": [{\"content\": \"no role\"}]}\n"                   // bad_fields
      "   \n"                                                            // empty (blank line)
      "{\"prompt\": \"q\", \"completion\": \"  \\n \"}\n"                // empty (nothing to train on)
      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"\"}]}\n"  // empty
      "{\"prompt\": \"2+2?\", \"completion\": \"4\", \"id\": 2}\n"       // duplicate (ids do not count)
      "{\"prompt\": \" 2+2?\\r\\n\", \"completion\": \"4 \"}\n"          // duplicate (normalized)
      "{\"text\": \"é\"}\n"                                              // too_short (1 character < 2)
      "{\"text\": \"0123456789abcdef0123456789abcdef\"}\n"               // too_long (32 > 30)
      "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}], \"z\": 0}\n"  // kept
      "{\"prompt\": \"unlabelled\"}";                                    // kept (no final newline)
  CleanOptions options;
  options.min_length = 2;
  options.max_length = 30;  // the conversation measures 23: "user: hi\nassistant: yo\n"
  Outcome out = clean_text(jsonl, options);
  CHECK(out.counts.records == 16);
  CHECK(out.counts.kept == 3);
  CHECK(dropped(out.counts, DropReason::invalid_utf8) == 1);
  CHECK(dropped(out.counts, DropReason::invalid_json) == 2);
  CHECK(dropped(out.counts, DropReason::bad_fields) == 3);
  CHECK(dropped(out.counts, DropReason::empty) == 3);
  CHECK(dropped(out.counts, DropReason::duplicate) == 2);
  CHECK(dropped(out.counts, DropReason::too_short) == 1);
  CHECK(dropped(out.counts, DropReason::too_long) == 1);
  REQUIRE(out.kept.size() == 3);
  CHECK(out.kept[0] == "{\"prompt\": \"2+2?\", \"completion\": \"4\", \"id\": 1}");
  CHECK(out.kept[1].find("\"z\": 0") != std::string::npos);
  CHECK(out.kept[2] == "{\"prompt\": \"unlabelled\"}");
}

TEST_CASE("duplicates can be kept, and are told apart by kind and content") {
  std::string jsonl = "{\"text\": \"a b\"}\n{\"text\": \"a b\"}\n{\"prompt\": \"a b\"}\n{\"text\": \"a  b\"}\n";
  CHECK(clean_text(jsonl).counts.kept == 3);
  CleanOptions keep;
  keep.drop_duplicates = false;
  CHECK(clean_text(jsonl, keep).counts.kept == 4);
}

TEST_CASE("lengths in tokens with a tokenizer, messages rendered by the chat template") {
  auto tokenizer = tokenizer::Tokenizer::load(dsk::finetune::testing::kTinyTokenizer);
  std::string text = "{\"text\": \"hello world hello world\"}\n";
  size_t tokens = tokenizer.encode("hello world hello world").size();
  REQUIRE(tokens > 2);
  CleanOptions exact;
  exact.min_length = tokens;
  exact.max_length = tokens;
  CHECK(clean_text(text, exact, &tokenizer).counts.kept == 1);
  exact.max_length = tokens - 1;
  CHECK(dropped(clean_text(text, exact, &tokenizer).counts, DropReason::too_long) == 1);

  chat::ChatTemplate chat = chat::ChatTemplate::load(dsk::finetune::testing::kChatFixtures / "qwen2");
  std::string conversation = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}";
  chat::Value messages = chat::Value::from_json(nlohmann::ordered_json::parse(conversation)["messages"]);
  size_t rendered = tokenizer.encode(chat.render(messages)).size();
  CleanOptions rendered_exact;
  rendered_exact.min_length = rendered;
  rendered_exact.max_length = rendered;
  CHECK(clean_text(conversation, rendered_exact, &tokenizer, &chat).counts.kept == 1);
  rendered_exact.min_length = rendered + 1;
  rendered_exact.max_length = std::nullopt;
  CHECK(dropped(clean_text(conversation, rendered_exact, &tokenizer, &chat).counts, DropReason::too_short) == 1);
}

TEST_CASE("a conversation the chat template refuses is dropped as template_error") {
  chat::ChatTemplate strict = chat::ChatTemplate::from_string(
      "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
      "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
      "[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}",
      "strict");
  std::string jsonl =
      "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n"
      "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]}\n";
  Outcome out = clean_text(jsonl, {}, nullptr, &strict);
  CHECK(out.counts.kept == 1);
  CHECK(dropped(out.counts, DropReason::template_error) == 1);
}

TEST_CASE("the clean subcommand: output file, report, stdout record, usage errors") {
  ScratchDirectory dir("clean-cli");
  auto input = dir.write("in.jsonl", "{\"text\": \"one\"}\n{\"text\": \"one\"}\nnot json\n{\"text\": \"two two\"}\n");
  auto output = dir / "out.jsonl";
  auto report = dir / "report.yaml";
  CHECK(testing::run_data_cli({"clean", "-q", input.string(), "-o", output.string(), "--report", report.string(), "--max-chars", "5"}) == 0);
  CHECK(read_file(output) == "{\"text\": \"one\"}\n");
  std::string yaml = read_file(report);
  CHECK(yaml.find("kind: clean_report") != std::string::npos);
  CHECK(yaml.find("records: 4") != std::string::npos);
  CHECK(yaml.find("kept: 1") != std::string::npos);
  CHECK(yaml.find("duplicate: 1") != std::string::npos);
  CHECK(yaml.find("invalid_json: 1") != std::string::npos);
  CHECK(yaml.find("too_long: 1") != std::string::npos);
  CHECK(yaml.find("length_unit: characters") != std::string::npos);

  CHECK(testing::run_data_cli({"clean", "-q", input.string(), "--min-tokens", "3"}) == 2);  // needs --tokenizer
  CHECK(testing::run_data_cli({"clean", "-q", input.string(), "--min-chars", "9", "--max-chars", "3"}) == 2);
  CHECK(testing::run_data_cli({"clean", "-q", input.string(), "--min-chars", "-1"}) == 2);
  CHECK(testing::run_data_cli({"clean", "-q", (dir / "missing.jsonl").string(), "-o", output.string()}) == 3);
  CHECK(testing::run_data_cli({"clean", "-q", input.string(), "--tokenizer", (dir / "nope").string()}) == 2);
}
