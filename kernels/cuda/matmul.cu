// Linear layers on cuBLASLt (matmul.cuh). Row-major X[N,C] is column-major X^T with ld = C, so
// every product below is written in cuBLAS's column-major terms:
//   forward          out^T [OC,N]  = W^T' [OC,C] @ inp^T [C,N]      (A = W stored [C,OC]cm, op T)
//   backward input   dinp^T [C,N] += W [C,OC]cm @ dout^T [OC,N]     (op N, op N)
//   backward weight  dW^T [C,OC]  += inp^T [C,N] @ dout [N,OC]      (op N, op T), fp32 output
// Descriptors and the heuristic's algorithm are made once per shape and kept (the step loop
// repeats the same shapes), so a call costs one cublasLtMatmul.
#include "cuda/matmul.cuh"

#include <map>
#include <mutex>
#include <tuple>

#include "core/error.hpp"
#include "cuda/gemv.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLASLt's recommendation for Hopper

void check_blas(cublasStatus_t status, const char* what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const std::string message = str("cuBLASLt: ", what, " failed: ", cublasLtGetStatusString(status));
  if (status == CUBLAS_STATUS_ALLOC_FAILED) throw ResourceError(message);
  throw InternalError(message);
}

template <typename T>
cudaDataType_t data_type() {
  return sizeof(T) == 4 ? CUDA_R_32F : CUDA_R_16BF;
}

// One column-major product D = alpha op(A) op(B) + beta C with D = C, as cuBLASLt describes it.
struct ProductKey {
  int m, n, k;
  bool transa, transb;
  cudaDataType_t ab_type, d_type;
  bool bias;
  int align_a, align_b, align_d;  // bytes: the pointers' alignment (views into flat buffers vary)
  auto tie() const { return std::tie(m, n, k, transa, transb, ab_type, d_type, bias, align_a, align_b, align_d); }
  bool operator<(const ProductKey& other) const { return tie() < other.tie(); }
};

struct Product {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

class ProductCache {
 public:
  ~ProductCache() {
    for (auto& [key, p] : products_) {
      cublasLtMatrixLayoutDestroy(p.a);
      cublasLtMatrixLayoutDestroy(p.b);
      cublasLtMatrixLayoutDestroy(p.d);
      cublasLtMatmulDescDestroy(p.desc);
    }
  }
  const Product& get(const Blas& blas, const ProductKey& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = products_.find(key);
    if (found != products_.end()) return found->second;
    return products_.emplace(key, make(blas, key)).first->second;
  }

 private:
  static Product make(const Blas& blas, const ProductKey& key) {
    Product p;
    // Strict fp32 for float inputs (no TF32), fp32 accumulation for bf16.
    check_blas(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul descriptor");
    cublasOperation_t ta = key.transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = key.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    check_blas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "transa");
    check_blas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "transb");
    if (key.bias) {
      cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      check_blas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)),
                 "bias epilogue");
      cudaDataType_t bias_type = key.d_type;
      check_blas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                sizeof(bias_type)),
                 "bias type");
    }
    // Stored shapes: op(A) is m x k, op(B) is k x n, D is m x n, all column-major.
    int a_rows = key.transa ? key.k : key.m, a_cols = key.transa ? key.m : key.k;
    int b_rows = key.transb ? key.n : key.k, b_cols = key.transb ? key.k : key.n;
    check_blas(cublasLtMatrixLayoutCreate(&p.a, key.ab_type, a_rows, a_cols, a_rows), "layout A");
    check_blas(cublasLtMatrixLayoutCreate(&p.b, key.ab_type, b_rows, b_cols, b_rows), "layout B");
    check_blas(cublasLtMatrixLayoutCreate(&p.d, key.d_type, key.m, key.n, key.m), "layout D");

    cublasLtMatmulPreference_t preference = nullptr;
    check_blas(cublasLtMatmulPreferenceCreate(&preference), "preference");
    size_t workspace = blas.workspace_bytes();
    check_blas(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                    sizeof(workspace)),
               "workspace preference");
    const cublasLtMatmulPreferenceAttributes_t alignments[] = {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                               CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                               CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                               CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    const uint32_t aligned[] = {uint32_t(key.align_a), uint32_t(key.align_b), uint32_t(key.align_d),
                                uint32_t(key.align_d)};
    for (int i = 0; i < 4; i++)
      check_blas(cublasLtMatmulPreferenceSetAttribute(preference, alignments[i], &aligned[i], sizeof(aligned[i])),
                 "alignment preference");
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t status =
        cublasLtMatmulAlgoGetHeuristic(blas.handle(), p.desc, p.a, p.b, p.d, p.d, preference, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(preference);
    check_blas(status, "algorithm heuristic");
    if (found == 0)
      throw InternalError(str("cuBLASLt: no algorithm for a ", key.m, " x ", key.n, " x ", key.k, " product"));
    p.algo = result.algo;
    return p;
  }

  std::mutex mutex_;
  std::map<ProductKey, Product> products_;
};

ProductCache& product_cache() {
  static ProductCache cache;
  return cache;
}

