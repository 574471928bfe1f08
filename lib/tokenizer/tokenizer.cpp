// Loading tokenizer.json (+ tokenizer_config.json) and the encode/decode paths.
// encode: check UTF-8 -> cut out added tokens -> pre-tokenize each plain segment -> BPE each
// piece (through a per-thread cache of piece -> ids) -> BOS/EOS when asked.
#include "tokenizer/tokenizer.hpp"

#include <atomic>
#include <deque>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "tokenizer/added_tokens.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/pre_tokenizer.hpp"
#include "tokenizer/utf8.hpp"

namespace dsk::tokenizer {
namespace {

// Which BOS/EOS exist and whether encode(add_special_tokens) adds them.
struct SpecialIds {
  std::optional<TokenId> bos, eos;
  bool add_bos = false, add_eos = false;
};

}  // namespace

struct Tokenizer::Impl {
  uint64_t serial = 0;  // tells the per-thread caches of different tokenizers apart
  Bpe bpe;
  PreTokenizer pre;
  AddedTokens added;
  std::vector<std::string> id_strings;  // vocab string (byte-level form) or added content, per id
  std::vector<uint8_t> id_is_special;
  std::vector<std::string> id_decoded;  // raw bytes a token decodes to
  StringToId added_ids;
  SpecialIds specials;
};

namespace {

std::atomic<uint64_t> next_serial{1};

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(str(path.string(), ": cannot open"));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(str(path.string(), ": not valid JSON: ", e.what()));
  }
}

void check_normalizer(const nlohmann::json& normalizer, const std::string& where) {
  if (normalizer.is_null()) return;
  // DeepSeek's files carry an empty Sequence; GPT-2's none at all. Anything else would change
  // the text before matching, which dsk does not implement.
  if (normalizer.value("type", "") == "Sequence" && normalizer.value("normalizers", nlohmann::json::array()).empty())
    return;
  throw DataError(str(where, ".normalizer: unsupported normalizer \"", normalizer.value("type", "?"),
                      "\" (dsk supports none or an empty Sequence)"));
}

void check_decoder(const nlohmann::json& decoder, const std::string& where) {
  if (decoder.is_null() || decoder.value("type", "") == "ByteLevel") return;
  throw DataError(str(where, ".decoder: unsupported decoder \"", decoder.value("type", "?"), "\" (expected ByteLevel)"));
}

// A token named in tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const auto& node = config[key];
  if (node.is_string()) return node.get<std::string>();
  if (node.is_object() && node.contains("content")) return node["content"].get<std::string>();
  return std::nullopt;
}

// BOS/EOS from a TemplateProcessing "single" template: special tokens before / after $A.
void read_template(const nlohmann::json& processor, const std::string& where, SpecialIds& impl,
                   const std::function<std::optional<TokenId>(const std::string&)>& lookup) {
  std::string type = processor.value("type", "");
  if (type == "Sequence") {
    const auto& list = processor.at("processors");
    for (size_t i = 0; i < list.size(); ++i) read_template(list[i], str(where, ".processors[", i, "]"), impl, lookup);
    return;
  }
  if (type == "ByteLevel") return;  // offsets only
  if (type != "TemplateProcessing")
    throw DataError(str(where, ": unsupported post_processor \"", type, "\" (expected TemplateProcessing or ByteLevel)"));
  bool seen_sequence = false;
  const auto& single = processor.at("single");
  for (size_t i = 0; i < single.size(); ++i) {
    const auto& item = single[i];
    if (item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken"))
      throw DataError(str(where, ".single[", i, "]: expected Sequence or SpecialToken"));
    auto name = item["SpecialToken"].at("id").get<std::string>();
    std::optional<TokenId> id;
    const auto& specials = processor.value("special_tokens", nlohmann::json::object());
    if (specials.contains(name) && !specials[name].at("ids").empty())
      id = specials[name]["ids"][0].get<TokenId>();
    else
      id = lookup(name);
    if (!id) throw DataError(str(where, ".single[", i, "]: unknown special token \"", name, "\""));
    if (seen_sequence) {
      impl.eos = id;
      impl.add_eos = true;
    } else {
      impl.bos = id;
      impl.add_bos = true;
    }
  }
}

// The per-thread piece -> ids cache. Bounded: cleared when full (pieces repeat heavily, so it
// refills with the common ones at once).
struct PieceCache {
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> map;
};
constexpr size_t kCacheEntries = 1 << 16;
constexpr size_t kCachedPieceBytes = 64;

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_json) {
  auto json = read_json(tokenizer_json);
  std::string where = tokenizer_json.string();
  auto impl = std::make_unique<Impl>();
  impl->serial = next_serial++;
  try {
    check_normalizer(json.value("normalizer", nlohmann::json()), where);
    check_decoder(json.value("decoder", nlohmann::json()), where);
    impl->bpe = Bpe::from_json(json.at("model"), where);
    impl->pre = PreTokenizer::from_json(json.value("pre_tokenizer", nlohmann::json()), where + ".pre_tokenizer");
    if (!impl->pre.has_byte_level)
      throw DataError(str(where, ".pre_tokenizer: no ByteLevel step (dsk supports byte-level BPE only)"));
    impl->added = AddedTokens::from_json(json.value("added_tokens", nlohmann::json()), where);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(str(where, ": unexpected structure: ", e.what()));
  }

  size_t size = impl->bpe.id_bytes().size();
  for (const auto& token : impl->added.tokens()) size = std::max(size, size_t(token.id) + 1);
  impl->id_strings.resize(size);
  impl->id_decoded.resize(size);
  impl->id_is_special.assign(size, 0);
  for (const auto& [text, id] : impl->bpe.vocab()) {
    impl->id_strings[id] = text;
    impl->id_decoded[id] = impl->bpe.id_bytes()[id];
  }
  for (const auto& token : impl->added.tokens()) {
    impl->id_strings[token.id] = token.content;
    impl->id_decoded[token.id] = token.content;
    impl->id_is_special[token.id] = token.special;
    impl->added_ids[token.content] = token.id;
  }

  Impl& ref = *impl;
  auto lookup = [&ref](const std::string& text) -> std::optional<TokenId> {
    if (auto it = ref.added_ids.find(text); it != ref.added_ids.end()) return it->second;
    if (auto it = ref.bpe.vocab().find(text); it != ref.bpe.vocab().end()) return it->second;
    return std::nullopt;
  };
  try {
    if (json.contains("post_processor") && !json["post_processor"].is_null())
      read_template(json["post_processor"], where + ".post_processor", ref.specials, lookup);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(str(where, ".post_processor: unexpected structure: ", e.what()));
  }

  // tokenizer_config.json, when present, is what transformers follows for BOS/EOS.
  auto config_path = tokenizer_json.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    auto config = read_json(config_path);
    for (auto [key, slot] : {std::pair{"bos_token", &ref.specials.bos}, std::pair{"eos_token", &ref.specials.eos}}) {
      if (auto name = config_token(config, key)) {
        *slot = lookup(*name);
        if (!*slot) throw DataError(str(config_path.string(), ".", key, ": \"", *name, "\" is not a token"));
      }
    }
    if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
      ref.specials.add_bos = config["add_bos_token"].get<bool>();
    if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
      ref.specials.add_eos = config["add_eos_token"].get<bool>();
  }
  return Tokenizer(std::move(impl));
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<TokenId> ids;
  encode_into(text, ids, options);
  return ids;
}

