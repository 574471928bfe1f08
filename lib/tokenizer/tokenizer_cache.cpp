#include "tokenizer/tokenizer_cache.hpp"

#include <cstdlib>
#include <cstring>
#include <system_error>

#include "core/fs.hpp"
#include "core/sha256.hpp"

namespace dsk::tokenizer {
namespace {

constexpr std::string_view kMagic = "DSKTOKC\n";
constexpr uint32_t kByteOrderMark = 0x01020304;
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHexDigest = 64;
constexpr size_t kHeaderBytes = kMagic.size() + 4 + 4 + kHexDigest + kHexDigest + 8;

template <typename Number>
void put(std::string& out, Number value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// Bounds-checked reads from the file's bytes: any read past the end fails the whole file.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}

  template <typename Number>
  bool get(Number& value) {
    if (rest_.size() < sizeof value) return false;
    std::memcpy(&value, rest_.data(), sizeof value);
    rest_.remove_prefix(sizeof value);
    return true;
  }
  bool get(std::string_view& text, uint64_t size) {
    if (rest_.size() < size) return false;
    text = rest_.substr(0, size);
    rest_.remove_prefix(size);
    return true;
  }
  bool at_end() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// The payload's three parts; false when they do not fill it exactly or an id is out of range.
bool read_payload(std::string_view payload, CachedTokenizer& cached) {
  Reader in(payload);
  uint64_t json_bytes = 0, vocab_size = 0, merge_count = 0;
  std::string_view json;
  if (!in.get(json_bytes) || !in.get(json, json_bytes)) return false;
  cached.json = json;
  // Each entry takes at least 8 bytes, each merge 12: counts beyond that are a broken file.
  if (!in.get(vocab_size) || vocab_size > payload.size() / 8) return false;
  auto& vocab = cached.model.vocab;
  vocab.reserve(vocab_size);
  uint64_t largest = 0;
  for (uint64_t i = 0; i < vocab_size; ++i) {
    uint32_t id = 0, bytes = 0;
    std::string_view text;
    if (!in.get(id) || !in.get(bytes) || !in.get(text, bytes) || id > kMaxTokenId) return false;
    vocab.emplace_back(std::string(text), id);
    largest = std::max<uint64_t>(largest, id);
  }
  if (vocab_size > 0 && largest >= 2 * vocab_size + 1024) return false;  // check_id_range's bound
  if (!in.get(merge_count) || merge_count > payload.size() / 12) return false;
  auto& merges = cached.model.merges;
  merges.resize(merge_count);
  for (auto& merge : merges)
    for (TokenId& id : merge)
      if (!in.get(id) || id > largest || vocab_size == 0) return false;
  return in.at_end();
}

}  // namespace

std::optional<std::filesystem::path> tokenizer_cache_dir() {
  std::string dir = environment("DSK_TOKENIZER_CACHE");
  if (dir == "off") return std::nullopt;
  if (!dir.empty()) return std::filesystem::path(dir);
  if (std::string xdg = environment("XDG_CACHE_HOME"); !xdg.empty()) return std::filesystem::path(xdg) / "dsk/tokenizer";
  std::string home = environment("HOME");
  if (home.empty()) return std::nullopt;
  return std::filesystem::path(home) / ".cache/dsk/tokenizer";
}

std::filesystem::path tokenizer_cache_file(const std::filesystem::path& dir, const std::string& key) {
  return dir / (key + ".bin");
}

std::optional<CachedTokenizer> read_tokenizer_cache(const std::filesystem::path& file, const std::string& key) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(file, error)) return std::nullopt;
  try {
    return parse_tokenizer_cache(read_file(file), key);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<CachedTokenizer> parse_tokenizer_cache(std::string_view bytes, const std::string& key) {
  Reader header(bytes);
  std::string_view magic, file_key, checksum, payload;
  uint32_t mark = 0, version = 0;
  uint64_t payload_bytes = 0;
  if (!header.get(magic, kMagic.size()) || magic != kMagic || !header.get(mark) || mark != kByteOrderMark ||
      !header.get(version) || version != kFormatVersion || !header.get(file_key, kHexDigest) || file_key != key ||
      !header.get(checksum, kHexDigest) || !header.get(payload_bytes) || payload_bytes != bytes.size() - kHeaderBytes ||
      !header.get(payload, payload_bytes))
    return std::nullopt;
  if (sha256_hex(payload) != checksum) return std::nullopt;
  CachedTokenizer cached;
  if (!read_payload(payload, cached)) return std::nullopt;
  return cached;
}

std::string tokenizer_cache_bytes(const std::string& key, std::string_view json, const BpeModel& model) {
  std::string payload;
  size_t vocab_bytes = 0;
  for (const auto& entry : model.vocab) vocab_bytes += 8 + entry.first.size();
  payload.reserve(24 + json.size() + vocab_bytes + 12 * model.merges.size());
  put(payload, uint64_t(json.size()));
  payload += json;
  put(payload, uint64_t(model.vocab.size()));
  for (const auto& [text, id] : model.vocab) {
    put(payload, uint32_t(id));
    put(payload, uint32_t(text.size()));
    payload += text;
  }
  put(payload, uint64_t(model.merges.size()));
  for (const auto& merge : model.merges)
    for (TokenId id : merge) put(payload, uint32_t(id));

  std::string bytes;
  bytes.reserve(kHeaderBytes + payload.size());
  bytes += kMagic;
  put(bytes, kByteOrderMark);
  put(bytes, kFormatVersion);
  bytes += key;
  bytes += sha256_hex(payload);
  put(bytes, uint64_t(payload.size()));
  bytes += payload;
  return bytes;
}

void write_tokenizer_cache(const std::filesystem::path& file, const std::string& key, std::string_view json,
                           const BpeModel& model) {
  std::filesystem::create_directories(file.parent_path());
  write_file_atomic(file, tokenizer_cache_bytes(key, json, model));
}

}  // namespace dsk::tokenizer
