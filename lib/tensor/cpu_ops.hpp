// The CPU backend of the op interface: kernels/cpu in fp32, on host memory. The reference every
// CUDA op is compared with.
#pragma once

#include <memory>

#include "tensor/ops.hpp"

namespace dsk::tensor {

std::unique_ptr<Ops> make_cpu_ops();

}  // namespace dsk::tensor
