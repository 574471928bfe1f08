// kernels/cuda/wgmma.cuh's layouts, descriptors and product forms against products on the CPU:
// one warpgroup multiplies 64 x 64 bf16 tiles held in the 128-byte swizzle
// - A (K-major) times B^T (B K-major), both from shared memory;
// - A from registers times B (MN-major: the transpose bit), B from shared memory;
// - the first product's accumulator, rounded to bf16 as a register fragment, times B again (how
//   P and dS feed the next product in attention's backward).
// Tolerance: ||gpu - cpu|| / ||cpu|| <= 1e-5 (bf16 inputs exact on both sides, fp32 sums on the
// GPU against double sums on the CPU); 1e-4 for the chained product, whose bf16 rounding of the
// first result may differ by one unit where the two sums straddle a rounding boundary. Needs
// sm_90 (wgmma); other devices skip the test.
#include <cmath>

#include "cuda/wgmma.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cuda = dsk::kernels::cuda;
namespace wgmma = dsk::kernels::cuda::wgmma;

namespace {

constexpr int kSide = 64;                            // rows and columns of every tile
constexpr int kTileBytes = kSide * kSide * 2;        // 8 KB
constexpr int kSharedBytes = 2 * kTileBytes + 1024;  // two tiles, and room to align them to 1024

// Row-major [64, 64] bf16 in global memory -> a swizzled tile.
__device__ void load_tile(uint8_t* tile, const bf16* source) {
  for (int chunk = int(threadIdx.x); chunk < kSide * kSide / 8; chunk += int(blockDim.x)) {
    const int row = chunk / 8, column = chunk % 8 * 8;
    *reinterpret_cast<uint4*>(tile + wgmma::swizzled_offset(row, column)) =
        *reinterpret_cast<const uint4*>(source + row * kSide + column);
  }
}

__device__ void store_accumulator(float* out, const float (&d)[32]) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int row = 16 * warp + lane / 4, column = 2 * (lane % 4);
  for (int j = 0; j < 8; j++) {
    out[row * kSide + 8 * j + column] = d[4 * j];
    out[row * kSide + 8 * j + column + 1] = d[4 * j + 1];
    out[(row + 8) * kSide + 8 * j + column] = d[4 * j + 2];
    out[(row + 8) * kSide + 8 * j + column + 1] = d[4 * j + 3];
  }
}

// The register fragment of A's K columns 16k..16k+15, straight from global memory.
__device__ void fragment_from_global(uint32_t (&a)[4], const bf16* source, int k) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int row = 16 * warp + lane / 4, column = 16 * k + 2 * (lane % 4);
  auto pair = [&](int r, int c) { return *reinterpret_cast<const uint32_t*>(source + r * kSide + c); };
  a[0] = pair(row, column);
  a[1] = pair(row + 8, column);
  a[2] = pair(row, column + 8);
  a[3] = pair(row + 8, column + 8);
}

__global__ void products(float* a_bt, float* a_b, float* rounded_a_bt_b, const bf16* a, const bf16* b) {
  extern __shared__ uint8_t raw[];
  uint8_t* a_tile = raw + ((1024 - (cuda::ptx::shared_address(raw) & 1023)) & 1023);
  uint8_t* b_tile = a_tile + kTileBytes;
  load_tile(a_tile, a);
  load_tile(b_tile, b);
  wgmma::fence_shared_for_async();
  __syncthreads();

  float d[32] = {};
  wgmma::fence();
  for (int k = 0; k < kSide / 16; k++)
    wgmma::mma_ss(d, wgmma::descriptor(a_tile, wgmma::k_major_step(k)),
                  wgmma::descriptor(b_tile, wgmma::k_major_step(k)), k > 0);
  wgmma::commit();
  wgmma::wait<0>();
  wgmma::pin(d);
  store_accumulator(a_bt, d);

  uint32_t fragments[kSide / 16][4];
  for (int k = 0; k < kSide / 16; k++) wgmma::fragment_from_accumulator(fragments[k], d, k);

  uint32_t a_fragments[kSide / 16][4];
  for (int k = 0; k < kSide / 16; k++) fragment_from_global(a_fragments[k], a, k);
  float e[32] = {};
  wgmma::fence();
  for (int k = 0; k < kSide / 16; k++)
    wgmma::mma_rs<true>(e, a_fragments[k], wgmma::descriptor(b_tile, wgmma::mn_major_step(k)), k > 0);
  wgmma::commit();
  wgmma::wait<0>();
  wgmma::pin(e);
  store_accumulator(a_b, e);

  float f[32] = {};
  wgmma::fence();
  for (int k = 0; k < kSide / 16; k++)
    wgmma::mma_rs<true>(f, fragments[k], wgmma::descriptor(b_tile, wgmma::mn_major_step(k)), k > 0);
  wgmma::commit();
  wgmma::wait<0>();
  wgmma::pin(f);
  store_accumulator(rounded_a_bt_b, f);
}

// out [64, 64] = x [64, 64] @ (transpose_y ? y^T : y), double sums.
std::vector<float> product(const std::vector<float>& x, const std::vector<float>& y, bool transpose_y) {
  std::vector<float> out(size_t(kSide) * kSide);
  for (int i = 0; i < kSide; i++)
    for (int j = 0; j < kSide; j++) {
      double sum = 0;
      for (int k = 0; k < kSide; k++) sum += double(x[i * kSide + k]) * (transpose_y ? y[j * kSide + k] : y[k * kSide + j]);
      out[size_t(i) * kSide + j] = float(sum);
    }
  return out;
}

bool has_wgmma() {
  int device = 0, major = 0;
  DSK_CUDA_CHECK(cudaGetDevice(&device));
  DSK_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major == 9;
}

}  // namespace

TEST_CASE("wgmma: swizzled tiles, K-major and MN-major operands, register fragments") {
  if (!has_wgmma()) {
    MESSAGE("not an sm_90 device: wgmma test skipped");
    return;
  }
  const std::vector<float> a = rounded<bf16>(random_floats(size_t(kSide) * kSide, 11));
  const std::vector<float> b = rounded<bf16>(random_floats(size_t(kSide) * kSide, 12));
  DeviceBuffer<bf16> da(a.size()), db(b.size());
  upload(da, a);
  upload(db, b);
  DeviceBuffer<float> a_bt(a.size()), a_b(a.size()), chained(a.size());
  a_bt.poison();
  a_b.poison();
  chained.poison();
  DSK_CUDA_CHECK(cudaFuncSetAttribute(products, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes));
  products<<<1, 128, kSharedBytes>>>(a_bt.get(), a_b.get(), chained.get(), da.get(), db.get());
  DSK_CUDA_CHECK(cudaGetLastError());

  const std::vector<float> want_a_bt = product(a, b, true);
  check_close("A B^T (both K-major, shared memory)", download(a_bt), want_a_bt, 1e-5);
  check_close("A B (A in registers, B MN-major)", download(a_b), product(a, b, false), 1e-5);
  check_close("bf16(A B^T) B (accumulator as the A fragment)", download(chained),
              product(rounded<bf16>(want_a_bt), b, false), 1e-4);
}
