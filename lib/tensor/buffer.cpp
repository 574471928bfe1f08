#include "tensor/buffer.hpp"

#include "core/error.hpp"

namespace dsk::tensor {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
  }
  return "?";
}

Buf Buf::slice(int64_t offset, int64_t count) const {
  if (offset < 0 || count < 0 || offset + count > numel)
    throw InternalError(str("tensor: slice [", offset, ", ", offset + count, ") of a buffer of ", numel, " elements"));
  Buf out = *this;
  out.data = data ? static_cast<char*>(data) + size_t(offset) * dtype_size(dtype) : nullptr;
  out.numel = count;
  return out;
}

void Buf::check_element_size(size_t size) const {
  if (size != dtype_size(dtype))
    throw InternalError(str("tensor: a ", dtype_name(dtype), " buffer read as ", size, "-byte elements"));
}

}  // namespace dsk::tensor
