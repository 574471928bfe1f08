#include "tensor/device.hpp"

#include "core/error.hpp"
#include "tensor/cpu_ops.hpp"

namespace dsk::tensor {

#ifdef DSK_TENSOR_CUDA
// cuda/cuda_ops.cpp
bool cuda_device_visible();
std::unique_ptr<Ops> make_cuda_ops(bool bf16);
void select_cuda_device_index(int index);
#endif

void select_cuda_device(int index) {
#ifdef DSK_TENSOR_CUDA
  select_cuda_device_index(index);
#else
  (void)index;
#endif
}

bool cuda_available() {
#ifdef DSK_TENSOR_CUDA
  return cuda_device_visible();
#else
  return false;
#endif
}

std::shared_ptr<Ops> make_ops(const std::string& device, const std::string& precision) {
  if (device != "auto" && device != "cpu" && device != "cuda")
    throw UsageError(str("device \"", device, "\" is not one of auto, cpu, cuda"));
  if (precision != "auto" && precision != "bf16" && precision != "fp32")
    throw UsageError(str("precision \"", precision, "\" is not one of auto, bf16, fp32"));
  const bool cuda = device == "cuda" || (device == "auto" && cuda_available());
  if (!cuda) {
    if (precision == "bf16")
      throw UsageError("precision bf16 needs device cuda: the CPU backend computes in fp32 only");
    return make_cpu_ops();
  }
#ifdef DSK_TENSOR_CUDA
  if (!cuda_device_visible())
    throw ResourceError("device cuda: no GPU is visible (check nvidia-smi and CUDA_VISIBLE_DEVICES), or use device cpu");
  return make_cuda_ops(precision != "fp32");
#else
  throw ResourceError("device cuda: this dsk was built without CUDA (rebuild where nvcc is installed), or use device cpu");
#endif
}

}  // namespace dsk::tensor
