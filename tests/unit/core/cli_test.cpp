// Numeric flags that stand for no config key are checked with the config's wording.
#include <doctest/doctest.h>

#include "core/cli.hpp"

using namespace dsk;

namespace {
// The message CLI11 gives for `--count VALUE`, or "" when it parses.
template <typename T>
std::string parse_error(const std::string& value, std::optional<double> minimum = std::nullopt,
                        std::optional<double> maximum = std::nullopt) {
  CLI::App app{"test", "test"};
  T target{};
  app.add_option("--count", target)->check(cli::numeric<T>(minimum, maximum));
  try {
    app.parse(std::vector<std::string>{value, "--count"});  // CLI11 takes the arguments reversed
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("numeric flags: the config's messages, under the flag's name") {
  CHECK(parse_error<int>("3", 1) == "");
  CHECK(parse_error<int>("0", 1) == "--count: must be at least 1, got 0");
  CHECK(parse_error<int>("abc", 1) == "--count: expects an integer, got 'abc'");
  CHECK(parse_error<int>("3000000000") == "--count: must be at most 2147483647, got 3000000000");
  CHECK(parse_error<uint64_t>("-1") == "--count: must be at least 0, got -1");
  CHECK(parse_error<float>("1.5", 0, 1) == "--count: must be at most 1, got 1.5");
  CHECK(parse_error<double>("fast") == "--count: expects a number, got 'fast'");
}
