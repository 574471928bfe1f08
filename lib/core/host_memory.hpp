// How much host memory a stretch of code took, measured rather than counted by hand: the C
// library allocator's bytes in use (glibc's mallinfo2: its arenas' in-use bytes and the blocks it
// mapped), sampled at the points the code marks. Process-wide: other threads' allocations in the
// meantime count too, and on the CPU backend so does the backend's memory (the host's).
#pragma once

#include <cstddef>
#include <optional>

namespace dsk {

// Bytes the allocator has handed out and not taken back; nullopt where it cannot tell (not glibc).
std::optional<size_t> host_heap_in_use();

// The most the allocator's bytes in use rose above their value at construction, over the samples
// taken (none: 0).
class HostHeapGrowth {
 public:
  HostHeapGrowth() : baseline_(host_heap_in_use()) {}
  void sample();
  // nullopt where host_heap_in_use() is.
  std::optional<size_t> peak() const;

 private:
  std::optional<size_t> baseline_;
  size_t peak_ = 0;
};

}  // namespace dsk
