// An arena is one allocation from a backend, carved into Bufs, so that memory is planned before
// the first step and nothing is allocated in the step loop. Planning runs the same carving code
// twice: once to count (take() hands out empty Bufs), then commit() allocates what was counted and
// the second run of the same take() calls gets real memory, 256-byte aligned.
//
//   auto carve = [&](Arena& a) { x = a.take(DType::bf16, N * C); rstd = a.take(DType::f32, N); };
//   carve(arena); arena.commit(); carve(arena);
#pragma once

#include <string>

#include "tensor/ops.hpp"

namespace dsk::tensor {

class Arena {
 public:
  Arena(Ops& ops, std::string name) : ops_(&ops), name_(std::move(name)) {}
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&& other) noexcept;
  Arena& operator=(Arena&& other) noexcept;

  Buf take(DType dtype, int64_t numel);
  // Allocates the bytes counted so far (ResourceError naming the arena and its size on out of
  // memory) and restarts the carving. Once per arena: a new plan is a new arena.
  void commit();
  size_t bytes() const { return committed_ ? capacity_ : cursor_; }

 private:
  Ops* ops_;
  std::string name_;
  void* base_ = nullptr;
  size_t capacity_ = 0, cursor_ = 0;
  bool committed_ = false;
};

}  // namespace dsk::tensor
