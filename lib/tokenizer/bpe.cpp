#include "tokenizer/bpe.hpp"

#include <algorithm>
#include <queue>
#include <functional>
#include <future>

#include "core/error.hpp"

namespace dsk::tokenizer {

const std::array<std::string, 256>& byte_level_alphabet() {
  static const std::array<std::string, 256> alphabet = [] {
    std::array<std::string, 256> table;
    auto encode = [](uint32_t cp) {
      std::string s;
      if (cp < 0x80) {
        s += char(cp);
      } else {
        s += char(0xC0 | (cp >> 6));
        s += char(0x80 | (cp & 0x3F));
      }
      return s;
    };
    // Printable Latin-1 bytes map to themselves; the rest to 256, 257, ... in byte order.
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      table[b] = encode(printable ? uint32_t(b) : next++);
    }
    return table;
  }();
  return alphabet;
}

bool byte_level_to_bytes(std::string_view text, std::string& bytes) {
  // The byte each alphabet code point stands for (-1: none); the alphabet is below U+0144.
  static const std::array<int16_t, 0x200> byte_of = [] {
    std::array<int16_t, 0x200> table;
    table.fill(-1);
    const auto& alphabet = byte_level_alphabet();
    for (int b = 0; b < 256; ++b) {
      const std::string& utf8 = alphabet[b];
      uint32_t cp = utf8.size() == 1 ? uint8_t(utf8[0]) : ((uint8_t(utf8[0]) & 0x1F) << 6) | (uint8_t(utf8[1]) & 0x3F);
      table[cp] = int16_t(b);
    }
    return table;
  }();
  bytes.clear();
  for (size_t at = 0; at < text.size();) {
    auto lead = uint8_t(text[at]);
    uint32_t cp = lead;
    if (lead >= 0x80) {
      // Two-byte sequences only, and not overlong: each alphabet character has one encoding.
      if ((lead & 0xE0) != 0xC0 || at + 1 >= text.size() || (uint8_t(text[at + 1]) & 0xC0) != 0x80) return false;
      cp = ((lead & 0x1F) << 6) | (uint8_t(text[at + 1]) & 0x3F);
      if (cp < 0x80) return false;
    }
    if (cp >= byte_of.size() || byte_of[cp] < 0) return false;
    bytes += char(byte_of[cp]);
    at += lead < 0x80 ? 1 : 2;
  }
  return true;
}

void check_id_range(uint64_t largest_id, size_t tokens, const std::string& where) {
  if (largest_id >= 2 * uint64_t(tokens) + 1024)
    throw DataError(str(where, ": token id ", largest_id, " for ", tokens,
                        " tokens (ids must be dense: below 2 x the tokens + 1024)"));
}

namespace {

using VocabEntries = std::vector<std::pair<std::string, TokenId>>;

// A merge "a b" or ["a", "b"]; DataError naming merges[rank] otherwise.
std::pair<std::string, std::string> merge_pair(const JsonField& merges, size_t rank) {
  const auto& merge = merges.json()[rank];
  if (merge.is_string()) {
    const auto& text = merge.get_ref<const std::string&>();
    size_t space = text.find(' ', 1);
    if (space != std::string::npos) return {text.substr(0, space), text.substr(space + 1)};
  } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  }
  merges.item(rank).fail("\"a b\" or [\"a\", \"b\"]");
}

VocabEntries vocab_from_tree(const JsonField& vocab) {
  vocab.object();
  VocabEntries entries;
  entries.reserve(vocab.json().size());
  for (auto it = vocab.json().begin(); it != vocab.json().end(); ++it) {
    const auto& value = it.value();
    // Places are named only on failure: building one per entry would slow loading 130k tokens.
    uint64_t id = value.is_number_unsigned() && value.get<uint64_t>() <= kMaxTokenId
                      ? value.get<uint64_t>()
                      : JsonField(value, str(vocab.where(), "[\"", it.key(), "\"]")).unsigned_integer(kMaxTokenId);
    entries.emplace_back(it.key(), TokenId(id));
  }
  return entries;
}

std::vector<std::pair<std::string, std::string>> merges_from_tree(const JsonField& merges) {
  merges.array();
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(merges.json().size());
  for (size_t rank = 0; rank < merges.json().size(); ++rank) pairs.push_back(merge_pair(merges, rank));
  return pairs;
}

