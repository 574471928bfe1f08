#include "registry/s3_client.hpp"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>
#include <thread>

#include "core/error.hpp"
#include "core/log.hpp"
#include "core/sha256.hpp"

namespace dsk::registry {
namespace {

std::string amz_date_now() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[17];
  std::strftime(text, sizeof text, "%Y%m%dT%H%M%SZ", &utc);
  return text;
}

// Success bodies go to the sink when there is one; error bodies are kept for the message.
struct BodyTarget {
  CURL* handle;
  std::string* body;
  const std::function<void(std::string_view)>* sink;
};

size_t append_body(char* data, size_t size, size_t count, void* target) {
  auto* body = static_cast<BodyTarget*>(target);
  long status = 0;
  curl_easy_getinfo(body->handle, CURLINFO_RESPONSE_CODE, &status);
  if (body->sink && status < 300)
    (*body->sink)(std::string_view(data, size * count));
  else
    body->body->append(data, size * count);
  return size * count;
}

size_t append_header(char* data, size_t size, size_t count, void* target) {
  std::string line(data, size * count);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon), value = line.substr(colon + 1);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto begin = value.find_first_not_of(" \t"), end = value.find_last_not_of(" \t\r\n");
    (*static_cast<std::map<std::string, std::string>*>(target))[name] =
        begin == std::string::npos ? "" : value.substr(begin, end - begin + 1);
  }
  return size * count;
}

std::string child_text(xmlNode* parent, const char* name) {
  for (xmlNode* node = parent->children; node; node = node->next)
    if (node->type == XML_ELEMENT_NODE && xmlStrcmp(node->name, BAD_CAST name) == 0) {
      xmlChar* content = xmlNodeGetContent(node);
      std::string text = content ? reinterpret_cast<char*>(content) : "";
      xmlFree(content);
      return text;
    }
  return "";
}

// A byte count from an answer (<Size>, Content-Length): decimal digits only, else RemoteError.
long long answer_size(const std::string& text, const char* what) {
  long long value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || error != std::errc() || end != text.data() + text.size() || value < 0)
    throw RemoteError(str("the server's ", what, " '", text.substr(0, 64), "' is not a byte count"));
  return value;
}

}  // namespace

std::string xml_field(const std::string& xml, const char* root_name, const char* child) {
  xmlDoc* doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "answer.xml", nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!doc) return "";
  std::string text;
  xmlNode* root = xmlDocGetRootElement(doc);
  if (root && xmlStrcmp(root->name, BAD_CAST root_name) == 0) text = child_text(root, child);
  xmlFreeDoc(doc);
  return text;
}

namespace {

std::string md5_digest(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (!EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_md5(), nullptr))
    throw InternalError("MD5 failed in OpenSSL");
  return std::string(reinterpret_cast<char*>(digest), length);
}

std::string base64_of(const std::string& raw) {
  unsigned char encoded[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int size = EVP_EncodeBlock(encoded, reinterpret_cast<const unsigned char*>(raw.data()),
                             static_cast<int>(raw.size()));
  return std::string(reinterpret_cast<char*>(encoded), static_cast<size_t>(size));
}

std::string hex_of(const std::string& raw) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace

std::string md5_base64(const std::string& bytes) { return base64_of(md5_digest(bytes)); }
std::string md5_hex(const std::string& bytes) { return hex_of(md5_digest(bytes)); }

struct Md5::State {
  EVP_MD_CTX* context = nullptr;
};

Md5::Md5() : state_(std::make_unique<State>()) {
  state_->context = EVP_MD_CTX_new();
  if (!state_->context || EVP_DigestInit_ex(state_->context, EVP_md5(), nullptr) != 1)
    throw InternalError("OpenSSL could not start an MD5 digest");
}

Md5::~Md5() { EVP_MD_CTX_free(state_->context); }

void Md5::update(std::string_view bytes) { EVP_DigestUpdate(state_->context, bytes.data(), bytes.size()); }

std::string Md5::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(state_->context, digest, &length);
  return hex_of(std::string(reinterpret_cast<char*>(digest), length));
}

std::string s3_error_summary(const std::string& xml) {
  std::string code = xml_field(xml, "Error", "Code");
  return code.empty() ? "" : code + ": " + xml_field(xml, "Error", "Message");
}

