#include "registry/sigv4.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>

#include "core/error.hpp"
#include "core/sha256.hpp"

namespace dsk::registry {
namespace {

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Header values are signed with leading/trailing spaces removed and inner runs collapsed.
std::string trim_value(std::string_view value) {
  std::string out;
  bool in_space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      in_space = !out.empty();
      continue;
    }
    if (in_space) out += ' ';
    in_space = false;
    out += c;
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest, &length))
    throw InternalError("HMAC-SHA256 failed in OpenSSL");
  return std::string(reinterpret_cast<char*>(digest), length);
}

std::string to_hex(std::string_view bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string date_of(std::string_view amz_date) { return std::string(amz_date.substr(0, 8)); }

std::string credential_scope(std::string_view amz_date, const Scope& scope) {
  return date_of(amz_date) + "/" + scope.region + "/" + scope.service + "/aws4_request";
}

// Sorted (lowercase name, trimmed value) pairs; repeated names are joined with ','.
std::vector<std::pair<std::string, std::string>> canonical_headers(const SignedRequest& request) {
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& [name, value] : request.headers) {
    std::string key = lowercase(name);
    auto found = std::find_if(headers.begin(), headers.end(),
                              [&](const auto& h) { return h.first == key; });
    if (found != headers.end())
      found->second += "," + trim_value(value);
    else
      headers.emplace_back(key, trim_value(value));
  }
  std::sort(headers.begin(), headers.end());
  return headers;
}

std::string canonical_query(const SignedRequest& request) {
  std::vector<std::pair<std::string, std::string>> encoded;
  for (const auto& [name, value] : request.query)
    encoded.emplace_back(uri_encode(name, false), uri_encode(value, false));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name + "=" + value;
  }
  return out;
}

}  // namespace

std::string uri_encode(std::string_view text, bool keep_slash) {
  static const char digits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

std::string signed_header_names(const SignedRequest& request) {
  std::string out;
  for (const auto& [name, value] : canonical_headers(request)) {
    if (!out.empty()) out += ';';
    out += name;
  }
  return out;
}

std::string canonical_request(const SignedRequest& request) {
  std::string headers;
  for (const auto& [name, value] : canonical_headers(request)) headers += name + ":" + value + "\n";
  return request.method + "\n" + uri_encode(request.path.empty() ? "/" : request.path, true) +
         "\n" + canonical_query(request) + "\n" + headers + "\n" + signed_header_names(request) +
         "\n" + request.payload_sha256;
}

std::string string_to_sign(std::string_view amz_date, const Scope& scope,
                           std::string_view canonical) {
  return "AWS4-HMAC-SHA256\n" + std::string(amz_date) + "\n" +
         credential_scope(amz_date, scope) + "\n" + sha256_hex(canonical);
}

std::string signature(const Credentials& credentials, std::string_view amz_date,
                      const Scope& scope, std::string_view string_to_sign) {
  std::string key = hmac_sha256("AWS4" + credentials.secret_access_key, date_of(amz_date));
  key = hmac_sha256(key, scope.region);
  key = hmac_sha256(key, scope.service);
  key = hmac_sha256(key, "aws4_request");
  return to_hex(hmac_sha256(key, string_to_sign));
}

std::string sign_headers(SignedRequest& request, const Credentials& credentials,
                         const Scope& scope, std::string_view amz_date) {
  request.headers.emplace_back("x-amz-date", std::string(amz_date));
  if (!credentials.session_token.empty())
    request.headers.emplace_back("x-amz-security-token", credentials.session_token);
  std::string canonical = canonical_request(request);
  return "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" +
         credential_scope(amz_date, scope) + ", SignedHeaders=" + signed_header_names(request) +
         ", Signature=" +
         signature(credentials, amz_date, scope, string_to_sign(amz_date, scope, canonical));
}

std::string presign_query(SignedRequest request, const Credentials& credentials,
                          const Scope& scope, std::string_view amz_date, long expires_seconds) {
  if (expires_seconds < 1 || expires_seconds > 604800)
    throw UsageError("a presigned URL expires after 1 second to 7 days (604800 s), not " +
                     std::to_string(expires_seconds));
  request.payload_sha256 = "UNSIGNED-PAYLOAD";
  auto& q = request.query;
  q.emplace_back("X-Amz-Algorithm", "AWS4-HMAC-SHA256");
  q.emplace_back("X-Amz-Credential",
                 credentials.access_key_id + "/" + credential_scope(amz_date, scope));
  q.emplace_back("X-Amz-Date", std::string(amz_date));
  q.emplace_back("X-Amz-Expires", std::to_string(expires_seconds));
  if (!credentials.session_token.empty())
    q.emplace_back("X-Amz-Security-Token", credentials.session_token);
  q.emplace_back("X-Amz-SignedHeaders", signed_header_names(request));
  std::string canonical = canonical_request(request);
  std::string sig =
      signature(credentials, amz_date, scope, string_to_sign(amz_date, scope, canonical));
  return canonical_query(request) + "&X-Amz-Signature=" + sig;
}

}  // namespace dsk::registry