void Tokenizer::encode_into(std::string_view text, std::vector<TokenId>& out, const EncodeOptions& options) const {
  if (auto bad = first_invalid_utf8(text))
    throw DataError(str("invalid UTF-8 at byte offset ", *bad, " (use replace_invalid_utf8 to substitute U+FFFD)"));
  const Impl& impl = *impl_;
  if (options.add_special_tokens && impl.specials.add_bos && impl.specials.bos) out.push_back(*impl.specials.bos);

  thread_local std::vector<Segment> segments;
  thread_local std::vector<std::string_view> pieces, scratch;
  thread_local std::deque<std::string> arena;
  thread_local PieceCache cache;
  if (cache.owner != impl.serial) {
    cache.map.clear();
    cache.owner = impl.serial;
  }

  impl.added.split(text, options.parse_special_tokens, segments);
  for (const Segment& segment : segments) {
    if (segment.is_token) {
      out.push_back(segment.id);
      continue;
    }
    arena.clear();
    impl.pre.split(text.substr(segment.begin, segment.end - segment.begin), pieces, scratch, arena);
    for (std::string_view piece : pieces) {
      if (piece.size() > kCachedPieceBytes) {
        impl.bpe.encode_piece(piece, out);
        continue;
      }
      if (auto it = cache.map.find(piece); it != cache.map.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
      size_t first = out.size();
      impl.bpe.encode_piece(piece, out);
      if (cache.map.size() >= kCacheEntries) cache.map.clear();
      cache.map.emplace(std::string(piece), std::vector<TokenId>(out.begin() + std::ptrdiff_t(first), out.end()));
    }
  }
  if (options.add_special_tokens && impl.specials.add_eos && impl.specials.eos) out.push_back(*impl.specials.eos);
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (TokenId id : ids) {
    if (id >= impl_->id_decoded.size()) throw DataError(str("decode: token id ", id, " >= vocab size ", vocab_size()));
    if (skip_special_tokens && impl_->id_is_special[id]) continue;
    bytes += impl_->id_decoded[id];
  }
  // Ids cut inside a character decode to U+FFFD, as HF's lossy byte-level decoder does.
  return first_invalid_utf8(bytes) ? replace_invalid_utf8(bytes) : bytes;
}

size_t Tokenizer::vocab_size() const { return impl_->id_strings.size(); }
std::optional<TokenId> Tokenizer::bos_id() const { return impl_->specials.bos; }
std::optional<TokenId> Tokenizer::eos_id() const { return impl_->specials.eos; }
bool Tokenizer::add_bos_by_default() const { return impl_->specials.add_bos && impl_->specials.bos.has_value(); }

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_ids.find(token); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->bpe.vocab().find(token); it != impl_->bpe.vocab().end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  if (id >= impl_->id_strings.size() || impl_->id_strings[id].empty()) return std::nullopt;
  return impl_->id_strings[id];
}

}  // namespace dsk::tokenizer
