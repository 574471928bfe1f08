// A Buf is a typed span of one backend's memory: host memory for the CPU backend, the GPU's for
// CUDA. It does not own what it points at; arenas (arena.hpp) and the backends do. The layer code
// passes Bufs to the op interface (ops.hpp) and never reads their elements itself.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dsk::tensor {

enum class DType : uint8_t { f32, bf16, i32, i64, u8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t);

struct Buf {
  void* data = nullptr;
  int64_t numel = 0;
  DType dtype = DType::f32;

  bool empty() const { return data == nullptr; }
  size_t bytes() const { return size_t(numel) * dtype_size(dtype); }
  // Elements [offset, offset + count); InternalError when out of range.
  Buf slice(int64_t offset, int64_t count) const;
  // The typed pointer; InternalError when E's size is not the dtype's (host code of the CPU
  // backend and tests read through these; device pointers are only passed on).
  template <typename E>
  E* as() const {
    check_element_size(sizeof(E));
    return static_cast<E*>(data);
  }

 private:
  void check_element_size(size_t size) const;
};

}  // namespace dsk::tensor