// A key given twice in a JSON object means its last value (as in nlohmann's tree and in serde):
// keeps the last entry of each key, in file order.
void keep_last_of_each_key(VocabEntries& entries) {
  std::vector<bool> keep(entries.size(), false);
  FlatMap<std::string_view, bool> seen;
  seen.reserve(entries.size());
  for (size_t i = entries.size(); i-- > 0;) keep[i] = seen.try_emplace(entries[i].first, true);
  VocabEntries kept;
  kept.reserve(seen.size());
  for (size_t i = 0; i < entries.size(); ++i)
    if (keep[i]) kept.push_back(std::move(entries[i]));
  entries = std::move(kept);
}

// Tables of fewer entries are built on the calling thread (tests, fuzzing: no thread per load).
constexpr size_t kParallelBuildEntries = 4096;

// Runs task on a thread of its own when `parallel`, else now; get() waits for it (and rethrows).
std::future<void> start(bool parallel, std::function<void()> task) {
  return std::async(parallel ? std::launch::async : std::launch::deferred, std::move(task));
}

}  // namespace

Bpe Bpe::from_json(const JsonField& model, BpeInput input) {
  model.object();
  std::string type = model.string_or("type", "BPE");
  if (type != "BPE") throw DataError(str(model.where(), ".type: expected \"BPE\", got \"", type, "\""));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!model.string_or(key, "").empty())
      throw DataError(str(model.where(), ".", key, ": not supported by dsk's byte-level BPE"));
  if (model.boolean_or("byte_fallback", false))
    throw DataError(str(model.where(), ".byte_fallback: true is not supported (byte-level BPE needs none)"));
  if (model.has("dropout")) throw DataError(str(model.where(), ".dropout: BPE dropout is not supported"));

  Bpe bpe;
  bpe.ignore_merges_ = model.boolean_or("ignore_merges", false);
  // From the cache: entries each once and merges as ids, as they were when it was written.
  const bool checked = input.checked.has_value();
  if (checked) bpe.model_ = std::move(*input.checked);
  else bpe.model_.vocab = input.vocab ? std::move(*input.vocab) : vocab_from_tree(model.at("vocab"));
  VocabEntries& entries = bpe.model_.vocab;
  const bool parallel = entries.size() >= kParallelBuildEntries;

  if (!checked) {
    bpe.build_vocab_table();
    if (bpe.vocab_.size() != entries.size()) {  // a repeated key; the tables' keys are views into the entries
      keep_last_of_each_key(entries);
      bpe.vocab_ = {};
      bpe.build_vocab_table();
    }
  }
  uint64_t largest = 0;
  for (const auto& entry : entries) largest = std::max<uint64_t>(largest, entry.second);
  // Ids first: the tables below are sized by the largest one.
  if (!entries.empty()) check_id_range(largest, entries.size(), model.where() + ".vocab");
  const size_t id_count = entries.empty() ? 0 : size_t(largest) + 1;
  std::future<void> merge_table, byte_tables;
  if (checked) {  // nothing left to check: the three tables are built side by side
    merge_table = start(parallel, [&bpe] { bpe.build_merge_table(); });
    byte_tables = start(parallel, [&bpe, id_count] { bpe.build_byte_tables(id_count); });
    bpe.build_vocab_table();
  } else {
    byte_tables = start(parallel, [&bpe, id_count] { bpe.build_byte_tables(id_count); });
    try {
      auto pairs = input.merges ? std::move(*input.merges) : merges_from_tree(model.at("merges"));
      auto& merges = bpe.model_.merges;
      merges.reserve(pairs.size());
      std::string joined;
      for (size_t rank = 0; rank < pairs.size(); ++rank) {
        const auto& [left, right] = pairs[rank];
        joined.assign(left).append(right);
        auto l = bpe.find(left), r = bpe.find(right), m = bpe.find(joined);
        if (!l || !r || !m)
          throw DataError(str(model.where(), ".merges[", rank, "]: \"", left, "\" + \"", right, "\" not in the vocab"));
        merges.push_back({*l, *r, *m});
      }
    } catch (...) {
      byte_tables.wait();
      throw;
    }
    bpe.build_merge_table();
  }
  if (merge_table.valid()) merge_table.get();
  byte_tables.get();
  return bpe;
}

std::optional<TokenId> Bpe::find(std::string_view token) const {
  const TokenId* id = vocab_.find(token);
  return id ? std::optional<TokenId>(*id) : std::nullopt;
}

void Bpe::build_vocab_table() {
  vocab_.reserve(model_.vocab.size());
  for (const auto& [text, id] : model_.vocab) vocab_.insert_or_assign(text, id);
}

