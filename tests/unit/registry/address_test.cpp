#include <doctest/doctest.h>

#include "core/error.hpp"
#include "registry/address.hpp"

using namespace dsk::registry;

TEST_CASE("s3 URLs split into bucket and key") {
  auto address = parse_s3_url("s3://models/deepseek-vision/1.0/manifest.yaml");
  CHECK(address.bucket == "models");
  CHECK(address.key == "deepseek-vision/1.0/manifest.yaml");
  CHECK(parse_s3_url("s3://models").key.empty());
  CHECK_THROWS_AS(parse_s3_url("http://models/x"), dsk::UsageError);
  CHECK_THROWS_AS(parse_s3_url("s3://"), dsk::UsageError);
  CHECK_THROWS_AS(parse_s3_url("s3:///key"), dsk::UsageError);
}

TEST_CASE("AWS is addressed virtual-host style, a given endpoint path style") {
  ObjectAddress object{"models", "a b/c"};
  auto aws = target_of(make_endpoint("", "eu-west-1", false), object);
  CHECK(aws.host == "models.s3.eu-west-1.amazonaws.com");
  CHECK(aws.path == "/a b/c");

  auto local = make_endpoint("http://127.0.0.1:4568/", "us-east-1", false);
  CHECK(local.scheme == "http");
  auto target = target_of(local, object);
  CHECK(target.host == "127.0.0.1:4568");
  CHECK(target.path == "/models/a b/c");

  auto virtual_local = target_of(make_endpoint("http://s3.local:9000", "us-east-1", true), object);
  CHECK(virtual_local.host == "models.s3.local:9000");
  CHECK(virtual_local.path == "/a b/c");

  CHECK_THROWS_AS(make_endpoint("127.0.0.1:4568", "us-east-1", false), dsk::UsageError);
  CHECK_THROWS_AS(make_endpoint("ftp://h", "us-east-1", false), dsk::UsageError);
  CHECK_THROWS_AS(make_endpoint("http://h/path", "us-east-1", false), dsk::UsageError);
}
