// A small S3 client on libcurl: one signed request at a time per client (one easy handle, so
// give each worker thread its own client). Objects are addressed as {bucket, key}.
// Errors: an HTTP error becomes RemoteError (exit 5) carrying the server's <Code> and
// <Message> and the URL without credentials; 404 on head/get is reported as "absent".
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "registry/address.hpp"
#include "registry/credentials.hpp"

namespace dsk::registry {

struct ObjectInfo {
  long long size = 0;
  std::string etag;
  std::map<std::string, std::string> metadata;  // x-amz-meta-<name> headers, by <name>
};

struct ListedObject {
  std::string key;
  long long size = 0;
  std::string etag;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};

class S3Client {
 public:
  S3Client(Connection connection, bool virtual_host = false);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // Returns the new ETag. headers: extra request headers such as x-amz-meta-sha256 or
  // content-type (the object's; every PUT and POST without one is application/octet-stream).
  std::string put(const ObjectAddress& object, const std::string& bytes,
                  const std::map<std::string, std::string>& headers = {});
  // A PUT (an object, or a part with partNumber/uploadId in query) sent with Content-MD5, so a
  // server that checks it refuses damaged bytes, and whose answer's ETag is then compared with
  // that MD5 (S3 and s3rver return the MD5 of what they stored, except under SSE-KMS, which is
  // skipped): the bytes stored are the bytes sent, or RemoteError. The payload is signed as
  // UNSIGNED-PAYLOAD: the signed Content-MD5 header, checked by the server, binds it instead.
  Response put_verified(const ObjectAddress& object, const std::map<std::string, std::string>& query,
                        const std::string& bytes, std::map<std::string, std::string> headers);
  // The whole object, or bytes [first, last] of it; nullopt when absent.
  std::optional<std::string> get(const ObjectAddress& object,
                                 std::optional<std::pair<long long, long long>> range = {});
  // Streams the object's bytes to sink as they arrive (no copy of the whole object in
  // memory); false when absent.
  bool download(const ObjectAddress& object, const std::function<void(std::string_view)>& sink);
  std::optional<ObjectInfo> head(const ObjectAddress& object);
  void remove(const ObjectAddress& object);
  // Every key under object.key (a prefix), following ListObjectsV2's continuation tokens;
  // page_size is max-keys (the server may return fewer).
  std::vector<ListedObject> list(const ObjectAddress& prefix, int page_size = 1000);

  // Signs and sends one request; a 4xx/5xx other than accepted_missing (404) throws. 5xx
  // answers (but 501), connection failures and stalls are retried with backoff (Connection's
  // attempts); a streamed answer only while the sink has received nothing.
  Response send(const std::string& method, const ObjectAddress& object,
                const std::map<std::string, std::string>& query, const std::string& body,
                const std::map<std::string, std::string>& headers, bool accept_missing,
                const std::function<void(std::string_view)>* sink = nullptr);

 private:
  struct TransferFailure {  // libcurl gave up (no HTTP answer): its CURLcode and text
    int code;
    std::string message;
  };
  // One signed request, no retry; throws TransferFailure when no answer came.
  Response send_once(const std::string& method, const ObjectAddress& object,
                     const std::map<std::string, std::string>& query, const std::string& body,
                     const std::map<std::string, std::string>& headers,
                     const std::function<void(std::string_view)>* sink);

  Connection connection_;
  Endpoint endpoint_;
  struct Curl;
  std::unique_ptr<Curl> curl_;
};

// One ListObjectsV2 page: its objects, and the continuation token ("" on the last page).
struct ListPage {
  std::vector<ListedObject> objects;
  std::string next_token;
};
ListPage parse_list_page(const std::string& xml);

// The text of <child> directly under the document's root element when the root is <root>,
// else "" (also for bytes that are not XML).
std::string xml_field(const std::string& xml, const char* root, const char* child);

// MD5 of bytes: base64 (a Content-MD5 header's value) and hex (what an S3 ETag holds).
std::string md5_base64(const std::string& bytes);
std::string md5_hex(const std::string& bytes);

// MD5 streamed over bytes given piece by piece, as hex.
class Md5 {
 public:
  Md5();
  ~Md5();
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;
  void update(std::string_view bytes);
  std::string hex_digest();  // ends the stream

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// "<Code>: <Message>" out of an S3 XML error body, or "" when it is not one.
std::string s3_error_summary(const std::string& xml);

}  // namespace dsk::registry
