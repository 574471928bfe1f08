// API keys for /v1/*: from a file (one key per line; blank lines and lines starting with '#'
// are skipped) and/or the environment (DSK_SERVE_API_KEY). Keys are kept only as SHA-256
// digests and a presented key is compared with every one of them in constant time, so neither
// timing nor a memory dump gives a key away; keys are never logged.
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsk::serve {

class ApiKeys {
 public:
  ApiKeys() = default;
  // UsageError naming the file when it cannot be read or holds no key.
  static ApiKeys load(const std::optional<std::filesystem::path>& file, const std::optional<std::string>& environment_key);
  static ApiKeys of(const std::vector<std::string>& keys);

  bool enabled() const { return !digests_.empty(); }
  // The value of an Authorization header: "Bearer <key>".
  bool accepts(std::string_view authorization) const;
  size_t size() const { return digests_.size(); }

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

}  // namespace dsk::serve