ListPage parse_list_page(const std::string& xml) {
  xmlDoc* doc = xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "list.xml", nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlNode* root = doc ? xmlDocGetRootElement(doc) : nullptr;
  if (!root || xmlStrcmp(root->name, BAD_CAST "ListBucketResult") != 0) {
    if (doc) xmlFreeDoc(doc);
    throw RemoteError("the server's ListObjectsV2 answer is not a <ListBucketResult>");
  }
  ListPage page;
  for (xmlNode* node = root->children; node; node = node->next) {
    if (node->type != XML_ELEMENT_NODE || xmlStrcmp(node->name, BAD_CAST "Contents") != 0)
      continue;
    std::string size = child_text(node, "Size");
    try {
      page.objects.push_back({child_text(node, "Key"), size.empty() ? 0 : answer_size(size, "ListObjectsV2 <Size>"),
                              child_text(node, "ETag")});
    } catch (...) {
      xmlFreeDoc(doc);
      throw;
    }
  }
  if (child_text(root, "IsTruncated") == "true")
    page.next_token = child_text(root, "NextContinuationToken");
  xmlFreeDoc(doc);
  return page;
}

struct S3Client::Curl {
  CURL* handle = curl_easy_init();
  ~Curl() { curl_easy_cleanup(handle); }
};

S3Client::S3Client(Connection connection, bool virtual_host)
    : connection_(std::move(connection)),
      endpoint_(make_endpoint(connection_.endpoint_url, connection_.region, virtual_host)),
      curl_(std::make_unique<Curl>()) {
  if (!curl_->handle) throw ResourceError("libcurl could not start a session");
}

S3Client::~S3Client() = default;

namespace {

// Failures worth another try: the server was busy or broken for a moment (any 5xx but 501,
// which a retry cannot change), or the connection failed or stalled.
bool retryable_status(long status) { return status >= 500 && status != 501; }

bool retryable_curl(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_COULDNT_RESOLVE_HOST:
      return true;
    default:
      return false;
  }
}

}  // namespace

Response S3Client::send(const std::string& method, const ObjectAddress& object,
                        const std::map<std::string, std::string>& query,
                        const std::string& body,
                        const std::map<std::string, std::string>& headers, bool accept_missing,
                        const std::function<void(std::string_view)>* sink) {
  std::string where = method + " s3://" + object.bucket + "/" + object.key;
  // A streamed answer cannot be taken back from the sink, so a retry is possible only while
  // the sink has seen nothing.
  bool sink_used = false;
  std::function<void(std::string_view)> counting_sink = [&](std::string_view bytes) {
    sink_used = true;
    (*sink)(bytes);
  };
  std::mt19937 random(std::random_device{}());
  long backoff_ms = std::max(1L, connection_.first_backoff_ms);
  for (int attempt = 1;; ++attempt) {
    std::string failure;
    bool retry = false;
    try {
      Response response = send_once(method, object, query, body, headers, sink ? &counting_sink : nullptr);
      if (response.status == 404 && accept_missing) return response;
      if (response.status < 300) return response;
      std::string summary = s3_error_summary(response.body);
      failure = str("HTTP ", response.status, summary.empty() ? "" : " " + summary);
      // A HEAD answer has no body to say why; 403 is then almost always the credentials.
      if (response.status == 403 && summary.empty())
        failure += " (access denied: check the credentials, AWS_ACCESS_KEY_ID or --profile, and the bucket's policy)";
      retry = retryable_status(response.status);
    } catch (const TransferFailure& error) {
      failure = error.message;
      retry = retryable_curl(static_cast<CURLcode>(error.code));
    }
    bool last = attempt >= std::max(1, connection_.attempts) || sink_used;
    if (!retry || last)
      throw RemoteError(str(where, " at ", endpoint_.host, ": ", failure,
                            retry ? str(" (after ", attempt, attempt == 1 ? " try)" : " tries)") : ""));
    log_debug(where, ": ", failure, "; retrying in ", backoff_ms, " ms");
    std::uniform_int_distribution<long> jitter(0, backoff_ms / 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms + jitter(random)));
    backoff_ms = std::min(backoff_ms * 2, 8000L);
  }
}

