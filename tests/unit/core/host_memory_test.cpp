// HostHeapGrowth measures what the allocator handed out, at the samples alone.
#include <doctest/doctest.h>

#include <vector>

#include "core/host_memory.hpp"

using namespace dsk;

TEST_CASE("HostHeapGrowth: the most the heap grew over the samples") {
  if (!host_heap_in_use()) return;  // not glibc: nothing to measure
  constexpr size_t bytes = size_t(8) << 20;
  HostHeapGrowth growth;
  CHECK(*growth.peak() == 0);  // no sample yet
  {
    std::vector<char> block(bytes, 1);
    asm volatile("" : : "g"(block.data()) : "memory");  // the allocation may not be elided
    growth.sample();
    CHECK(*growth.peak() >= bytes);
    CHECK(*growth.peak() < 2 * bytes);
  }
  const size_t held = *growth.peak();
  growth.sample();  // the block is gone: the peak stays
  CHECK(*growth.peak() == held);

  HostHeapGrowth after;
  after.sample();
  CHECK(*after.peak() < bytes);  // what was freed before it does not count
}
