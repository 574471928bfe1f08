// Choosing the backend: `device: auto|cpu|cuda` and `precision: auto|bf16|fp32` as dsk-train's
// config spells them. auto picks CUDA when this build has it and a GPU is visible; the precision
// auto is bf16 on CUDA (fp32 master weights and accumulation) and fp32 on the CPU, which computes
// in fp32 only. fp32 on CUDA keeps everything fp32 with TF32 off (the parity tests).
#pragma once

#include <memory>
#include <string>

#include "tensor/ops.hpp"

namespace dsk::tensor {

// UsageError for an unknown name or bf16 on the CPU; ResourceError (exit 4) when cuda is asked
// for and this build has no CUDA or no GPU is visible.
std::shared_ptr<Ops> make_ops(const std::string& device, const std::string& precision);

// Whether this build has the CUDA backend and a GPU is visible.
bool cuda_available();

// Makes GPU `index` the one make_ops("cuda") uses in this process (one rank per GPU: the local
// rank). ResourceError when there is no such GPU; nothing in a build without CUDA.
void select_cuda_device(int index);

}  // namespace dsk::tensor
