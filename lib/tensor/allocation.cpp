#include "tensor/allocation.hpp"

#include "core/error.hpp"

namespace dsk::tensor {

Allocation::Allocation(Ops& ops, DType dtype, int64_t numel, const std::string& what) : ops_(ops) {
  if (numel < 0) throw InternalError(str("allocation ", what, ": negative size"));
  buf_ = Buf{ops_.allocate(size_t(numel) * dtype_size(dtype), what), numel, dtype};
}

Allocation::~Allocation() { ops_.release(buf_.data); }

}  // namespace dsk::tensor
