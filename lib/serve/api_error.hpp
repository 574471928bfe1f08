// An error the API answers with: an HTTP status and OpenAI's error body
//   {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature", "code": null}}
// Thrown by the request parsers and the routing layer; the HTTP layer turns it into the answer.
// Messages are for the client: they never carry keys or server paths.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace dsk::serve {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string message, std::optional<std::string> param = std::nullopt,
           std::optional<std::string> code = std::nullopt)
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}

  int status;
  std::string type;                 // invalid_request_error, authentication_error, server_error ...
  std::optional<std::string> param;  // the request field at fault
  std::optional<std::string> code;   // a machine-readable reason: model_not_found, queue_full ...
  int retry_after_seconds = 0;       // > 0: sent as Retry-After (429, 503)

  nlohmann::json body() const;
};

// 400 invalid_request_error about `param`.
ApiError bad_parameter(const std::string& param, const std::string& message);

}  // namespace dsk::serve
