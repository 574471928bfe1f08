#include "serve/api_error.hpp"

namespace dsk::serve {

nlohmann::json ApiError::body() const {
  nlohmann::json error = {{"message", what()}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (param) error["param"] = *param;
  if (code) error["code"] = *code;
  return {{"error", error}};
}

ApiError bad_parameter(const std::string& param, const std::string& message) {
  return ApiError(400, "invalid_request_error", message, param);
}

}  // namespace dsk::serve
