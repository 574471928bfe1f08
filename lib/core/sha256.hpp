// SHA-256 (OpenSSL's), as lowercase hex: of bytes, of a file, or streamed.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace dsk {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  void update(std::string_view text) { update(text.data(), text.size()); }
  std::string hex_digest();  // ends the stream

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);
// Of what is left to read in `file` (left open); `path` names it in an error.
std::string sha256_stream(std::FILE* file, const std::filesystem::path& path);

}  // namespace dsk
