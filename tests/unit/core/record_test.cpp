// Records round-trip through YAML and resolve "-" arguments by kind.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "core/record.hpp"

using namespace dsk;

TEST_CASE("a record prints as flat YAML and parses back") {
  Record record("checkpoint");
  record.set("path", "runs/tiny/checkpoints/step-000500").set("step", int64_t{500}).set("val_loss", 3.21);
  record.set("resumed", false);
  std::string text = record.to_yaml();
  CHECK(text.rfind("kind: checkpoint\n", 0) == 0);
  CHECK(text.find("step: 500") != std::string::npos);
  Record back = Record::parse(text, "test");
  CHECK(back.kind() == "checkpoint");
  CHECK(back.require("path") == "runs/tiny/checkpoints/step-000500");
  CHECK(back.get("val_loss") == "3.21");
  CHECK(back.get("resumed") == "false");
  CHECK_FALSE(back.get("missing"));
}

TEST_CASE("odd strings survive quoting") {
  Record record("shards");
  record.set("path", "dir with: colon # and hash").set("note", "123abc").set("empty", "");
  Record back = Record::parse(record.to_yaml(), "test");
  CHECK(back.require("path") == "dir with: colon # and hash");
  CHECK(back.require("note") == "123abc");
  // Control characters (found by tests/fuzz/record_fuzz.cpp: a trailing CR was lost).
  record.set("path", "a\r\r").set("ctrl\x01key", "tab\tand\x7f");
  back = Record::parse(record.to_yaml(), "test");
  CHECK(back.require("path") == "a\r\r");
  CHECK(back.require("ctrl\x01key") == "tab\tand\x7f");
}

TEST_CASE("a malformed record is a data error") {
  CHECK_THROWS_AS(Record::parse("just text", "t"), DataError);
  CHECK_THROWS_AS(Record::parse("path: x\n", "t"), DataError);
  CHECK_THROWS_AS(Record::parse("kind: a\nlist: [1, 2]\n", "t"), DataError);
  CHECK_THROWS_AS(Record("x").require("path"), DataError);
}

TEST_CASE("a kind or key that is not a plain word is a data error naming the source, not a bare YAML error") {
  CHECK_THROWS_WITH_AS(Record::parse("kind: {a: 1}\npath: x\n", "<stdin>"), doctest::Contains("<stdin>: the record's 'kind'"),
                       DataError);
  CHECK_THROWS_WITH_AS(Record::parse_last("---\nkind: checkpoint\n[a, b]: 1\n", "<stdin>"),
                       doctest::Contains("<stdin>: a record's keys must be plain names"), DataError);
  CHECK(Record::parse_last("kind: shards\npath: a\n---\nkind: checkpoint\npath: b\n", "<stdin>").require("path") == "b");
}

TEST_CASE("a stream of documents: the last record wins; a malformed one is an error, not an endless loop") {
  // yaml-cpp 0.7's LoadAll allocated without end on this (found by tests/fuzz/record_fuzz.cpp).
  CHECK_THROWS_AS(Record::parse_last(",--\nkind:", "<stdin>"), UsageError);
  CHECK(Record::parse_last("---\nkind: shards\n...\n--- {kind: checkpoint, path: b}\n---\n", "<stdin>").kind() == "checkpoint");
  // No usable record where one is expected is a usage error (dsk(7)), naming where the YAML broke.
  CHECK_THROWS_WITH_AS(Record::parse_last("kind: a\n---\nkind: b\npath: [\n", "<stdin>"), doctest::Contains("<stdin>:5"),
                       UsageError);
}

TEST_CASE("a plain path argument is returned as it is") {
  CHECK(resolve_artifact_path("runs/a", {"checkpoint"}) == "runs/a");
}
