#include "cuda/common.cuh"

#include "core/error.hpp"

namespace dsk::kernels::cuda {

void check_cuda(cudaError_t status, const char* what, const char* file, int line) {
  if (status == cudaSuccess) return;
  const std::string message = str("CUDA: ", what, " failed: ", cudaGetErrorString(status), " (", file, ":", line, ")");
  if (status == cudaErrorMemoryAllocation) throw ResourceError(message);
  throw InternalError(message);
}

}  // namespace dsk::kernels::cuda
