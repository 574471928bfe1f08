// The containers of the tokenizer's big read-only tables (DeepSeek-V3: 128k vocab entries,
// 128k merges), built once per load: all entries in one allocation. std::unordered_map and a
// std::string per token make an allocation per entry, and building them that way was most of
// the time dsk-tokenize spent loading the tokenizer before it could use its threads. (The STL
// has no flat hash table; abseil's is not among dsk's dependencies.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace dsk::tokenizer {

// A hash table with open addressing: linear probing over a power-of-two array, at most half
// full, no erase. Keys are held by value (a string_view key must outlive the table).
template <typename Key, typename Value, typename Hash = std::hash<Key>>
class FlatMap {
 public:
  void reserve(size_t entries) {
    size_t capacity = 16;
    while (capacity < 2 * entries) capacity *= 2;
    if (capacity > slots_.size()) rehash(capacity);
  }

  // Sets key's value; false when the key was there already (its value replaced).
  bool insert_or_assign(const Key& key, const Value& value) { return put(key, value, true); }
  // Adds key with value unless the key is there; false when it was (its value kept).
  bool try_emplace(const Key& key, const Value& value) { return put(key, value, false); }

  const Value* find(const Key& key) const {
    if (slots_.empty()) return nullptr;
    const Slot& slot = slots_[position(key)];
    return slot.used ? &slot.value : nullptr;
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    Key key{};
    Value value{};
    bool used = false;
  };

  // The slot holding key, or the empty one where it would go.
  size_t position(const Key& key) const {
    uint64_t h = Hash{}(key);
    h = (h ^ (h >> 33)) * 0xff51afd7ed558ccdull;  // MurmurHash3's finalizer: low bits depend on all bits
    h ^= h >> 33;
    const size_t mask = slots_.size() - 1;
    for (size_t at = size_t(h) & mask;; at = (at + 1) & mask)
      if (!slots_[at].used || slots_[at].key == key) return at;
  }

  bool put(const Key& key, const Value& value, bool replace) {
    if (2 * (size_ + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
    Slot& slot = slots_[position(key)];
    if (slot.used) {
      if (replace) slot.value = value;
      return false;
    }
    slot = Slot{key, value, true};
    ++size_;
    return true;
  }

  void rehash(size_t capacity) {
    std::vector<Slot> old(capacity);
    old.swap(slots_);
    for (const Slot& slot : old)
      if (slot.used) slots_[position(slot.key)] = slot;
  }

  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// Strings by index, back to back in one buffer (a vector: moving the table keeps the bytes
// where views into them point).
class StringTable {
 public:
  void reserve(size_t strings, size_t bytes) {
    begin_.reserve(strings + 1);
    bytes_.reserve(bytes);
  }
  void push_back(std::string_view text) {
    bytes_.insert(bytes_.end(), text.begin(), text.end());
    begin_.push_back(bytes_.size());
  }
  std::string_view operator[](size_t index) const {
    return std::string_view(bytes_.data() + begin_[index], begin_[index + 1] - begin_[index]);
  }
  size_t size() const { return begin_.size() - 1; }

 private:
  std::vector<char> bytes_;
  std::vector<size_t> begin_{0};
};

}  // namespace dsk::tokenizer
