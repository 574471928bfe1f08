// Documents from text, paragraphs, JSONL and .zst inputs, and the three error policies.
#include <doctest/doctest.h>

#include <zstd.h>

#include <filesystem>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "tokenize/document_reader.hpp"
#include "../io/scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dsk;
using namespace dsk::tokenize;

namespace {

std::vector<Document> read_all(DocumentReader& reader) {
  std::vector<Document> documents;
  Document document;
  while (reader.next(document)) documents.push_back(document);
  return documents;
}

std::vector<Document> read_all(const std::vector<std::string>& inputs, ReaderOptions options) {
  DocumentReader reader(inputs, options);
  return read_all(reader);
}

std::string zstd_frame(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3));
  return out;
}
}  // namespace

TEST_CASE("text: one document per file, kept byte for byte; empty files are dropped and counted") {
  fs::path dir = scratch_dir("files");
  write_file_atomic(dir / "a.txt", "first file\r\nline two\n");
  write_file_atomic(dir / "empty.txt", "");
  write_file_atomic(dir / "b.txt", "second");
  DocumentReader reader({(dir / "a.txt").string(), (dir / "empty.txt").string(), (dir / "b.txt").string()}, {});
  auto documents = read_all(reader);
  REQUIRE(documents.size() == 2);
  CHECK(documents[0].text == "first file\r\nline two\n");
  CHECK(documents[0].number == 0);
  CHECK(documents[1].text == "second");
  CHECK(documents[1].number == 2);  // the empty file was document 1
  CHECK(documents[1].origin == (dir / "b.txt").string() + ":1");
  CHECK(reader.errors().empty == 1);
  CHECK(reader.bytes_read() == 27);
}

TEST_CASE("text: one document per blank-line-separated block") {
  fs::path dir = scratch_dir("paragraphs");
  write_file_atomic(dir / "p.txt", "\n\nIn the beginning\nGod created\n \n\n\nAnd the earth\n\nlast");
  ReaderOptions options;
  options.documents = TextDocuments::paragraph;
  auto documents = read_all({(dir / "p.txt").string()}, options);
  REQUIRE(documents.size() == 3);
  CHECK(documents[0].text == "In the beginning\nGod created");
  CHECK(documents[0].origin.ends_with("p.txt:3"));
  CHECK(documents[1].text == "And the earth");
  CHECK(documents[1].origin.ends_with("p.txt:8"));
  CHECK(documents[2].text == "last");
}

TEST_CASE("JSONL by extension, a named field, blank lines ignored") {
  fs::path dir = scratch_dir("jsonl");
  write_file_atomic(dir / "d.jsonl", "{\"text\": \"one\", \"id\": 1}\n\n{\"body\": \"x\", \"text\": \"two\\nlines \\u00e9\"}\n");
  auto documents = read_all({(dir / "d.jsonl").string()}, {});
  REQUIRE(documents.size() == 2);
  CHECK(documents[1].text == "two\nlines é");
  CHECK(documents[1].origin.ends_with("d.jsonl:3"));

  ReaderOptions options;
  options.jsonl_field = "body";
  options.on_error = ErrorPolicy::skip;
  DocumentReader reader({(dir / "d.jsonl").string()}, options);
  auto bodies = read_all(reader);
  REQUIRE(bodies.size() == 1);
  CHECK(bodies[0].text == "x");
  CHECK(reader.errors().bad_records == 1);  // line 1 has no "body"
}

TEST_CASE("zstd input is recognised by its magic, with or without the .zst name") {
  fs::path dir = scratch_dir("zstd");
  write_file_atomic(dir / "d.jsonl.zst", zstd_frame("{\"text\": \"packed\"}\n") + zstd_frame("{\"text\": \"twice\"}\n"));
  write_file_atomic(dir / "plain-name.txt", zstd_frame("compressed text"));
  auto jsonl = read_all({(dir / "d.jsonl.zst").string()}, {});
  REQUIRE(jsonl.size() == 2);
  CHECK(jsonl[1].text == "twice");
  auto text = read_all({(dir / "plain-name.txt").string()}, {});
  REQUIRE(text.size() == 1);
  CHECK(text[0].text == "compressed text");

  write_file_atomic(dir / "cut.txt.zst", zstd_frame(std::string(100000, 'a')).substr(0, 20));
  CHECK_THROWS_WITH_AS(read_all({(dir / "cut.txt.zst").string()}, {}), doctest::Contains("cut.txt.zst"), DataError);
}

