// Loading tokenizer.json (+ tokenizer_config.json) and the encode/decode paths.
// encode: check UTF-8 -> cut out added tokens -> pre-tokenize each plain segment -> BPE each
// piece (through a per-thread cache of piece -> ids) -> BOS/EOS when asked.
#include "tokenizer/tokenizer.hpp"

#include <atomic>
#include <deque>
#include <functional>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/sha256.hpp"
#include "tokenizer/added_tokens.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/pre_tokenizer.hpp"
#include "tokenizer/shared_piece_cache.hpp"
#include "tokenizer/tokenizer_cache.hpp"
#include "tokenizer/tokenizer_json.hpp"
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
  StringTable id_strings;  // vocab string (byte-level form) or added content, per id
  std::vector<uint8_t> id_is_special;
  StringTable id_decoded;  // raw bytes a token decodes to
  StringToId added_ids;
  SpecialIds specials;
  mutable SharedPieceCache shared_pieces;  // before the per-thread caches; filled as encode() goes
};

namespace {

std::atomic<uint64_t> next_serial{1};

void check_normalizer(const JsonField& normalizer) {
  if (normalizer.json().is_null()) return;
  // DeepSeek's files carry an empty Sequence; GPT-2's none at all. Anything else would change
  // the text before matching, which dsk does not implement.
  std::string type = normalizer.object().string_or("type", "?");
  if (type == "Sequence" && (!normalizer.has("normalizers") || normalizer.at("normalizers").size() == 0)) return;
  throw DataError(str(normalizer.where(), ": unsupported normalizer \"", type, "\" (dsk supports none or an empty Sequence)"));
}

void check_decoder(const JsonField& decoder) {
  if (decoder.json().is_null()) return;
  std::string type = decoder.object().string_or("type", "?");
  if (type != "ByteLevel") throw DataError(str(decoder.where(), ": unsupported decoder \"", type, "\" (expected ByteLevel)"));
}

// A token named in tokenizer_config.json: a string or {"content": ...}; null or absent: none.
std::optional<std::string> config_token(const JsonField& config, const char* key) {
  if (!config.has(key)) return std::nullopt;
  const JsonField node = config.at(key);
  if (node.json().is_string()) return node.string();
  if (!node.json().is_object()) node.fail("a string or {\"content\": ...}");
  return node.at("content").string();
}

// The id a TemplateProcessing names for a special token: its special_tokens entry, else the vocab.
std::optional<TokenId> template_token_id(const JsonField& processor, const std::string& name,
                                         const std::function<std::optional<TokenId>(const std::string&)>& lookup) {
  if (!processor.has("special_tokens")) return lookup(name);
  const JsonField specials = processor.at("special_tokens").object();
  if (!specials.has(name.c_str())) return lookup(name);
  const JsonField ids = specials.at(name.c_str()).at("ids");
  if (ids.size() == 0) return lookup(name);
  return TokenId(ids.item(0).unsigned_integer(kMaxTokenId));
}

// BOS/EOS from a TemplateProcessing "single" template: special tokens before / after $A.
void read_template(const JsonField& processor, SpecialIds& impl,
                   const std::function<std::optional<TokenId>(const std::string&)>& lookup) {
  std::string type = processor.object().string_or("type", "");
  if (type == "Sequence") {
    const JsonField list = processor.at("processors");
    for (size_t i = 0; i < list.size(); ++i) read_template(list.item(i), impl, lookup);
    return;
  }
  if (type == "ByteLevel") return;  // offsets only
  if (type != "TemplateProcessing")
    throw DataError(str(processor.where(), ": unsupported post_processor \"", type, "\" (expected TemplateProcessing or ByteLevel)"));
  bool seen_sequence = false;
  const JsonField single = processor.at("single");
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonField item = single.item(i).object();
    if (item.json().contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!item.has("SpecialToken")) throw DataError(str(item.where(), ": expected Sequence or SpecialToken"));
    auto name = item.at("SpecialToken").at("id").string();
    std::optional<TokenId> id = template_token_id(processor, name, lookup);
    if (!id) throw DataError(str(item.where(), ": unknown special token \"", name, "\""));
    if (seen_sequence) {
      impl.eos = id;
      impl.add_eos = true;
    } else {
      impl.bos = id;
      impl.add_bos = true;
    }
  }
}