void Bpe::build_byte_tables(size_t id_count) {
  constexpr uint32_t kNone = ~uint32_t(0);
  std::vector<uint32_t> entry_of(id_count, kNone);  // the last entry with each id, in file order
  size_t text_bytes = 0;
  for (uint32_t i = 0; i < model_.vocab.size(); ++i) {
    entry_of[model_.vocab[i].second] = i;
    text_bytes += model_.vocab[i].first.size();
  }
  id_bytes_.reserve(id_count, text_bytes);
  std::string bytes;
  for (size_t id = 0; id < id_count; ++id) {
    if (entry_of[id] == kNone) {
      id_bytes_.push_back("");
      continue;
    }
    const std::string& text = model_.vocab[entry_of[id]].first;
    // Entries outside the byte-level alphabet (DeepSeek lists its special tokens here too) can
    // never come out of merges; they decode to themselves.
    id_bytes_.push_back(byte_level_to_bytes(text, bytes) ? std::string_view(bytes) : std::string_view(text));
  }
  // The ids of raw byte strings, over every entry (two may share an id): single bytes to start
  // each piece from; whole pieces for ignore_merges. In file order, the first entry wins.
  byte_id_.fill(-1);
  std::vector<TokenId> piece_ids;
  for (const auto& [text, id] : model_.vocab) {
    if (!ignore_merges_ && text.size() > 2) continue;  // not one alphabet character, so not one byte
    if (!byte_level_to_bytes(text, bytes)) continue;
    if (bytes.size() == 1 && byte_id_[uint8_t(bytes[0])] < 0) byte_id_[uint8_t(bytes[0])] = id;
    if (ignore_merges_) {
      piece_bytes_.push_back(bytes);
      piece_ids.push_back(id);
    }
  }
  bytes_to_id_.reserve(piece_ids.size());
  for (size_t i = 0; i < piece_ids.size(); ++i) bytes_to_id_.try_emplace(piece_bytes_[i], piece_ids[i]);
}

void Bpe::build_merge_table() {
  merges_.reserve(model_.merges.size());
  for (size_t rank = 0; rank < model_.merges.size(); ++rank) {
    const auto& [left, right, merged] = model_.merges[rank];
    merges_.try_emplace(pair_key(left, right), Merge{uint32_t(rank), merged});
  }
}

// Merges adjacent symbols, lowest rank first and leftmost among equals (as HF's BPE does),
// with a heap of candidate pairs over a linked list of symbols: O(n log n) for long pieces.
void Bpe::merge_symbols(std::vector<TokenId>& symbols) const {
  size_t n = symbols.size();
  if (n < 2) return;
  struct Candidate {
    uint32_t rank;
    uint32_t left;  // position of the left symbol
    TokenId left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  thread_local std::vector<uint32_t> next, prev;
  thread_local std::vector<Candidate> heap_storage;
  next.resize(n);
  prev.resize(n);
  for (size_t i = 0; i < n; ++i) {
    next[i] = uint32_t(i + 1);
    prev[i] = uint32_t(i - 1);  // wraps for i == 0; never read there
  }
  heap_storage.clear();
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap(std::greater<>{},
                                                                             std::move(heap_storage));
  auto push = [&](uint32_t left) {
    uint32_t right = next[left];
    if (right >= n) return;
    if (const Merge* merge = merges_.find(pair_key(symbols[left], symbols[right])))
      heap.push({merge->rank, left, symbols[left], symbols[right]});
  };
  constexpr TokenId kDead = ~TokenId(0);
  for (uint32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    Candidate top = heap.top();
    heap.pop();
    uint32_t left = top.left;
    if (symbols[left] != top.left_id) continue;  // stale: the left symbol changed
    uint32_t right = next[left];
    if (right >= n || symbols[right] != top.right_id) continue;
    symbols[left] = merges_.find(pair_key(top.left_id, top.right_id))->merged;
    symbols[right] = kDead;
    next[left] = next[right];
    if (next[right] < n) prev[next[right]] = left;
    if (left > 0) push(prev[left]);  // position 0 is never merged away, so prev[left] is live
    push(left);
  }
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i)
    if (symbols[i] != kDead) symbols[kept++] = symbols[i];
  symbols.resize(kept);
}

void Bpe::encode_piece(std::string_view piece, std::vector<TokenId>& out) const {
  if (ignore_merges_) {
    if (const TokenId* id = bytes_to_id_.find(piece)) {
      out.push_back(*id);
      return;
    }
  }
  thread_local std::vector<TokenId> symbols;
  symbols.clear();
  for (unsigned char b : piece)
    if (byte_id_[b] >= 0) symbols.push_back(TokenId(byte_id_[b]));  // no unk token: HF drops it
  merge_symbols(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
}

}  // namespace dsk::tokenizer
