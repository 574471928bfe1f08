// What every CUDA op family shares: error checks that become dsk errors (out of memory is a
// ResourceError, exit 4), the two element types, and float <-> element conversions.
//
// Element type T of activations and working weights is float (precision: fp32, parity tests) or
// __nv_bfloat16 (the default: bf16 storage, fp32 arithmetic inside every kernel). Parameter
// gradients, optimizer state, RMSNorm rstd and attention log-sum-exps are always float.
//
// Conventions, the same as kernels/cpu/kernels.hpp: row-major, N = B*T positions, and every
// backward ACCUMULATES (+=) into the gradients it produces. Every kernel is deterministic: no
// float atomics, so the same inputs give the same bits (resume on the GPU is bit-exact).
// Every launcher takes the stream last and checks the launch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace dsk::kernels::cuda {

using bf16 = __nv_bfloat16;

// Throws dsk::ResourceError (exit 4) naming the call, the error, the file and the line.
void check_cuda(cudaError_t status, const char* what, const char* file, int line);

#define DSK_CUDA_CHECK(call) ::dsk::kernels::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define DSK_CUDA_CHECK_LAUNCH() ::dsk::kernels::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

__host__ __device__ __forceinline__ float to_float(float x) { return x; }
__host__ __device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }

template <typename T>
__host__ __device__ __forceinline__ T from_float(float x);
template <>
__host__ __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__host__ __device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

// What the launchers ask of the current device, queried once per device: the queries cost
// microseconds, as much as the few-microsecond kernels of a decode step they would precede.
struct DeviceTraits {
  int device = 0;                  // the CUDA device these are of
  int major = 0;                   // compute capability: 9 has PDL, the copy engine's bulk copies, wgmma
  int multiprocessors = 0;
  int shared_per_block_optin = 0;  // bytes of shared memory a block may have once it asks
};
const DeviceTraits& device_traits();

// Programmatic dependent launch (sm_90): lets the stream's next kernel, when it was launched as a
// dependent (gemv_kernels.cuh), start its blocks now; they wait for this grid's end themselves
// before reading what it writes. The kernels that feed a few-row product call it first thing.
// Before sm_90 there is no PDL, and launch_dependent (gemv_kernels.cuh) launches plainly.
__device__ __forceinline__ void let_dependents_start() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;");
#endif
}

}  // namespace dsk::kernels::cuda
