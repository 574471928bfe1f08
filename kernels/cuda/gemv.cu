// Few-row linear layers (gemv.cuh): streamed through shared memory (gemv_stream.cuh) where the
// device and the alignment allow, else the register kernels of gemv_kernels.cuh; each with the
// split that measured fastest on the H200 (scripts/bench/gemv_bench.cu times the others). Both
// give the same bits.
#include "cuda/gemv.cuh"

#include "core/error.hpp"
#include "cuda/gemv_stream.cuh"

namespace dsk::kernels::cuda {

namespace {

// A column per warp, 4 loads in flight per lane, 8 warps a block. On the H200 (2026-12-01,
// llama-1b's 16-layer chain of products) it was the fastest split of a first run (1.02 ms, against
// 1.10 ms with 8 loads in flight and 1.3-3.2 ms with 2 or 4 columns a warp); in a second run 1,4,4
// and 1,2,8 came within 4% ahead (0.999 and 1.009 against 1.038 ms), which is about the spread
// between runs. Fewer registers a thread keep more warps resident, which matters more here than
// loads in flight per warp.
using Split = gemv::GemvSplit<1, 4, 8>;

// Two 48 KB stages a block, two blocks an SM: of 9 streaming splits on the H200 (2026-12-01, the
// same chain) the fastest, 0.868 ms against 0.985 for the best register split (N = 1; N = 4:
// 1.591 against 1.691). Bytes in flight per SM decided it: one block an SM with the same stages
// took 1.095 ms, two blocks of 2 x 24 KB 0.996, four 16 KB stages one block 2.06.
using Stream = gemv::StreamSplit<8, 2, 48 * 1024, 2>;

void check_rows(int N, const char* op) {
  if (N > kGemvMaxRows) throw InternalError(str(op, ": ", N, " rows, more than kGemvMaxRows"));
}

}  // namespace

template <typename T>
void gemv_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC, bool accumulate,
                  cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return;
  check_rows(N, "gemv_forward");
  if (!gemv::stream_gemv<T, Stream>(out, inp, weight, bias, N, C, OC, accumulate, stream))
    gemv::launch_gemv<T, Split>(out, inp, weight, bias, N, C, OC, accumulate, stream);
}

template <typename T>
void gemv_parts_forward(const GemvPart<T>* parts, int count, const T* inp, int N, int C, cudaStream_t stream) {
  if (N <= 0 || count <= 0) return;
  check_rows(N, "gemv_parts_forward");
  if (count > kGemvMaxParts) throw InternalError(str("gemv_parts_forward: ", count, " parts, more than kGemvMaxParts"));
  if (!gemv::stream_gemv_parts<T, Stream>(parts, count, inp, N, C, stream))
    gemv::launch_gemv_parts<T, Split>(parts, count, inp, N, C, stream);
}

template <typename T>
void gemv_swiglu_forward(T* out, const T* inp, const T* gate, const T* up, int N, int C, int I, cudaStream_t stream) {
  if (N <= 0 || I <= 0) return;
  check_rows(N, "gemv_swiglu_forward");
  if (!gemv::stream_gemv_swiglu<T, Stream>(out, inp, gate, up, N, C, I, stream))
    gemv::launch_gemv_swiglu<T, Split>(out, inp, gate, up, N, C, I, stream);
}

template <typename T>
bool rmsnorm_gemv_parts_forward(const GemvPart<T>* parts, int count, const T* inp, const T* norm_weight, float eps,
                                int N, int C, cudaStream_t stream) {
  if (N <= 0 || count <= 0) return true;
  check_rows(N, "rmsnorm_gemv_parts_forward");
  if (count > kGemvMaxParts) return false;
  return gemv::stream_gemv_parts<T, Stream>(parts, count, inp, N, C, stream, norm_weight, eps);
}

template <typename T>
bool rmsnorm_gemv_swiglu_forward(T* out, const T* inp, const T* norm_weight, float eps, const T* gate, const T* up,
                                 int N, int C, int I, cudaStream_t stream) {
  if (N <= 0 || I <= 0) return true;
  check_rows(N, "rmsnorm_gemv_swiglu_forward");
  return gemv::stream_gemv_swiglu<T, Stream>(out, inp, gate, up, N, C, I, stream, norm_weight, eps);
}

#define DSK_INSTANTIATE(T)                                                                                     \
  template void gemv_forward<T>(T*, const T*, const T*, const T*, int, int, int, bool, cudaStream_t);         \
  template void gemv_parts_forward<T>(const GemvPart<T>*, int, const T*, int, int, cudaStream_t);             \
  template void gemv_swiglu_forward<T>(T*, const T*, const T*, const T*, int, int, int, cudaStream_t);        \
  template bool rmsnorm_gemv_parts_forward<T>(const GemvPart<T>*, int, const T*, const T*, float, int, int,    \
                                              cudaStream_t);                                                   \
  template bool rmsnorm_gemv_swiglu_forward<T>(T*, const T*, const T*, float, const T*, const T*, int, int, int, \
                                               cudaStream_t);
DSK_INSTANTIATE(float)
DSK_INSTANTIATE(bf16)
#undef DSK_INSTANTIATE

}  // namespace dsk::kernels::cuda
