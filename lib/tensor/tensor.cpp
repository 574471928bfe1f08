#include "tensor/tensor.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace dsk::tensor {

void Tensor::resize(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw InternalError(str("tensor: negative dimension in shape of rank ", shape.size()));
    n *= d;
  }
  shape_ = std::move(shape);
  numel_ = n;
  data_.resize(n);
  zero();
}

void Tensor::zero() { std::fill(data_.begin(), data_.end(), 0.0f); }

std::string Tensor::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape_.size(); i++) s += (i ? "," : "") + std::to_string(shape_[i]);
  return s + "]";
}

}  // namespace dsk::tensor
