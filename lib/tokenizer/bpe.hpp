// The BPE model of a byte-level tokenizer.json: merges a piece of raw bytes into token ids.
// Vocabulary strings are in GPT-2's byte-to-unicode alphabet; they are turned back into raw
// bytes at load, so encoding works on bytes and decoding is a table lookup.
#pragma once

#include <array>
#include <optional>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.hpp"
#include "tokenizer/flat_tables.hpp"

namespace dsk::tokenizer {

using TokenId = uint32_t;

// Token ids index dsk's tables: every id must be at most kMaxTokenId, and the largest id below
// 2 * tokens + 1024, so that a stray huge id in a small file cannot size those tables (ids of
// real tokenizers are dense). DataError naming `where` otherwise.
inline constexpr uint64_t kMaxTokenId = (uint64_t(1) << 31) - 1;
void check_id_range(uint64_t largest_id, size_t tokens, const std::string& where);

// GPT-2's reversible map from bytes to printable code points (bytes_to_unicode), as UTF-8.
const std::array<std::string, 256>& byte_level_alphabet();
// The raw bytes of a byte-level string; false when a character is outside the alphabet.
bool byte_level_to_bytes(std::string_view text, std::string& bytes);

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringToId = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;

// The model's vocab and merges once checked: what the tables are built from, and what the
// tokenizer cache (tokenizer_cache.hpp) stores.
struct BpeModel {
  std::vector<std::pair<std::string, TokenId>> vocab;  // byte-level strings, each once, in file order
  std::vector<std::array<TokenId, 3>> merges;          // {left, right, merged}, by rank
};

// model.vocab and model.merges as read, before the checks: a parse that streams past them
// (tokenizer_json.hpp) fills these; when it could not, they are read from the JSON tree.
struct BpeInput {
  std::optional<std::vector<std::pair<std::string, TokenId>>> vocab;  // ids at most kMaxTokenId
  std::optional<std::vector<std::pair<std::string, std::string>>> merges;
  std::optional<BpeModel> checked;  // from the cache: vocab and merges both, checked when it was written
};

class Bpe {
 public:
  // `model` is tokenizer.json's "model" node (type BPE); its vocab and merges come from `input`
  // where it holds them, else from the node.
  static Bpe from_json(const JsonField& model, BpeInput input = {});

  Bpe() = default;
  Bpe(Bpe&&) = default;  // the tables' views into model_'s strings stay valid: those do not move
  Bpe& operator=(Bpe&&) = default;
  Bpe(const Bpe&) = delete;
  Bpe& operator=(const Bpe&) = delete;

  // Appends the ids of one pre-tokenized piece (raw bytes).
  void encode_piece(std::string_view piece, std::vector<TokenId>& out) const;

  std::optional<TokenId> find(std::string_view token) const;  // of a byte-level vocab string
  size_t id_count() const { return id_bytes_.size(); }  // largest id + 1
  // The raw bytes an id stands for ("" for an id no entry has).
  std::string_view id_bytes(TokenId id) const { return id_bytes_[id]; }
  const BpeModel& model() const { return model_; }

 private:
  struct Merge {
    uint32_t rank;
    TokenId merged;
  };
  static uint64_t pair_key(TokenId left, TokenId right) { return (uint64_t(left) << 32) | right; }
  void merge_symbols(std::vector<TokenId>& symbols) const;
  void build_vocab_table();
  void build_byte_tables(size_t id_count);
  void build_merge_table();

  BpeModel model_;
  FlatMap<std::string_view, TokenId> vocab_;  // keys: model_.vocab's strings
  StringTable id_bytes_;
  StringTable piece_bytes_;  // with ignore_merges only: each entry's raw bytes
  FlatMap<std::string_view, TokenId> bytes_to_id_;  // keys: piece_bytes_'s
  std::array<int64_t, 256> byte_id_{};  // -1 where the byte has no token
  FlatMap<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;
};

}  // namespace dsk::tokenizer
