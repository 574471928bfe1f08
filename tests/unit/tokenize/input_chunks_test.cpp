// Cutting inputs into chunks changes nothing: for any chunk size, the documents, their numbers,
// origins and the warnings are those of reading each input as one piece.
#include <doctest/doctest.h>

#include <filesystem>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "tokenize/chunk_documents.hpp"
#include "tokenize/input_chunks.hpp"
#include "../io/scratch_dir.hpp"

namespace fs = std::filesystem;
using namespace dsk;
using namespace dsk::tokenize;

namespace {

struct Read {
  std::vector<Document> documents;
  std::vector<std::string> warnings;
  uint64_t chunks = 0;
  uint64_t empty = 0;
};

// Documents numbered across chunks, as the pipeline's writer numbers them.
Read read_in_chunks(const std::vector<std::string>& inputs, const ReaderOptions& options, size_t chunk_bytes) {
  Read read;
  ChunkReader reader(inputs, options, chunk_bytes);
  InputChunk chunk;
  uint64_t numbered = 0;
  while (reader.next(chunk)) {
    ChunkDocuments documents = chunk_documents(chunk, options);
    for (Document& document : documents.documents) {
      document.number += numbered;
      read.documents.push_back(std::move(document));
    }
    numbered += documents.numbered;
    read.warnings.insert(read.warnings.end(), documents.warnings.begin(), documents.warnings.end());
    read.empty += documents.errors.empty;
    ++read.chunks;
  }
  return read;
}

void check_same(const Read& whole, const Read& cut) {
  REQUIRE(cut.documents.size() == whole.documents.size());
  for (size_t i = 0; i < whole.documents.size(); ++i) {
    CHECK(cut.documents[i].text == whole.documents[i].text);
    CHECK(cut.documents[i].number == whole.documents[i].number);
    CHECK(cut.documents[i].origin == whole.documents[i].origin);
  }
  CHECK(cut.warnings == whole.warnings);
  CHECK(cut.empty == whole.empty);
}

}  // namespace

TEST_CASE("paragraphs: blank lines of spaces, tabs and CRs end them wherever the cut falls") {
  fs::path dir = scratch_dir("chunks-paragraphs");
  const std::string text =
      "\n\nIn the beginning\r\nGod created\r\n \t\r\n\r\nAnd the earth\nwas without form\n\n\n\n"
      "x\n \ny\n\t\nlong paragraph line one\nline two\nline three\n\n\xFF bad byte\n\nlast, no newline  ";
  write_file_atomic(dir / "p.txt", text);
  write_file_atomic(dir / "q.txt", "second input\n\nits second paragraph\n");
  ReaderOptions options;
  options.documents = TextDocuments::paragraph;
  options.on_error = ErrorPolicy::replace;
  const std::vector<std::string> inputs = {(dir / "p.txt").string(), (dir / "q.txt").string()};
  const Read whole = read_in_chunks(inputs, options, 1 << 20);
  REQUIRE(whole.chunks == 2);
  REQUIRE(whole.documents.size() == 9);
  CHECK(whole.documents[0].text == "In the beginning\r\nGod created\r");
  CHECK(whole.documents[1].origin.ends_with("p.txt:7"));
  CHECK(whole.documents[5].text == "\xEF\xBF\xBD bad byte");
  CHECK(whole.documents[6].text == "last, no newline  ");
  CHECK(whole.documents[8].origin.ends_with("q.txt:3"));
  REQUIRE(whole.warnings.size() == 1);
  CHECK(whole.warnings[0].ends_with("p.txt:20: invalid UTF-8 (byte 0xFF at column 1); replaced by U+FFFD"));
  for (size_t chunk_bytes : {1, 2, 3, 5, 8, 13, 21, 40, 100}) {
    INFO("chunk_bytes " << chunk_bytes);
    const Read cut = read_in_chunks(inputs, options, chunk_bytes);
    CHECK(cut.chunks > 2);
    check_same(whole, cut);
  }
}

TEST_CASE("JSONL: lines, blank lines, bad records and numbering across cuts") {
  fs::path dir = scratch_dir("chunks-jsonl");
  const std::string text =
      "{\"text\": \"one\"}\n\n  \n{\"text\": \"two\", \"meta\": {\"a\": [1, 2]}}\n{\"text\": 3}\n{\"text\": \"\"}\n"
      "{\"text\": \"caf\xC3\"}\n{\"text\": \"\\u00e9t\\u00e9\"}\n[1]\n{\"text\": \"no newline at the end\"}";
  write_file_atomic(dir / "d.jsonl", text);
  ReaderOptions options;
  options.on_error = ErrorPolicy::skip;
  const std::vector<std::string> inputs = {(dir / "d.jsonl").string()};
  const Read whole = read_in_chunks(inputs, options, 1 << 20);
  REQUIRE(whole.documents.size() == 4);
  CHECK(whole.documents[1].number == 1);
  CHECK(whole.documents[2].text == "été");
  CHECK(whole.documents[2].number == 5);
  CHECK(whole.documents[3].number == 7);
  CHECK(whole.documents[3].origin.ends_with("d.jsonl:10"));
  CHECK(whole.warnings.size() == 3);
  CHECK(whole.empty == 1);
  for (size_t chunk_bytes : {1, 2, 7, 16, 33, 64}) {
    INFO("chunk_bytes " << chunk_bytes);
    check_same(whole, read_in_chunks(inputs, options, chunk_bytes));
  }
}

TEST_CASE("a whole file is one chunk however small the chunk size; an empty file is a document") {
  fs::path dir = scratch_dir("chunks-files");
  write_file_atomic(dir / "a.txt", std::string(5000, 'a'));
  write_file_atomic(dir / "empty.txt", "");
  ReaderOptions options;
  const Read read = read_in_chunks({(dir / "a.txt").string(), (dir / "empty.txt").string()}, options, 16);
  CHECK(read.chunks == 2);
  REQUIRE(read.documents.size() == 1);
  CHECK(read.documents[0].text.size() == 5000);
  CHECK(read.empty == 1);
}

TEST_CASE("under ErrorPolicy::fail the first problem of a chunk is a DataError with its place") {
  fs::path dir = scratch_dir("chunks-fail");
  write_file_atomic(dir / "d.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"text\": 5}\n");
  ReaderOptions options;
  CHECK_THROWS_WITH_AS(read_in_chunks({(dir / "d.jsonl").string()}, options, 20),
                       doctest::Contains("d.jsonl:3: field \"text\" is not a string"), DataError);
}
