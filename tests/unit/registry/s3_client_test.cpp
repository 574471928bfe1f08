// The S3 client and multipart upload against s3rver on loopback (loopback_s3.hpp).
#include <doctest/doctest.h>

#include <fstream>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/sha256.hpp"
#include "loopback_s3.hpp"
#include "registry/multipart.hpp"

using namespace dsk::registry;
using namespace dsk::registry::testing;

namespace {

MultipartOptions parts_of(long long part_size, int concurrency) {
  MultipartOptions options;
  options.part_size = part_size;
  options.concurrency = concurrency;
  return options;
}

}  // namespace

TEST_CASE("put, head, ranged get and delete against s3rver") {
  REQUIRE_S3RVER();
  LoopbackS3 server;
  S3Client client(connection_to(server, "S3RVER"));
  REQUIRE(server.ready(client));

  ObjectAddress object{"models", "deepseek-vision/1.0/weights part.bin"};
  std::string bytes = "0123456789abcdefghij";
  CHECK(!client.put(object, bytes).empty());
  auto info = client.head(object);
  REQUIRE(info.has_value());
  CHECK(info->size == 20);
  CHECK(client.get(object) == bytes);
  CHECK(client.get(object, std::pair{5LL, 9LL}) == "56789");
  client.remove(object);
  CHECK(!client.head(object).has_value());
  CHECK(!client.get(object).has_value());

  S3Client wrong(connection_to(server, "NOT-A-KEY"));
  try {
    wrong.put(object, bytes);
    FAIL("an unknown access key was accepted");
  } catch (const dsk::RemoteError& error) {
    std::string message = error.what();
    CHECK(message.find("InvalidAccessKeyId") != std::string::npos);
    CHECK(message.find("HTTP 403") != std::string::npos);
    CHECK(message.find("S3RVER") == std::string::npos);  // the secret is never shown
  }
}

TEST_CASE("listing follows continuation tokens across pages") {
  REQUIRE_S3RVER();
  LoopbackS3 server;
  S3Client client(connection_to(server, "S3RVER"));
  REQUIRE(server.ready(client));
  for (int i = 0; i < 7; ++i) client.put({"models", "m/1.0/file" + std::to_string(i)}, "x");
  client.put({"models", "other/file"}, "y");
  auto listed = client.list({"models", "m/"}, 3);
  REQUIRE(listed.size() == 7);
  CHECK(listed.front().key == "m/1.0/file0");
  CHECK(listed.back().key == "m/1.0/file6");
  CHECK(listed.front().size == 1);
}

TEST_CASE("a file spanning three parts uploads from parallel threads and reads back whole") {
  REQUIRE_S3RVER();
  LoopbackS3 server;
  S3Client client(connection_to(server, "S3RVER"));
  REQUIRE(server.ready(client));
  auto file = std::filesystem::temp_directory_path() /
              ("dsk-multipart-" + std::to_string(::getpid()));
  std::string bytes;
  for (int i = 0; i < (11 << 20); ++i) bytes += static_cast<char>((i * 7 + i / 4099) & 0xff);
  std::ofstream(file, std::ios::binary) << bytes;
  ObjectAddress object{"models", "m/1.0/model.safetensors"};
  std::string etag = upload_multipart(connection_to(server, "S3RVER"), file, object, parts_of(5 << 20, 3),
                                      dsk::sha256_hex(bytes));
  CHECK(etag == "\"" + md5_hex(bytes) + "\"");  // s3rver's ETag of a multipart object: its MD5
  CHECK(client.head(object)->size == static_cast<long long>(bytes.size()));
  CHECK(client.get(object) == bytes);
  CHECK(client.get(object, std::pair{(5LL << 20) - 2, (5LL << 20) + 1}) ==
        bytes.substr((5 << 20) - 2, 4));

  ObjectAddress refused{"no-such-bucket", "x"};
  CHECK_THROWS_AS(upload_multipart(connection_to(server, "S3RVER"), file, refused, parts_of(5 << 20, 2),
                                   dsk::sha256_hex(bytes)),
                  dsk::RemoteError);

  // Hashed before the upload, changed before its parts were read: nothing is stored.
  ObjectAddress changed{"models", "m/2.0/model.safetensors"};
  CHECK_THROWS_AS(upload_multipart(connection_to(server, "S3RVER"), file, changed, parts_of(5 << 20, 3),
                                   dsk::sha256_hex("other bytes")),
                  dsk::DataError);
  CHECK(!client.head(changed).has_value());
  std::filesystem::remove(file);
}

TEST_CASE("S3 XML errors are summarised, anything else is not") {
  CHECK(s3_error_summary("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
                         "<Message>gone</Message></Error>") == "NoSuchKey: gone");
  CHECK(s3_error_summary("not xml").empty());
  CHECK(s3_error_summary("<Other/>").empty());
}

TEST_CASE("a list page is read from ListObjectsV2 XML") {
  ListPage page = parse_list_page(
      "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t1"
      "</NextContinuationToken><Contents><Key>a/b</Key><Size>12</Size><ETag>\"e\"</ETag>"
      "</Contents></ListBucketResult>");
  REQUIRE(page.objects.size() == 1);
  CHECK(page.objects[0].key == "a/b");
  CHECK(page.objects[0].size == 12);
  CHECK(page.next_token == "t1");
  CHECK_THROWS_AS(parse_list_page("<Error/>"), dsk::RemoteError);
}

TEST_CASE("a refused connection is retried with backoff, then reported with the count") {
  Connection connection{{"S3RVER", "S3RVER", ""}, "us-east-1", "http://127.0.0.1:1"};
  connection.attempts = 3;
  connection.first_backoff_ms = 10;
  S3Client client(connection);
  try {
    client.head({"models", "x"});
    FAIL("a closed port answered");
  } catch (const dsk::RemoteError& error) {
    CHECK(std::string(error.what()).find("after 3 tries") != std::string::npos);
  }
}
