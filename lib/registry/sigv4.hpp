// AWS Signature Version 4: sign one HTTP request for S3 (or any SigV4 service), either as an
// Authorization header or as a presigned URL's query string. Our own implementation, so that
// presigned URLs and the exact canonical form are under our control (libcurl's
// CURLOPT_AWS_SIGV4 does only the header form).
//
// Shapes: the request is described by its parts, unencoded; the signer encodes them the way
// S3 expects (RFC 3986 unreserved characters kept, '/' kept in the path, no path
// normalisation). Times are "YYYYMMDDTHHMMSSZ" strings so that tests can pin them.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsk::registry {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
};

struct SignedRequest {
  std::string method;  // "GET", "PUT", ...
  std::string path;    // unencoded, starting with '/': "/bucket/key name.txt"
  std::vector<std::pair<std::string, std::string>> query;    // unencoded name, value
  std::vector<std::pair<std::string, std::string>> headers;  // must include "host"
  std::string payload_sha256;  // hex digest, or "UNSIGNED-PAYLOAD"
};

struct Scope {
  std::string region;   // "us-east-1"
  std::string service;  // "s3"
};

// Percent-encodes all but A-Z a-z 0-9 - _ . ~ (and '/' when keep_slash).
std::string uri_encode(std::string_view text, bool keep_slash);

// The four steps, exposed so that each can be checked against the published vectors.
std::string canonical_request(const SignedRequest& request);
std::string signed_header_names(const SignedRequest& request);  // "host;x-amz-date"
std::string string_to_sign(std::string_view amz_date, const Scope& scope,
                           std::string_view canonical);
std::string signature(const Credentials& credentials, std::string_view amz_date,
                      const Scope& scope, std::string_view string_to_sign);

// Adds x-amz-date (and x-amz-security-token when the credentials carry one) to the request's
// headers and returns the Authorization header's value.
std::string sign_headers(SignedRequest& request, const Credentials& credentials,
                         const Scope& scope, std::string_view amz_date);

// Returns the query string (without '?') of a presigned URL valid for expires_seconds; the
// request's payload is UNSIGNED-PAYLOAD and only the host header is signed.
std::string presign_query(SignedRequest request, const Credentials& credentials,
                          const Scope& scope, std::string_view amz_date, long expires_seconds);

}  // namespace dsk::registry