// The largest power of two up to 256 that divides the address.
int alignment_of(const void* pointer) {
  uintptr_t address = reinterpret_cast<uintptr_t>(pointer);
  int align = 256;
  while (align > 1 && address % align != 0) align /= 2;
  return align;
}

void run_product(const Blas& blas, ProductKey key, const void* a, const void* b, void* d, float beta,
                 const void* bias, cudaStream_t stream) {
  key.align_a = alignment_of(a);
  key.align_b = alignment_of(b);
  key.align_d = alignment_of(d);
  const Product& p = product_cache().get(blas, key);
  if (bias)
    check_blas(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
               "bias pointer");
  const float alpha = 1.0f;
  check_blas(cublasLtMatmul(blas.handle(), p.desc, &alpha, a, p.a, b, p.b, &beta, d, p.d, d, p.d, &p.algo,
                            blas.workspace(), blas.workspace_bytes(), stream),
             "matmul");
}

// Column sums of dout [N, OC] in two deterministic passes: partial[slice][col] over row slices,
// then dbias[col] += the slices in order.
constexpr int kBiasColumns = 32, kBiasRowThreads = 8, kBiasSlices = 64;

template <typename T>
__global__ void bias_partial_sums(float* partial, const T* dout, int N, int OC) {
  __shared__ float sums[kBiasRowThreads][kBiasColumns];
  int col = blockIdx.x * kBiasColumns + threadIdx.x;
  int rows_per_slice = (N + gridDim.y - 1) / gridDim.y;
  int begin = blockIdx.y * rows_per_slice, end = min(N, begin + rows_per_slice);
  float sum = 0;
  if (col < OC)
    for (int row = begin + threadIdx.y; row < end; row += kBiasRowThreads) sum += to_float(dout[(int64_t)row * OC + col]);
  sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < OC) {
    float total = 0;
    for (int i = 0; i < kBiasRowThreads; i++) total += sums[i][threadIdx.x];
    partial[(int64_t)blockIdx.y * OC + col] = total;
  }
}

__global__ void bias_finish(float* dbias, const float* partial, int OC, int slices) {
  int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= OC) return;
  float total = 0;
  for (int s = 0; s < slices; s++) total += partial[(int64_t)s * OC + col];
  dbias[col] += total;
}

}  // namespace

Blas::Blas() : workspace_bytes_(kWorkspaceBytes) {
  check_blas(cublasLtCreate(&handle_), "handle");
  DSK_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

Blas::~Blas() {
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

template <typename T>
void matmul_forward(const Blas& blas, T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC,
                    bool accumulate, cudaStream_t stream) {
  if (N <= kGemvMaxRows) {  // a decode step: the weight read is all the work (gemv.cuh)
    gemv_forward<T>(out, inp, weight, bias, N, C, OC, accumulate, stream);
    return;
  }
  ProductKey key{OC, N, C, true, false, data_type<T>(), data_type<T>(), bias != nullptr, 0, 0, 0};
  run_product(blas, key, weight, inp, out, accumulate ? 1.0f : 0.0f, bias, stream);
}

template <typename T>
void matmul_backward_input(const Blas& blas, T* dinp, const T* dout, const T* weight, int N, int C, int OC,
                           cudaStream_t stream) {
  ProductKey key{C, N, OC, false, false, data_type<T>(), data_type<T>(), false, 0, 0, 0};
  run_product(blas, key, weight, dout, dinp, 1.0f, nullptr, stream);
}

size_t matmul_bias_scratch_floats(int /*N*/, int OC) { return size_t(kBiasSlices) * OC; }

template <typename T>
void matmul_backward_weight(const Blas& blas, float* dweight, float* dbias, const T* dout, const T* inp, int N, int C,
                            int OC, float* scratch, cudaStream_t stream) {
  if (dweight) {
    ProductKey key{C, OC, N, false, true, data_type<T>(), CUDA_R_32F, false, 0, 0, 0};
    run_product(blas, key, inp, dout, dweight, 1.0f, nullptr, stream);
  }
  if (dbias) {
    dim3 grid(blocks_for(OC, kBiasColumns), kBiasSlices), block(kBiasColumns, kBiasRowThreads);
    bias_partial_sums<<<grid, block, 0, stream>>>(scratch, dout, N, OC);
    DSK_CUDA_CHECK_LAUNCH();
    bias_finish<<<blocks_for(OC, 256), 256, 0, stream>>>(dbias, scratch, OC, kBiasSlices);
    DSK_CUDA_CHECK_LAUNCH();
  }
}

#define DSK_INSTANTIATE_MATMUL(T)                                                                                \
  template void matmul_forward<T>(const Blas&, T*, const T*, const T*, const T*, int, int, int, bool, cudaStream_t); \
  template void matmul_backward_input<T>(const Blas&, T*, const T*, const T*, int, int, int, cudaStream_t);         \
  template void matmul_backward_weight<T>(const Blas&, float*, float*, const T*, const T*, int, int, int, float*,   \
                                          cudaStream_t);
DSK_INSTANTIATE_MATMUL(float)
DSK_INSTANTIATE_MATMUL(bf16)

}  // namespace dsk::kernels::cuda