TEST_CASE("a bad JSONL line: fail stops with its place; skip and replace drop it and count it") {
  fs::path dir = scratch_dir("bad-json");
  write_file_atomic(dir / "d.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n[1, 2]\n{\"text\": 5}\n{\"text\": \"end\"}\n");
  std::string file = (dir / "d.jsonl").string();
  ReaderOptions options;
  CHECK_THROWS_WITH_AS(read_all({file}, options), doctest::Contains("d.jsonl:2: bad JSON"), DataError);
  for (ErrorPolicy policy : {ErrorPolicy::skip, ErrorPolicy::replace}) {
    options.on_error = policy;
    DocumentReader reader({file}, options);
    auto documents = read_all(reader);
    REQUIRE(documents.size() == 2);
    CHECK(documents[1].text == "end");
    CHECK(documents[1].number == 4);
    CHECK(reader.errors().bad_records == 3);
    CHECK(reader.errors().skipped == 3);
  }
}

TEST_CASE("a number beyond a double in a JSONL line is a bad record, not an internal error") {
  fs::path dir = scratch_dir("json-1e309");
  write_file_atomic(dir / "d.jsonl", "{\"text\": \"a\", \"score\": 1e309}\n{\"text\": \"b\"}\n");
  std::string file = (dir / "d.jsonl").string();
  ReaderOptions options;
  CHECK_THROWS_WITH_AS(read_all({file}, options), doctest::Contains("d.jsonl:1: bad JSON"), DataError);
  options.on_error = ErrorPolicy::skip;
  CHECK(read_all({file}, options).size() == 1);
}

TEST_CASE("invalid UTF-8: fail names file, line and column; replace repairs; skip drops") {
  fs::path dir = scratch_dir("utf8");
  write_file_atomic(dir / "t.txt", "line one\nline \xFFtwo\n");
  write_file_atomic(dir / "d.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\xC3\"}\n");
  ReaderOptions options;
  CHECK_THROWS_WITH_AS(read_all({(dir / "t.txt").string()}, options),
                       doctest::Contains("t.txt:2: invalid UTF-8 (byte 0xFF at column 6)"), DataError);
  CHECK_THROWS_WITH_AS(read_all({(dir / "d.jsonl").string()}, options), doctest::Contains("d.jsonl:2: invalid UTF-8"),
                       DataError);

  options.on_error = ErrorPolicy::replace;
  DocumentReader replacing({(dir / "t.txt").string(), (dir / "d.jsonl").string()}, options);
  auto repaired = read_all(replacing);
  REQUIRE(repaired.size() == 3);
  CHECK(repaired[0].text == "line one\nline \xEF\xBF\xBDtwo\n");
  CHECK(repaired[2].text == "b\xEF\xBF\xBD");
  CHECK(replacing.errors().invalid_utf8 == 2);
  CHECK(replacing.errors().replaced == 2);

  options.on_error = ErrorPolicy::skip;
  DocumentReader skipping({(dir / "t.txt").string(), (dir / "d.jsonl").string()}, options);
  auto kept = read_all(skipping);
  REQUIRE(kept.size() == 1);
  CHECK(kept[0].text == "a");
  CHECK(skipping.errors().skipped == 2);
}

TEST_CASE("missing inputs and stdin twice are errors") {
  CHECK_THROWS_AS(read_all({"/nonexistent/dsk/input.txt"}, {}), DataError);
  CHECK_THROWS_AS(DocumentReader({"-", "-"}, {}), UsageError);
  CHECK(resolve_format(InputFormat::automatic, "x.ndjson.zst") == InputFormat::jsonl);
  CHECK(resolve_format(InputFormat::automatic, "-") == InputFormat::text);
  CHECK(resolve_format(InputFormat::jsonl, "a.txt") == InputFormat::jsonl);
  CHECK_THROWS_AS(parse_error_policy("ignore"), UsageError);
}
