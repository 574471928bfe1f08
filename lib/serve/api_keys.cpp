#include "serve/api_keys.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <sstream>

#include "core/error.hpp"
#include "core/fs.hpp"

namespace dsk::serve {
namespace {

std::array<unsigned char, 32> digest(std::string_view key) {
  std::array<unsigned char, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), out.data());
  return out;
}

std::string trimmed(const std::string& line) {
  size_t begin = line.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  size_t end = line.find_last_not_of(" \t\r");
  return line.substr(begin, end - begin + 1);
}

}  // namespace

ApiKeys ApiKeys::of(const std::vector<std::string>& keys) {
  ApiKeys result;
  for (const std::string& key : keys) result.digests_.push_back(digest(key));
  return result;
}

ApiKeys ApiKeys::load(const std::optional<std::filesystem::path>& file, const std::optional<std::string>& environment_key) {
  std::vector<std::string> keys;
  if (file) {
    std::string text;
    try {
      text = read_file(*file);
    } catch (const Error& error) {
      throw UsageError(str("--api-key-file: ", error.what()));
    }
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
      std::string key = trimmed(line);
      if (!key.empty() && key[0] != '#') keys.push_back(key);
    }
    if (keys.empty()) throw UsageError(str("--api-key-file ", file->string(), ": holds no key (one key per line)"));
  }
  if (environment_key && !trimmed(*environment_key).empty()) keys.push_back(trimmed(*environment_key));
  return of(keys);
}

bool ApiKeys::accepts(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer) return false;
  std::array<unsigned char, 32> presented = digest(authorization.substr(kBearer.size()));
  // Every key is compared, whatever matched, so the time does not say which or how far.
  bool matched = false;
  for (const auto& key : digests_) matched |= CRYPTO_memcmp(key.data(), presented.data(), key.size()) == 0;
  return matched;
}

}  // namespace dsk::serve
