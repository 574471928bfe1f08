#include "scale/http_metrics.hpp"

#include <curl/curl.h>

#include <memory>

#include "core/error.hpp"
#include "scale/prometheus.hpp"

namespace dsk::scale {
namespace {

size_t append_body(char* data, size_t size, size_t count, void* body) {
  static_cast<std::string*>(body)->append(data, size * count);
  return size * count;
}

}  // namespace

std::map<std::string, double> read_prometheus_endpoint(const std::string& url, double timeout_seconds) {
  static const bool initialized = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!initialized) throw ResourceError("libcurl failed to initialize");
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw ResourceError("libcurl: cannot create a handle");
  std::string body;
  char error_text[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, error_text);
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_seconds * 1000));
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  CURLcode code = curl_easy_perform(curl.get());
  if (code != CURLE_OK)
    throw RemoteError(str("metrics endpoint ", url, ": ", error_text[0] ? error_text : curl_easy_strerror(code)));
  long status = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) throw RemoteError(str("metrics endpoint ", url, ": HTTP ", status));
  return sum_by_name(parse_prometheus_text(body, url));
}

}  // namespace dsk::scale
