// libFuzzer target: the tokenizer cache file (tokenizer_cache.hpp), a file on disk that dsk reads
// back. The input is taken twice: as a whole file, and as a payload given a valid header and
// checksum (a fuzzer cannot forge a sha256, and a cache with a good checksum is what reaches the
// tables). Reading must give nullopt or a model whose ids are in range; the BPE tables built from
// an accepted model must encode any bytes into ids below their id count, without a crash.
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/json.hpp"
#include "core/sha256.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/tokenizer_cache.hpp"

namespace {

using namespace dsk::tokenizer;

const std::string kKey(64, 'a');

// The header tokenizer_cache.cpp writes, around `payload`.
std::string with_header(std::string_view payload) {
  std::string bytes = "DSKTOKC\n";
  auto put = [&bytes](auto value) { bytes.append(reinterpret_cast<const char*>(&value), sizeof value); };
  put(uint32_t(0x01020304));
  put(uint32_t(1));
  bytes += kKey;
  bytes += dsk::sha256_hex(payload);
  put(uint64_t(payload.size()));
  bytes += payload;
  return bytes;
}

void check(const CachedTokenizer& cached, std::string_view text, bool ignore_merges) {
  uint64_t largest = 0;
  for (const auto& [token, id] : cached.model.vocab) {
    if (id > kMaxTokenId) std::abort();
    largest = std::max<uint64_t>(largest, id);
  }
  for (const auto& merge : cached.model.merges)
    for (TokenId id : merge)
      if (id > largest) std::abort();
  try {
    const nlohmann::json model = {{"type", "BPE"}, {"ignore_merges", ignore_merges}};
    BpeInput input;
    input.checked = cached.model;
    Bpe bpe = Bpe::from_json(dsk::JsonField(model, "model"), std::move(input));
    std::vector<TokenId> ids;
    bpe.encode_piece(text, ids);
    bpe.encode_piece("hello", ids);
    for (TokenId id : ids)
      if (id >= bpe.id_count()) std::abort();
  } catch (const dsk::DataError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string_view text = bytes.substr(0, std::min<size_t>(bytes.size(), 64));
  if (auto cached = parse_tokenizer_cache(bytes, kKey)) check(*cached, text, false);
  if (auto cached = parse_tokenizer_cache(with_header(bytes), kKey)) {
    check(*cached, text, size > 0 && data[0] % 2 == 1);
    // What the cache writes of an accepted model reads back the same.
    auto again = parse_tokenizer_cache(tokenizer_cache_bytes(kKey, cached->json, cached->model), kKey);
    if (!again || again->json != cached->json || again->model.vocab != cached->model.vocab ||
        again->model.merges != cached->model.merges)
      std::abort();
  }
  return 0;
}
