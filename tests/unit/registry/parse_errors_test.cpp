// Registry files and S3 answers that a fuzzer broke dsk-upload with: each is refused with the
// error its source calls for (DataError for a registry file, RemoteError for an answer), never
// an internal error, and nothing outside a version's directory is accepted as one of its files.
#include <doctest/doctest.h>

#include <string>

#include "core/error.hpp"
#include "registry/aliases.hpp"
#include "registry/lifecycle.hpp"
#include "registry/s3_client.hpp"
#include "registry/version_store.hpp"

using namespace dsk::registry;

namespace {

std::string manifest_with(const std::string& path, const std::string& sha256) {
  return "name: m\nversion: \"1\"\ncreated: now\nfiles:\n  - {path: " + path + ", size: 1, sha256: " + sha256 + "}\n";
}

}  // namespace

TEST_CASE("a manifest names files inside the version, by a lowercase hex sha256") {
  const std::string hex(64, 'a');
  CHECK_NOTHROW(parse_manifest(manifest_with("dsk/state.yaml", hex), "m.yaml"));
  for (const char* path : {"dsk/./state.yaml", "dsk//state.yaml", "dsk/", "./x", "a/../../x", "..", "/etc/x"})
    CHECK_THROWS_WITH_AS(parse_manifest(manifest_with(std::string("'") + path + "'", hex), "m.yaml"),
                         doctest::Contains("must be relative"), dsk::DataError);
  CHECK_THROWS_WITH_AS(parse_manifest(manifest_with("x", std::string(64, 'z')), "m.yaml"),
                       doctest::Contains("64-hex sha256"), dsk::DataError);
}

TEST_CASE("an alias or version that is a mapping is a DataError naming the file (once a bare YAML error)") {
  CHECK_THROWS_WITH_AS(parse_aliases("aliases:\n  {a: 1}: {\"1.0\": 1}\n", "m/aliases.yaml"),
                       doctest::Contains("m/aliases.yaml:2: alias must be a name, not a mapping"), dsk::DataError);
  CHECK_THROWS_WITH_AS(parse_aliases("aliases:\n  prod: {[1]: 1}\n", "m/aliases.yaml"),
                       doctest::Contains("version must be a name, not a list"), dsk::DataError);
}

TEST_CASE("sizes and days in answers that are not numbers are RemoteErrors (once std::stoll's internal error)") {
  CHECK_THROWS_WITH_AS(parse_list_page("<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents></ListBucketResult>"),
                       doctest::Contains("<Size> '12x' is not a byte count"), dsk::RemoteError);
  CHECK_THROWS_WITH_AS(
      parse_lifecycle("<LifecycleConfiguration><Rule><Expiration><Days>99999999999</Days></Expiration></Rule>"
                      "</LifecycleConfiguration>"),
      doctest::Contains("'99999999999' where a number of days belongs"), dsk::RemoteError);
}

TEST_CASE("lifecycle rules with XML's special characters write as XML that reads back the same") {
  std::vector<LifecycleRule> rules{{"a&b", "x<y>\r", true, 3, 0}};
  auto again = parse_lifecycle(lifecycle_to_xml(rules));
  REQUIRE(again.size() == 1);
  CHECK(again[0].id == "a&b");
  CHECK(again[0].prefix == "x<y>\r");
}
