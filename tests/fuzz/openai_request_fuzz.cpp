// libFuzzer target: any bytes as the body of POST /v1/completions and /v1/chat/completions.
// Parsing must accept it or throw ApiError 400 (never another exception, a crash or a hang); an
// accepted request keeps every value in the range the API documents, and its stop strings run
// through the stop-string filter on the request's own text without losing or inventing text.
#include <cstdlib>
#include <string>

#include "serve/api_error.hpp"
#include "serve/openai_request.hpp"
#include "serve/openai_response.hpp"
#include "serve/text_stream.hpp"

namespace {

using namespace dsk::serve;

void check(const ApiRequest& request) {
  bool ok = request.temperature >= 0 && request.temperature <= 2 && request.top_p > 0 && request.top_p <= 1 &&
            request.top_k >= 0 && request.n >= 1 && request.n <= 128 && (!request.max_tokens || *request.max_tokens >= 1) &&
            request.top_logprobs >= 0 && request.top_logprobs <= 20 && request.stop.size() <= 16 &&
            (request.kind == ApiKind::chat ? !request.messages.empty() : !request.prompts.empty());
  if (!ok) std::abort();
  std::string text;
  for (const auto& prompt : request.prompts) text += prompt.text.value_or("");
  for (const auto& message : request.messages) text += message.content;
  // Split in pieces of 3 bytes: what is emitted must be a prefix of the text, whole when no stop matched.
  StopStringFilter filter(request.stop);
  std::string emitted;
  for (size_t at = 0; at < text.size(); at += 3) emitted += filter.push(text.substr(at, 3));
  emitted += filter.flush();
  if (text.compare(0, emitted.size(), emitted) != 0) std::abort();
  if (!filter.stopped() && emitted != text) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  for (ApiKind kind : {ApiKind::completions, ApiKind::chat}) {
    try {
      check(parse_api_request(body, kind));
    } catch (const ApiError& error) {
      if (error.status != 400) std::abort();
      (void)dump_json(error.body());  // messages quote the input: must still serialize
    }
  }
  return 0;
}
