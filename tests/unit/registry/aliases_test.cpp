#include <doctest/doctest.h>

#include "core/error.hpp"
#include "registry/aliases.hpp"

using namespace dsk::registry;

TEST_CASE("aliases.yaml round-trips with weights in order") {
  AliasTable table = parse_aliases(
      "aliases:\n  prod: {\"1.0\": 90, \"1.1\": 10}\n  canary:\n    \"1.1\": 100\n",
      "m/aliases.yaml");
  REQUIRE(table.size() == 2);
  CHECK(table["prod"] == std::vector<WeightedVersion>{{"1.0", 90}, {"1.1", 10}});
  CHECK(table["canary"] == std::vector<WeightedVersion>{{"1.1", 100}});
  CHECK(parse_aliases(aliases_to_yaml(table), "again") == table);
  CHECK(aliased_versions(table) == std::set<std::string>{"1.0", "1.1"});
  CHECK(parse_aliases("", "empty").empty());
}

TEST_CASE("a bad aliases.yaml is a data error naming the file") {
  for (const char* bad : {"aliases: [1, 2]\n", "aliases:\n  prod: {\"1.0\": 0}\n",
                          "aliases:\n  prod: {\"1.0\": lots}\n", "aliases:\n  prod: {}\n",
                          "aliases:\n  \"pr od\": {\"1.0\": 1}\n", "aliases: {prod: [\n"}) {
    try {
      parse_aliases(bad, "m/aliases.yaml");
      FAIL("accepted: " << bad);
    } catch (const dsk::DataError& error) {
      CHECK(std::string(error.what()).find("m/aliases.yaml") != std::string::npos);
    }
  }
}

TEST_CASE("weight specs read like the command line writes them") {
  CHECK(parse_weight_spec("1.0") == std::vector<WeightedVersion>{{"1.0", 100}});
  CHECK(parse_weight_spec("1.0=90,1.1=10") ==
        std::vector<WeightedVersion>{{"1.0", 90}, {"1.1", 10}});
  for (const char* bad : {"", "1.0=0", "1.0=x", "1.0=90,1.1", "1.0=9a", "a/b=1", "1.0=90,"})
    CHECK_THROWS_AS(parse_weight_spec(bad), dsk::UsageError);
}

TEST_CASE("draws split traffic by weight") {
  std::vector<WeightedVersion> prod{{"1.0", 90}, {"1.1", 10}};
  CHECK(pick_version(prod, 0.0) == "1.0");
  CHECK(pick_version(prod, 0.899) == "1.0");
  CHECK(pick_version(prod, 0.9) == "1.1");
  CHECK(pick_version(prod, 0.999999) == "1.1");
  int to_new = 0;
  for (int i = 0; i < 1000; ++i) to_new += pick_version(prod, i / 1000.0) == "1.1";
  CHECK(to_new == 100);
}
