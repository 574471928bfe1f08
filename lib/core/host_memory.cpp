#include "core/host_memory.hpp"

#include <algorithm>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace dsk {

std::optional<size_t> host_heap_in_use() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
#else
  return std::nullopt;
#endif
}

void HostHeapGrowth::sample() {
  const std::optional<size_t> now = host_heap_in_use();
  if (now && baseline_ && *now > *baseline_) peak_ = std::max(peak_, *now - *baseline_);
}

std::optional<size_t> HostHeapGrowth::peak() const {
  if (!baseline_) return std::nullopt;
  return peak_;
}

}  // namespace dsk
