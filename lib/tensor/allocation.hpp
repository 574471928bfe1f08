// An Allocation owns one buffer of exactly numel elements from a backend and gives it back when it
// goes out of scope, for the few buffers that live outside the planned arenas (arena.hpp): a
// collective's exchange at a save, say. Unlike an arena it does not round up to 256 bytes, so the
// backend's byte tally (memory_in_use, the logged peak) counts what the buffer holds.
#pragma once

#include <string>

#include "tensor/ops.hpp"

namespace dsk::tensor {

class Allocation {
 public:
  // ResourceError naming `what` when the backend is out of memory.
  Allocation(Ops& ops, DType dtype, int64_t numel, const std::string& what);
  ~Allocation();
  Allocation(const Allocation&) = delete;
  Allocation& operator=(const Allocation&) = delete;

  const Buf& buf() const { return buf_; }

 private:
  Ops& ops_;
  Buf buf_;
};

}  // namespace dsk::tensor
