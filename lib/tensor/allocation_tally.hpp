// The bytes a backend holds, allocation by allocation: memory_in_use() and the out-of-memory
// messages read the total, peak_memory_in_use() the most it has been.
#pragma once

#include <cstddef>
#include <unordered_map>

namespace dsk::tensor {

class AllocationTally {
 public:
  void add(void* data, size_t bytes) {
    sizes_[data] = bytes;
    total_ += bytes;
    peak_ = total_ > peak_ ? total_ : peak_;
  }
  void remove(void* data) {
    auto it = sizes_.find(data);
    if (it == sizes_.end()) return;
    total_ -= it->second;
    sizes_.erase(it);
  }
  size_t total() const { return total_; }
  size_t peak() const { return peak_; }

 private:
  std::unordered_map<void*, size_t> sizes_;
  size_t total_ = 0, peak_ = 0;
};

}  // namespace dsk::tensor
