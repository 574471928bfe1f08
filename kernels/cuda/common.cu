#include "cuda/common.cuh"

#include "core/error.hpp"

namespace dsk::kernels::cuda {

void check_cuda(cudaError_t status, const char* what, const char* file, int line) {
  if (status == cudaSuccess) return;
  // Every CUDA failure is the GPU's (out of memory, a lost or busy device, a driver fault): exit 4.
  throw ResourceError(str("CUDA: ", what, " failed: ", cudaGetErrorString(status), " (", file, ":", line, ")"));
}

}  // namespace dsk::kernels::cuda
