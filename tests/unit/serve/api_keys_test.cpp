// API keys: the file format, the environment key, and what an Authorization header must hold.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "core/error.hpp"
#include "serve/api_keys.hpp"

using namespace dsk;
using namespace dsk::serve;

TEST_CASE("keys from a file (comments and blank lines skipped) and the environment") {
  auto file = std::filesystem::temp_directory_path() / ("dsk-serve-keys-" + std::to_string(::getpid()));
  std::ofstream(file) << "# team keys\nsk-one\n\n  sk-two  \r\n";
  ApiKeys keys = ApiKeys::load(file, std::string("sk-env"));
  CHECK(keys.enabled());
  CHECK(keys.size() == 3);
  CHECK(keys.accepts("Bearer sk-one"));
  CHECK(keys.accepts("Bearer sk-two"));
  CHECK(keys.accepts("Bearer sk-env"));
  CHECK(!keys.accepts("Bearer sk-on"));      // a prefix is not the key
  CHECK(!keys.accepts("Bearer sk-one "));    // nor a longer string
  CHECK(!keys.accepts("sk-one"));            // the scheme is required
  CHECK(!keys.accepts("Bearer # team keys"));
  CHECK(!keys.accepts(""));
  std::ofstream(file) << "# only a comment\n";
  CHECK_THROWS_AS(ApiKeys::load(file, std::nullopt), UsageError);
  std::filesystem::remove(file);
  CHECK_THROWS_AS(ApiKeys::load(file, std::nullopt), UsageError);
}

TEST_CASE("no keys: everything is accepted by the server (enabled() is false)") {
  CHECK(!ApiKeys::load(std::nullopt, std::nullopt).enabled());
  CHECK(!ApiKeys::load(std::nullopt, std::string("  ")).enabled());
}
