#include <doctest/doctest.h>

#include "core/error.hpp"
#include "core/units.hpp"

using namespace dsk;

TEST_CASE("sizes read the way nccl-tests and the AWS CLI read them") {
  CHECK(parse_size("8", "-b") == 8);
  CHECK(parse_size("8B", "-b") == 8);
  CHECK(parse_size("64K", "-b") == 65536);
  CHECK(parse_size("1M", "-b") == 1048576);
  CHECK(parse_size("1.5GiB", "-b") == 1610612736ull);
  CHECK(parse_size("8G", "-e") == 8589934592ull);
  CHECK_THROWS_AS(parse_size("lots", "-b"), UsageError);
  CHECK_THROWS_AS(parse_size("5Q", "-b"), UsageError);
  CHECK_THROWS_AS(parse_size("-1", "-b"), UsageError);
}

TEST_CASE("durations") {
  CHECK(parse_duration("30", "x") == 30);
  CHECK(parse_duration("5m", "x") == 300);
  CHECK(parse_duration("2h", "x") == 7200);
  CHECK(parse_duration("7d", "x") == 604800);
  CHECK_THROWS_AS(parse_duration("soon", "x"), UsageError);
}

TEST_CASE("counts read as English: one document, two documents") {
  CHECK(count_of(1, "document") == "1 document");
  CHECK(count_of(0, "shard") == "0 shards");
  CHECK(count_of(12, "token") == "12 tokens");
}
