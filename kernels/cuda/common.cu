#include "cuda/common.cuh"

#include <mutex>

#include "core/error.hpp"

namespace dsk::kernels::cuda {

void check_cuda(cudaError_t status, const char* what, const char* file, int line) {
  if (status == cudaSuccess) return;
  // Every CUDA failure is the GPU's (out of memory, a lost or busy device, a driver fault): exit 4.
  throw ResourceError(str("CUDA: ", what, " failed: ", cudaGetErrorString(status), " (", file, ":", line, ")"));
}

const DeviceTraits& device_traits() {
  constexpr int kDevices = 64;
  static DeviceTraits traits[kDevices];
  static std::once_flag asked[kDevices];
  int device = 0;
  DSK_CUDA_CHECK(cudaGetDevice(&device));
  if (device < 0 || device >= kDevices)
    throw InternalError(str("CUDA: device ", device, " is past the ", kDevices, " this build keeps traits of"));
  std::call_once(asked[device], [device] {
    DeviceTraits& t = traits[device];
    t.device = device;
    DSK_CUDA_CHECK(cudaDeviceGetAttribute(&t.major, cudaDevAttrComputeCapabilityMajor, device));
    DSK_CUDA_CHECK(cudaDeviceGetAttribute(&t.multiprocessors, cudaDevAttrMultiProcessorCount, device));
    DSK_CUDA_CHECK(cudaDeviceGetAttribute(&t.shared_per_block_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  });
  return traits[device];
}

}  // namespace dsk::kernels::cuda
