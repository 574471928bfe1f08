// A piece -> ids cache shared by every thread that encodes with one tokenizer, looked up first;
// each thread's own (tokenizer.cpp's PieceCache) only holds the pieces that come after it is
// full. With only per-thread caches, every thread had to learn the common pieces by itself: at
// 16 threads each saw a sixteenth of dsk-tokenize's input and spent about 20% more per byte than
// one thread warmed over all of it; and this flat table is faster to look up than the
// unordered_map of vectors, even on one thread (docs/benchmarks.md).
//
// Entries are written once and never change, move or go before the cache does, so a lookup is
// lock-free (acquire loads of the slots) and an insertion takes a free slot with one
// compare-and-swap. Bounded: once half full it takes no more.
// What it holds never changes an encoding: a piece's ids are the same whoever computed them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dsk::tokenizer {

class SharedPieceCache {
 public:
  struct Entry {
    std::string piece;
    std::vector<uint32_t> ids;
  };

  explicit SharedPieceCache(unsigned slots_log2 = 18)
      : mask_((size_t(1) << slots_log2) - 1), slots_(new std::atomic<const Entry*>[mask_ + 1]) {
    for (size_t i = 0; i <= mask_; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
  }
  ~SharedPieceCache() {
    for (size_t i = 0; i <= mask_; ++i) delete slots_[i].load(std::memory_order_relaxed);
  }
  SharedPieceCache(const SharedPieceCache&) = delete;
  SharedPieceCache& operator=(const SharedPieceCache&) = delete;

  const Entry* find(std::string_view piece, size_t hash) const {
    size_t slot = hash & mask_;
    for (size_t probe = 0; probe < kMaxProbes; ++probe, slot = (slot + 1) & mask_) {
      const Entry* entry = slots_[slot].load(std::memory_order_acquire);
      if (!entry) return nullptr;
      if (entry->piece == piece) return entry;
    }
    return nullptr;
  }

  // False when the table takes no more (full, or too many probes).
  bool insert(std::string_view piece, size_t hash, std::span<const uint32_t> ids) {
    if (size_.load(std::memory_order_relaxed) >= (mask_ + 1) / 2) return false;
    auto entry = std::make_unique<Entry>(Entry{std::string(piece), std::vector<uint32_t>(ids.begin(), ids.end())});
    size_t slot = hash & mask_;
    for (size_t probe = 0; probe < kMaxProbes; ++probe, slot = (slot + 1) & mask_) {
      const Entry* expected = nullptr;
      if (slots_[slot].compare_exchange_strong(expected, entry.get(), std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
        entry.release();
        size_.fetch_add(1, std::memory_order_relaxed);
        return true;
      }
      if (expected->piece == piece) return true;  // another thread got there first
    }
    return false;
  }

 private:
  static constexpr size_t kMaxProbes = 32;
  const size_t mask_;
  std::unique_ptr<std::atomic<const Entry*>[]> slots_;
  std::atomic<size_t> size_{0};
};

}  // namespace dsk::tokenizer