// The per-thread piece -> ids cache, for the pieces that the shared one (shared_piece_cache.hpp)
// has no room for. Bounded: cleared when full (pieces repeat heavily, so it refills with the
// common ones at once).
struct PieceCache {
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> map;
};
constexpr size_t kCacheEntries = 1 << 16;
constexpr size_t kCachedPieceBytes = 64;

}  // namespace

// Per id (up to `size`): its vocab string and raw bytes, or an added token's content (an added
// token takes the id from a vocab entry; the last of two added tokens with one id wins).
void Tokenizer::build_id_tables(Impl& impl, size_t size) {
  constexpr uint32_t kNone = ~uint32_t(0);
  const auto& vocab = impl.bpe.model().vocab;
  const auto& added = impl.added.tokens();
  std::vector<uint32_t> entry_of(size, kNone), added_of(size, kNone);
  size_t text_bytes = 0;
  for (uint32_t i = 0; i < vocab.size(); ++i) {  // in file order: the last of two equal ids wins
    entry_of[vocab[i].second] = i;
    text_bytes += vocab[i].first.size();
  }
  for (uint32_t i = 0; i < added.size(); ++i) {
    added_of[added[i].id] = i;
    text_bytes += added[i].content.size();
    impl.added_ids[added[i].content] = added[i].id;
  }
  impl.id_strings.reserve(size, text_bytes);
  impl.id_decoded.reserve(size, text_bytes);
  impl.id_is_special.assign(size, 0);
  for (size_t id = 0; id < size; ++id) {
    if (added_of[id] != kNone) {
      const AddedToken& token = added[added_of[id]];
      impl.id_strings.push_back(token.content);
      impl.id_decoded.push_back(token.content);
      impl.id_is_special[id] = token.special;
    } else {
      impl.id_strings.push_back(entry_of[id] != kNone ? std::string_view(vocab[entry_of[id]].first) : std::string_view());
      impl.id_decoded.push_back(id < impl.bpe.id_count() ? impl.bpe.id_bytes(TokenId(id)) : std::string_view());
    }
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::load(const std::filesystem::path& tokenizer_json, const std::optional<std::filesystem::path>& cache_dir) {
  // tokenizer_config.json, when present, is what transformers follows for BOS/EOS.
  auto config_path = tokenizer_json.parent_path() / "tokenizer_config.json";
  std::optional<std::string> config_text;
  if (std::filesystem::exists(config_path)) config_text = read_file(config_path);
  const std::string text = read_file(tokenizer_json), where = tokenizer_json.string();
  if (!cache_dir) return from_json(text, where, config_text, config_path.string());

  const std::string key = sha256_hex(text);
  const auto cache_file = tokenizer_cache_file(*cache_dir, key);
  if (auto cached = read_tokenizer_cache(cache_file, key)) {
    try {
      const nlohmann::json tree = parse_json(cached->json, where);
      log_debug("tokenizer: ", where, " from the cache ", cache_file.string());
      BpeInput checked;
      checked.checked = std::move(cached->model);
      return from_tree(tree, std::move(checked), where, config_text, config_path.string());
    } catch (const DataError& e) {
      // Only a file that loaded is cached: an error here is the cache's (or tokenizer_config.json's,
      // which the load below reports again).
      log_debug("tokenizer: not using the cache ", cache_file.string(), ": ", e.what());
    }
  }
  TokenizerJson parsed = read_tokenizer_json(text, where);
  const bool streamed = parsed.bpe.vocab && parsed.bpe.merges;
  Tokenizer tokenizer = from_tree(parsed.tree, std::move(parsed.bpe), where, config_text, config_path.string());
  if (streamed) {  // the tree holds everything but the vocab and merges, which the tokenizer now has checked
    try {
      write_tokenizer_cache(cache_file, key, parsed.tree.dump(), tokenizer.impl_->bpe.model());
      log_debug("tokenizer: cached ", where, " in ", cache_file.string());
    } catch (const std::exception& e) {  // a read-only or full disk: the cache is only a shortcut
      log_debug("tokenizer: could not write the cache ", cache_file.string(), ": ", e.what());
    }
  }
  return tokenizer;
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, const std::string& where,
                               const std::optional<std::string>& tokenizer_config_json, const std::string& config_where) {
  TokenizerJson parsed = read_tokenizer_json(tokenizer_json, where);
  return from_tree(parsed.tree, std::move(parsed.bpe), where, tokenizer_config_json, config_where);
}

Tokenizer Tokenizer::from_tree(const nlohmann::json& json, BpeInput bpe, const std::string& where,
                               const std::optional<std::string>& tokenizer_config_json, const std::string& config_where) {
  const JsonField root = JsonField(json, where).object();
  auto impl = std::make_unique<Impl>();
  impl->serial = next_serial++;
  try {
    check_normalizer(root.at_or_null("normalizer"));
    check_decoder(root.at_or_null("decoder"));
    impl->bpe = Bpe::from_json(root.at("model"), std::move(bpe));
    impl->pre = PreTokenizer::from_json(root.at_or_null("pre_tokenizer"));
    if (!impl->pre.has_byte_level)
      throw DataError(str(where, ".pre_tokenizer: no ByteLevel step (dsk supports byte-level BPE only)"));
    impl->added = AddedTokens::from_json(root.at_or_null("added_tokens"));
  } catch (const nlohmann::json::exception& e) {  // a read that JsonField does not guard
    throw DataError(str(where, ": unexpected structure: ", e.what()));
  }

  size_t size = impl->bpe.id_count();
  for (const auto& token : impl->added.tokens()) size = std::max(size, size_t(token.id) + 1);
  if (size > 0) check_id_range(size - 1, impl->bpe.model().vocab.size() + impl->added.tokens().size(), where);
  build_id_tables(*impl, size);
  Impl& ref = *impl;
  auto lookup = [&ref](const std::string& text) -> std::optional<TokenId> {
    if (auto it = ref.added_ids.find(text); it != ref.added_ids.end()) return it->second;
    return ref.bpe.find(text);
  };
  if (root.has("post_processor")) {
    read_template(root.at("post_processor"), ref.specials, lookup);
    // encode() would emit these ids: they must be in the vocabulary that shards are sized by.
    for (auto id : {ref.specials.bos, ref.specials.eos})
      if (id && *id >= size)
        throw DataError(str(where, ".post_processor: special token id ", *id, " is not below the vocabulary size ", size));
  }

  if (tokenizer_config_json) {
    const nlohmann::json config_json = parse_json(*tokenizer_config_json, config_where);
    const JsonField config = JsonField(config_json, config_where).object();
    for (auto [key, slot] : {std::pair{"bos_token", &ref.specials.bos}, std::pair{"eos_token", &ref.specials.eos}}) {
      if (auto name = config_token(config, key)) {
        *slot = lookup(*name);
        if (!*slot) throw DataError(str(config_where, ".", key, ": \"", *name, "\" is not a token"));
      }
    }
    if (config_json.contains("add_bos_token") && config_json["add_bos_token"].is_boolean())
      ref.specials.add_bos = config_json["add_bos_token"].get<bool>();
    if (config_json.contains("add_eos_token") && config_json["add_eos_token"].is_boolean())
      ref.specials.add_eos = config_json["add_eos_token"].get<bool>();
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
      const size_t hash = std::hash<std::string_view>{}(piece);
      if (const SharedPieceCache::Entry* shared = impl.shared_pieces.find(piece, hash)) {
        out.insert(out.end(), shared->ids.begin(), shared->ids.end());
        continue;
      }
      if (auto it = cache.map.find(piece); it != cache.map.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        continue;
      }
      size_t first = out.size();
      impl.bpe.encode_piece(piece, out);
      std::span<const TokenId> ids(out.data() + first, out.size() - first);
      if (impl.shared_pieces.insert(piece, hash, ids)) continue;
      if (cache.map.size() >= kCacheEntries) cache.map.clear();
      cache.map.emplace(std::string(piece), std::vector<TokenId>(ids.begin(), ids.end()));
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
  return impl_->bpe.find(token);
}

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  if (id >= impl_->id_strings.size() || impl_->id_strings[id].empty()) return std::nullopt;
  return std::string(impl_->id_strings[id]);
}

}  // namespace dsk::tokenizer
