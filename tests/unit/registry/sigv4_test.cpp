// The signer against vectors AWS publishes: the SigV4 test suite's get-vanilla and the S3
// developer guide's header-signing and presigned-URL examples.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "registry/sigv4.hpp"

using namespace dsk::registry;

namespace {
const std::string empty_sha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const Credentials s3_example{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                             ""};
}  // namespace

TEST_CASE("get-vanilla from the SigV4 test suite") {
  SignedRequest request{"GET", "/", {}, {{"Host", "example.amazonaws.com"}}, empty_sha256};
  Credentials credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  Scope scope{"us-east-1", "service"};
  std::string authorization = sign_headers(request, credentials, scope, "20150830T123600Z");
  CHECK(canonical_request(request) ==
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
        "host;x-amz-date\n" + empty_sha256);
  CHECK(authorization ==
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST_CASE("S3 GET object with a range header (S3 developer guide example)") {
  SignedRequest request{"GET",
                        "/test.txt",
                        {},
                        {{"Host", "examplebucket.s3.amazonaws.com"},
                         {"Range", "bytes=0-9"},
                         {"x-amz-content-sha256", empty_sha256}},
                        empty_sha256};
  std::string authorization =
      sign_headers(request, s3_example, {"us-east-1", "s3"}, "20130524T000000Z");
  CHECK(signed_header_names(request) == "host;range;x-amz-content-sha256;x-amz-date");
  CHECK(authorization.ends_with(
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"));
}

TEST_CASE("S3 presigned GET (S3 developer guide example)") {
  SignedRequest request{"GET", "/test.txt", {}, {{"Host", "examplebucket.s3.amazonaws.com"}}, ""};
  std::string query =
      presign_query(request, s3_example, {"us-east-1", "s3"}, "20130524T000000Z", 86400);
  CHECK(query ==
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  CHECK_THROWS_AS(presign_query(request, s3_example, {"us-east-1", "s3"}, "20130524T000000Z", 0),
                  dsk::UsageError);
}

TEST_CASE("S3 encoding keeps unreserved characters and '/' in paths only") {
  CHECK(uri_encode("a b/c~d_e.f-g", true) == "a%20b/c~d_e.f-g");
  CHECK(uri_encode("a/b+c=", false) == "a%2Fb%2Bc%3D");
  CHECK(uri_encode("\xc3\xa9", false) == "%C3%A9");
}

TEST_CASE("query parameters are sorted and header values trimmed") {
  SignedRequest request{"GET",
                        "/bucket",
                        {{"prefix", "m/"}, {"list-type", "2"}},
                        {{"Host", "h"}, {"X-Amz-Meta-A", "  one   two  "}},
                        empty_sha256};
  CHECK(canonical_request(request) ==
        "GET\n/bucket\nlist-type=2&prefix=m%2F\nhost:h\nx-amz-meta-a:one two\n\n"
        "host;x-amz-meta-a\n" + empty_sha256);
}

TEST_CASE("a session token is signed and the secret appears nowhere in the output") {
  SignedRequest request{"GET", "/", {}, {{"Host", "h"}}, empty_sha256};
  Credentials temporary{"AKID", "very-secret-key", "token123"};
  std::string authorization = sign_headers(request, temporary, {"us-east-1", "s3"},
                                           "20150830T123600Z");
  CHECK(signed_header_names(request) == "host;x-amz-date;x-amz-security-token");
  CHECK(authorization.find("very-secret-key") == std::string::npos);
}
