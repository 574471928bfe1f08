#include "tensor/arena.hpp"

#include <utility>

#include "core/error.hpp"

namespace dsk::tensor {

namespace {
constexpr size_t kAlignment = 256;  // cuBLASLt's preferred alignment; a cache line on the CPU
size_t align_up(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

Arena::~Arena() {
  if (base_) ops_->release(base_);
}

Arena::Arena(Arena&& other) noexcept
    : ops_(other.ops_), name_(std::move(other.name_)), base_(std::exchange(other.base_, nullptr)),
      capacity_(other.capacity_), cursor_(other.cursor_), committed_(other.committed_) {}

Arena& Arena::operator=(Arena&& other) noexcept {
  if (this != &other) {
    if (base_) ops_->release(base_);
    ops_ = other.ops_;
    name_ = std::move(other.name_);
    base_ = std::exchange(other.base_, nullptr);
    capacity_ = other.capacity_;
    cursor_ = other.cursor_;
    committed_ = other.committed_;
  }
  return *this;
}

Buf Arena::take(DType dtype, int64_t numel) {
  if (numel < 0) throw InternalError(str("arena ", name_, ": negative size"));
  Buf b;
  b.dtype = dtype;
  b.numel = numel;
  const size_t bytes = align_up(size_t(numel) * dtype_size(dtype));
  if (committed_) {
    if (cursor_ + bytes > capacity_)
      throw InternalError(str("arena ", name_, ": carved past its planned ", capacity_, " bytes"));
    b.data = static_cast<char*>(base_) + cursor_;
  }
  cursor_ += bytes;
  return b;
}

void Arena::commit() {
  if (committed_) throw InternalError(str("arena ", name_, ": committed twice (plan a new arena instead)"));
  capacity_ = cursor_;
  if (capacity_ > 0) base_ = ops_->allocate(capacity_, name_);
  committed_ = true;
  cursor_ = 0;
}

}  // namespace dsk::tensor