Response S3Client::send_once(const std::string& method, const ObjectAddress& object,
                             const std::map<std::string, std::string>& query,
                             const std::string& body,
                             const std::map<std::string, std::string>& headers,
                             const std::function<void(std::string_view)>* sink) {
  Target target = target_of(endpoint_, object);
  // A body sent with Content-MD5 is bound to the signature through that (signed) header, which
  // the server checks against the bytes, so it need not be hashed a second time with SHA-256.
  std::string payload_hash = headers.count("content-md5") && !body.empty() ? "UNSIGNED-PAYLOAD" : sha256_hex(body);
  SignedRequest request{method, target.path, {}, {{"host", target.host}}, payload_hash};
  for (const auto& [name, value] : query) request.query.emplace_back(name, value);
  for (const auto& [name, value] : headers) request.headers.emplace_back(name, value);
  // libcurl labels a body it sends application/x-www-form-urlencoded, and S3 keeps the label
  // of a PUT or of a multipart initiation as the object's Content-Type: bytes, unless told.
  if ((method == "PUT" || method == "POST") && !headers.count("content-type"))
    request.headers.emplace_back("content-type", "application/octet-stream");
  request.headers.emplace_back("x-amz-content-sha256", request.payload_sha256);
  std::string authorization =
      sign_headers(request, connection_.credentials, {connection_.region, "s3"}, amz_date_now());

  std::string url = endpoint_.scheme + "://" + target.host + uri_encode(target.path, true);
  std::string query_text;
  for (const auto& [name, value] : query)
    query_text += (query_text.empty() ? "?" : "&") + uri_encode(name, false) +
                  (value.empty() ? "" : "=" + uri_encode(value, false));
  url += query_text;

  curl_slist* list = nullptr;
  for (const auto& [name, value] : request.headers)
    if (name != "host") list = curl_slist_append(list, (name + ": " + value).c_str());
  list = curl_slist_append(list, ("Authorization: " + authorization).c_str());
  list = curl_slist_append(list, "Expect:");  // no 100-continue round trip

  Response response;
  // A ranged GET's size is known: one allocation instead of a doubling string.
  if (auto range = headers.find("range"); range != headers.end()) {
    long long first = 0, last = -1;
    if (std::sscanf(range->second.c_str(), "bytes=%lld-%lld", &first, &last) == 2 && last >= first)
      response.body.reserve(static_cast<size_t>(last - first + 1));
  }
  CURL* h = curl_->handle;
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "HEAD") curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  if (method == "PUT" || method == "POST") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
  BodyTarget body_target{h, &response.body, sink};
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body_target);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, append_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &response.headers);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
  // A stalled transfer (under 1 byte/s for the stall time) fails with CURLE_OPERATION_TIMEDOUT.
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, std::max(1L, connection_.stall_timeout_seconds));
  CURLcode code = curl_easy_perform(h);
  curl_slist_free_all(list);
  if (code != CURLE_OK) throw TransferFailure{static_cast<int>(code), curl_easy_strerror(code)};
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string S3Client::put(const ObjectAddress& object, const std::string& bytes,
                          const std::map<std::string, std::string>& headers) {
  return put_verified(object, {}, bytes, headers).headers["etag"];
}

Response S3Client::put_verified(const ObjectAddress& object,
                                const std::map<std::string, std::string>& query,
                                const std::string& bytes, std::map<std::string, std::string> headers) {
  std::string digest = md5_digest(bytes);
  headers["content-md5"] = base64_of(digest);
  Response response = send("PUT", object, query, bytes, headers, false);
  std::string etag = response.headers["etag"];
  if (etag.size() == 34 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, 32);
  bool etag_is_md5 = etag.size() == 32 && etag.find_first_not_of("0123456789abcdef") == std::string::npos &&
                     response.headers["x-amz-server-side-encryption"] != "aws:kms";
  if (etag_is_md5 && etag != hex_of(digest))
    throw RemoteError(str("PUT s3://", object.bucket, "/", object.key, " at ", endpoint_.host,
                          ": the server stored other bytes than were sent (ETag ", etag,
                          ", MD5 sent ", hex_of(digest), ")"));
  return response;
}

std::optional<std::string> S3Client::get(const ObjectAddress& object,
                                         std::optional<std::pair<long long, long long>> range) {
  std::map<std::string, std::string> headers;
  if (range) headers["range"] = str("bytes=", range->first, "-", range->second);
  Response response = send("GET", object, {}, "", headers, true);
  if (response.status == 404) return std::nullopt;
  return response.body;
}

bool S3Client::download(const ObjectAddress& object,
                        const std::function<void(std::string_view)>& sink) {
  return send("GET", object, {}, "", {}, true, &sink).status != 404;
}

std::optional<ObjectInfo> S3Client::head(const ObjectAddress& object) {
  Response response = send("HEAD", object, {}, "", {}, true);
  if (response.status == 404) return std::nullopt;
  ObjectInfo info{answer_size(response.headers["content-length"], "HEAD Content-Length"), response.headers["etag"], {}};
  for (const auto& [name, value] : response.headers)
    if (name.starts_with("x-amz-meta-")) info.metadata[name.substr(11)] = value;
  return info;
}

void S3Client::remove(const ObjectAddress& object) { send("DELETE", object, {}, "", {}, true); }

std::vector<ListedObject> S3Client::list(const ObjectAddress& prefix, int page_size) {
  std::vector<ListedObject> objects;
  std::string token;
  do {
    std::map<std::string, std::string> query{
        {"list-type", "2"}, {"prefix", prefix.key}, {"max-keys", std::to_string(page_size)}};
    if (!token.empty()) query["continuation-token"] = token;
    ListPage page = parse_list_page(send("GET", {prefix.bucket, ""}, query, "", {}, false).body);
    objects.insert(objects.end(), page.objects.begin(), page.objects.end());
    if (!page.next_token.empty() && page.next_token == token)
      throw RemoteError("the server repeated a ListObjectsV2 continuation token");
    token = page.next_token;
  } while (!token.empty());
  return objects;
}

}  // namespace dsk::registry
