// A Tensor is a shape and its fp32 storage on the host (the CPU backend). The model keeps its
// activations in Tensors and hands their data() to the kernels in kernels/cpu/kernels.hpp, whose
// functions are the op interface: a CUDA backend provides the same functions over device memory.
//
//   Tensor x({B, T, C});     // zero-filled
//   x.at(b * T + t)          // pointer to row (b, t) of the leading dims flattened
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace dsk::tensor {

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::vector<int64_t> shape) { resize(std::move(shape)); }

  // Reshapes and zero-fills, reusing the storage when it is large enough.
  void resize(std::vector<int64_t> shape);
  void zero();

  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const { return numel_; }
  int64_t row_size() const { return shape_.empty() ? 1 : shape_.back(); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float* at(int64_t row) { return data_.data() + row * row_size(); }
  std::string shape_string() const;  // "[2,8,64]"

 private:
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  std::vector<float> data_;
};

}  // namespace dsk::tensor
