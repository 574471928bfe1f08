// The routed experts' projections as grouped GEMMs (moe.cuh): one launch covers all experts. The
// permuted rows are grouped by expert (offsets [E+1] from moe_permute, on the device), so every
// block first works out which expert and which tile of it it owns; no host round trip.
//
// The three products, each one GEMM C [M,N] (+)= A [M,K] B [K,N] per expert e, rows r_e of it:
//   forward          out_e  [r_e,OC] =  inp_e [r_e,C]  @ W_e^T [C,OC]     M = r_e, N = OC, K = C
//   backward_input   dinp_e [r_e,C]  += dout_e [r_e,OC] @ W_e [OC,C]      M = r_e, N = C,  K = OC
//   backward_weight  dW_e   [OC,C]   += dout_e^T [OC,r_e] @ inp_e [r_e,C]  M = OC,  N = C,  K = r_e
// forward and backward_input tile the row blocks of every expert (ceil(r_e / BM) each, in expert
// order) times the column blocks; backward_weight gives each tile of each dW_e to one block that
// runs over the expert's rows in order, so the sums are deterministic without atomics.
//
// Two engines on the same tiling: bf16 on the tensor cores (mma.sync m16n8k16 with fp32
// accumulators; tiles staged through shared memory by a multi-stage cp.async pipeline and read
// with ldmatrix, .trans for operands stored along M or N), and plain fp32 SIMT (strict fp32 for
// T = float; bf16 whose shapes or alignment do not allow 16-byte copies also goes there).
#include <type_traits>

#include "cuda/mma.cuh"
#include "cuda/moe.cuh"

namespace dsk::kernels::cuda {

namespace {

constexpr unsigned kFullMask = 0xffffffffu;

enum class Product { forward, backward_input, backward_weight };

// An operand is "K-contiguous" when consecutive elements along the reduction are adjacent in memory.
__host__ __device__ constexpr bool a_k_contiguous(Product p) { return p != Product::backward_weight; }
__host__ __device__ constexpr bool b_k_contiguous(Product p) { return p == Product::forward; }

// Everything a grouped product needs; each product reads the inputs it names and writes one output.
template <typename T>
struct Grouped {
  const int32_t* offsets;  // [E+1], device
  int E, rows, C, OC;
  int64_t expert_stride;  // elements between W_e and W_{e+1} (and dW_e, dW_{e+1})
  const T* inp;           // [rows, C]
  const T* dout;          // [rows, OC]
  const T* weight;        // W_0 [OC, C]
  T* out;                 // forward: [rows, OC]
  T* dinp;                // backward_input: [rows, C]
  float* dweight;         // backward_weight: dW_0 [OC, C]
};

// Output columns: OC for forward, C for the others (backward_weight's rows are OC).
template <Product P, typename T>
__host__ __device__ int n_extent(const Grouped<T>& g) {
  return P == Product::forward ? g.OC : g.C;
}

// One block's work: the tile [m0, m0 + BM) x [n0, n0 + BN) of expert `expert`, whose permuted rows
// are row_begin .. row_begin + rows. expert < 0: nothing to do.
struct Tile {
  int expert, row_begin, rows, m0, n0;
};

// The tile of row block `row_block` when expert e's rows form ceil(r_e / block_rows) consecutive
// row blocks, experts in order. Every warp computes it alone (no barrier, no shared memory).
__device__ Tile find_row_block(const int32_t* offsets, int E, int block_rows, int row_block) {
  const int lane = threadIdx.x % 32;
  int blocks_before = 0;
  for (int first = 0; first < E; first += 32) {
    const int e = first + lane;
    const int begin = e < E ? offsets[e] : 0;
    const int count = e < E ? offsets[e + 1] - begin : 0;
    const int blocks = count > 0 ? (count + block_rows - 1) / block_rows : 0;
    int inclusive = blocks;
    for (int d = 1; d < 32; d *= 2) {
      const int up = __shfl_up_sync(kFullMask, inclusive, d);
      if (lane >= d) inclusive += up;
    }
    const int start = blocks_before + inclusive - blocks;
    const unsigned owner = __ballot_sync(kFullMask, row_block >= start && row_block < start + blocks);
    if (owner != 0) {  // warp-uniform
      const int source = __ffs(owner) - 1;
      Tile tile;
      tile.expert = first + source;
      tile.row_begin = __shfl_sync(kFullMask, begin, source);
      tile.rows = __shfl_sync(kFullMask, count, source);
      tile.m0 = (row_block - __shfl_sync(kFullMask, start, source)) * block_rows;
      tile.n0 = 0;
      return tile;
    }
    blocks_before += __shfl_sync(kFullMask, inclusive, 31);
  }
  return Tile{-1, 0, 0, 0, 0};
}

template <Product P, typename T>
__device__ Tile find_tile(const Grouped<T>& g, int block_m, int block_n) {
  const int tiles_n = (n_extent<P>(g) + block_n - 1) / block_n;
  const int block = blockIdx.x;
  if constexpr (P == Product::backward_weight) {
    const int tiles_m = (g.OC + block_m - 1) / block_m;
    const int expert = block / (tiles_m * tiles_n), within = block % (tiles_m * tiles_n);
    const int row_begin = g.offsets[expert], rows = g.offsets[expert + 1] - row_begin;
    if (rows <= 0) return Tile{-1, 0, 0, 0, 0};
    return Tile{expert, row_begin, rows, (within / tiles_n) * block_m, (within % tiles_n) * block_n};
  } else {
    Tile tile = find_row_block(g.offsets, g.E, block_m, block / tiles_n);
    tile.n0 = (block % tiles_n) * block_n;
    return tile;
  }
}

// An operand seen from the tile's corner: element (i, k), i along M (A) or N (B), k along the
// reduction, is origin[i * ld + k] when K-contiguous, else origin[k * ld + i]; i < extent.
template <typename T>
struct Operand {
  const T* origin;
  int64_t ld;
  int extent;
};

template <Product P, typename T>
__device__ Operand<T> operand_a(const Grouped<T>& g, const Tile& t) {
  if constexpr (P == Product::forward)
    return {g.inp + (int64_t)(t.row_begin + t.m0) * g.C, g.C, t.rows - t.m0};
  else if constexpr (P == Product::backward_input)
    return {g.dout + (int64_t)(t.row_begin + t.m0) * g.OC, g.OC, t.rows - t.m0};
  else  // dout_e^T: element (o, i) at dout[(row_begin + i) * OC + o]
    return {g.dout + (int64_t)t.row_begin * g.OC + t.m0, g.OC, g.OC - t.m0};
}

template <Product P, typename T>
__device__ Operand<T> operand_b(const Grouped<T>& g, const Tile& t) {
  const T* w = g.weight + t.expert * g.expert_stride;
  if constexpr (P == Product::forward)  // W_e^T: element (o, c) at W_e[o * C + c]
    return {w + (int64_t)t.n0 * g.C, g.C, g.OC - t.n0};
  else if constexpr (P == Product::backward_input)  // W_e: element (c, o) at W_e[o * C + c]
    return {w + t.n0, g.C, g.C - t.n0};
  else  // inp_e: element (c, i) at inp[(row_begin + i) * C + c]
    return {g.inp + (int64_t)t.row_begin * g.C + t.n0, g.C, g.C - t.n0};
}

template <Product P, typename T>
__device__ int reduction_depth(const Grouped<T>& g, const Tile& t) {
  if constexpr (P == Product::forward) return g.C;
  else if constexpr (P == Product::backward_input) return g.OC;
  else return t.rows;
}

// Where element (m, n) of the tile goes; forward writes, the backward products accumulate.
template <Product P, typename T>
__device__ auto output_at(const Grouped<T>& g, const Tile& t, int m, int n) {
  if constexpr (P == Product::forward)
    return g.out + (int64_t)(t.row_begin + t.m0 + m) * g.OC + t.n0 + n;
  else if constexpr (P == Product::backward_input)
    return g.dinp + (int64_t)(t.row_begin + t.m0 + m) * g.C + t.n0 + n;
  else
    return g.dweight + t.expert * g.expert_stride + (int64_t)(t.m0 + m) * g.C + t.n0 + n;
}

__host__ __device__ constexpr bool accumulates(Product p) { return p != Product::forward; }

template <typename Out>
__device__ __forceinline__ void store_value(Out* p, float v, bool accumulate) {
  *p = from_float<Out>(accumulate ? to_float(*p) + v : v);
}

// ======== plain SIMT engine: 64 x 64 tiles, 256 threads of 4 x 4 outputs, fp32 fmaf

constexpr int kSimtBM = 64, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256;
constexpr int kSimtPitch = 64 + 4;  // floats per k row in smem; the pad spreads K-contiguous stores over banks

// tile[k][i] = element (i, k0 + k) of the operand as fp32, 0 outside it.
template <bool kContiguousK, typename T>
__device__ void load_simt_tile(float (*tile)[kSimtPitch], const Operand<T>& op, int k0, int depth) {
  for (int idx = threadIdx.x; idx < kSimtBK * 64; idx += kSimtThreads) {
    const int i = kContiguousK ? idx / kSimtBK : idx % 64;  // consecutive threads along memory
    const int k = kContiguousK ? idx % kSimtBK : idx / 64;
    float v = 0.0f;
    if (i < op.extent && k0 + k < depth)
      v = to_float(kContiguousK ? op.origin[i * op.ld + k0 + k] : op.origin[(int64_t)(k0 + k) * op.ld + i]);
    tile[k][i] = v;
  }
}

template <Product P, typename T>
__global__ void __launch_bounds__(kSimtThreads) grouped_simt(Grouped<T> g) {
  const Tile tile = find_tile<P>(g, kSimtBM, kSimtBN);
  if (tile.expert < 0) return;
  const Operand<T> a = operand_a<P>(g, tile), b = operand_b<P>(g, tile);
  const int depth = reduction_depth<P>(g, tile);
  __shared__ __align__(16) float a_tile[kSimtBK][kSimtPitch];
  __shared__ __align__(16) float b_tile[kSimtBK][kSimtPitch];
  const int tm = (threadIdx.x / 16) * 4, tn = (threadIdx.x % 16) * 4;  // this thread's 4 x 4 outputs
  float acc[4][4] = {};
  for (int k0 = 0; k0 < depth; k0 += kSimtBK) {
    load_simt_tile<a_k_contiguous(P)>(a_tile, a, k0, depth);
    load_simt_tile<b_k_contiguous(P)>(b_tile, b, k0, depth);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kSimtBK; k++) {
      const float4 av = *reinterpret_cast<const float4*>(&a_tile[k][tm]);
      const float4 bv = *reinterpret_cast<const float4*>(&b_tile[k][tn]);
      const float as[4] = {av.x, av.y, av.z, av.w}, bs[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int r = 0; r < 4; r++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[r][c] = fmaf(as[r], bs[c], acc[r][c]);
    }
    __syncthreads();
  }
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++)
      if (tm + r < a.extent && tn + c < b.extent)
        store_value(output_at<P>(g, tile, tm + r, tn + c), acc[r][c], accumulates(P));
}

// ======== tensor-core engine (bf16): 128 x 128 tiles, 8 warps of 64 x 32, k-steps of 32

constexpr int kMmaBM = 128, kMmaBN = 128, kMmaBK = 32, kMmaStages = 4, kMmaThreads = 256;

// Shared-memory layout of one operand's stage: [extent][BK] when K-contiguous, else [BK][extent];
// rows padded by 8 elements (16 bytes) so the 8 row addresses of an ldmatrix hit distinct banks.
template <bool kContiguousK>
struct StageLayout {
  static constexpr int pitch = kContiguousK ? kMmaBK + 8 : kMmaBM + 8;
  static constexpr int elements = kContiguousK ? kMmaBM * pitch : kMmaBK * pitch;
};
static_assert(kMmaBM == kMmaBN, "StageLayout serves A and B alike");

template <Product P>
constexpr size_t mma_smem_bytes() {
  return (size_t)kMmaStages *
         (StageLayout<a_k_contiguous(P)>::elements + StageLayout<b_k_contiguous(P)>::elements) * sizeof(bf16);
}

using ptx::cp_async_16;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::mma_bf16;

// Copies k-step [k0, k0 + BK) of an operand's 128 rows (i) into a stage, zeros outside; 16-byte
// pieces of 8 elements, which are wholly in or out since extents and depths along contiguous
// dimensions are multiples of 8 on this path.
template <bool kContiguousK>
__device__ void load_mma_stage(bf16* stage, const Operand<bf16>& op, int k0, int depth) {
  constexpr int pitch = StageLayout<kContiguousK>::pitch;
  constexpr int pieces_per_row = kContiguousK ? kMmaBK / 8 : kMmaBM / 8;
  constexpr int rows = kContiguousK ? kMmaBM : kMmaBK;
#pragma unroll
  for (int piece = threadIdx.x; piece < rows * pieces_per_row; piece += kMmaThreads) {
    const int row = piece / pieces_per_row, column = (piece % pieces_per_row) * 8;
    const int i = kContiguousK ? row : column, k = kContiguousK ? column : row;
    const bool valid = i < op.extent && k0 + k < depth;
    const bf16* source = kContiguousK ? op.origin + i * op.ld + k0 + k : op.origin + (int64_t)(k0 + k) * op.ld + i;
    cp_async_16(stage + row * pitch + column, valid ? source : op.origin, valid);
  }
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* p) {
  ptx::ldmatrix_x4(r, ptx::shared_address(p));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* p) {
  ptx::ldmatrix_x4_transposed(r, ptx::shared_address(p));
}

// The A fragment of mma.m16n8k16 (.row) for rows m..m+15, k..k+15: a[0..3] hold the 8x8 blocks
// (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15); lanes 8j..8j+7
// address the rows of block j. Stored [k][m], the blocks are read transposed.
template <bool kContiguousK>
__device__ __forceinline__ void load_a_fragment(uint32_t (&a)[4], const bf16* stage, int m, int k, int lane) {
  constexpr int pitch = StageLayout<kContiguousK>::pitch;
  const int block = lane / 8, row = lane % 8;
  if constexpr (kContiguousK)
    ldmatrix_x4(a, stage + (m + (block % 2) * 8 + row) * pitch + k + (block / 2) * 8);
  else
    ldmatrix_x4_trans(a, stage + (k + (block / 2) * 8 + row) * pitch + m + (block % 2) * 8);
}

// The B fragments (.col) of columns n..n+15, k..k+15: b[0], b[1] = k 0-7, 8-15 of columns n..n+7;
// b[2], b[3] the same of columns n+8..n+15. Stored [k][n], the blocks are read transposed.
template <bool kContiguousK>
__device__ __forceinline__ void load_b_fragments(uint32_t (&b)[4], const bf16* stage, int n, int k, int lane) {
  constexpr int pitch = StageLayout<kContiguousK>::pitch;
  const int block = lane / 8, row = lane % 8;
  if constexpr (kContiguousK)
    ldmatrix_x4(b, stage + (n + (block / 2) * 8 + row) * pitch + k + (block % 2) * 8);
  else
    ldmatrix_x4_trans(b, stage + (k + (block % 2) * 8 + row) * pitch + n + (block / 2) * 8);
}

// A warp's 64 x 32 corner of the tile: 4 x 4 mma tiles of 16 x 8, fp32.
using WarpAccumulators = float[4][4][4];

template <Product P>
__device__ __forceinline__ void mma_stage(WarpAccumulators& acc, const bf16* a_stage, const bf16* b_stage,
                                          int warp_m, int warp_n, int lane) {
#pragma unroll
  for (int k = 0; k < kMmaBK; k += 16) {
    uint32_t a[4][4], b[2][4];
#pragma unroll
    for (int mi = 0; mi < 4; mi++) load_a_fragment<a_k_contiguous(P)>(a[mi], a_stage, warp_m + mi * 16, k, lane);
#pragma unroll
    for (int nj = 0; nj < 2; nj++) load_b_fragments<b_k_contiguous(P)>(b[nj], b_stage, warp_n + nj * 16, k, lane);
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
      for (int ni = 0; ni < 4; ni++) mma_bf16(acc[mi][ni], a[mi], b[ni / 2][(ni % 2) * 2], b[ni / 2][(ni % 2) * 2 + 1]);
  }
}

__device__ __forceinline__ void store_pair(bf16* p, float v0, float v1, bool accumulate) {
  __nv_bfloat162* pair = reinterpret_cast<__nv_bfloat162*>(p);
  if (accumulate) {
    const float2 old = __bfloat1622float2(*pair);
    v0 += old.x;
    v1 += old.y;
  }
  *pair = __floats2bfloat162_rn(v0, v1);
}
__device__ __forceinline__ void store_pair(float* p, float v0, float v1, bool accumulate) {
  store_value(p, v0, accumulate);
  store_value(p + 1, v1, accumulate);
}

template <Product P>
__global__ void __launch_bounds__(kMmaThreads, 2) grouped_mma(Grouped<bf16> g) {
  const Tile tile = find_tile<P>(g, kMmaBM, kMmaBN);
  if (tile.expert < 0) return;
  const Operand<bf16> a = operand_a<P>(g, tile), b = operand_b<P>(g, tile);
  const int depth = reduction_depth<P>(g, tile);
  constexpr int a_elements = StageLayout<a_k_contiguous(P)>::elements;
  constexpr int b_elements = StageLayout<b_k_contiguous(P)>::elements;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* a_stages = reinterpret_cast<bf16*>(smem);
  bf16* b_stages = a_stages + kMmaStages * a_elements;

  const int steps = (depth + kMmaBK - 1) / kMmaBK;
  auto load_step = [&](int step) {
    const int stage = step % kMmaStages;
    load_mma_stage<a_k_contiguous(P)>(a_stages + stage * a_elements, a, step * kMmaBK, depth);
    load_mma_stage<b_k_contiguous(P)>(b_stages + stage * b_elements, b, step * kMmaBK, depth);
  };
  // One commit group per k-step (empty past the end), so "all but the newest kStages-2 groups
  // done" always means "this step's stage has landed".
#pragma unroll
  for (int step = 0; step < kMmaStages - 1; step++) {
    if (step < steps) load_step(step);
    cp_async_commit();
  }

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warp_m = (warp / 4) * 64, warp_n = (warp % 4) * 32;
  WarpAccumulators acc = {};
  for (int step = 0; step < steps; step++) {
    cp_async_wait<kMmaStages - 2>();
    __syncthreads();  // the stage is visible to all, and the stage refilled below is no longer read
    if (step + kMmaStages - 1 < steps) load_step(step + kMmaStages - 1);
    cp_async_commit();
    const int stage = step % kMmaStages;
    mma_stage<P>(acc, a_stages + stage * a_elements, b_stages + stage * b_elements, warp_m, warp_n, lane);
  }
  cp_async_wait<0>();

  // Accumulator d[h * 2 + j] of mma tile (mi, ni) is row lane/4 + 8h, column (lane%4)*2 + j.
#pragma unroll
  for (int mi = 0; mi < 4; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int m = warp_m + mi * 16 + lane / 4 + h * 8, n = warp_n + ni * 8 + (lane % 4) * 2;
        if (m < a.extent && n < b.extent)
          store_pair(output_at<P>(g, tile, m, n), acc[mi][ni][h * 2], acc[mi][ni][h * 2 + 1], accumulates(P));
      }
}

// ======== launch

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The tensor-core path copies 16-byte pieces of 8 elements along C and OC.
template <typename T>
bool tensor_core_shapes(const Grouped<T>& g) {
  if constexpr (!std::is_same_v<T, bf16>) {
    return false;
  } else {
    const bool sizes = g.C % 8 == 0 && g.OC % 8 == 0 && g.expert_stride % 8 == 0;
    const bool pointers = (!g.inp || aligned16(g.inp)) && (!g.dout || aligned16(g.dout)) &&
                          (!g.weight || aligned16(g.weight)) && (!g.out || aligned16(g.out)) &&
                          (!g.dinp || aligned16(g.dinp));
    return sizes && pointers;
  }
}

// Blocks for every tile that can exist: forward and backward_input have at most
// ceil(rows / BM) + E row blocks (each expert's last one may be partial); the rest exit at once.
template <Product P, typename T>
unsigned grouped_blocks(const Grouped<T>& g, int block_m, int block_n) {
  const int64_t tiles_n = (n_extent<P>(g) + block_n - 1) / block_n;
  if (P == Product::backward_weight) return unsigned(g.E * ((g.OC + block_m - 1) / block_m) * tiles_n);
  return unsigned(((int64_t)(g.rows + block_m - 1) / block_m + g.E) * tiles_n);
}

template <Product P, typename T>
void launch_grouped(const Grouped<T>& g, cudaStream_t stream) {
  if (g.E == 0 || g.rows == 0 || g.C == 0 || g.OC == 0) return;  // nothing to write or add
  if constexpr (std::is_same_v<T, bf16>) {
    if (tensor_core_shapes(g)) {
      constexpr size_t smem = mma_smem_bytes<P>();
      DSK_CUDA_CHECK(cudaFuncSetAttribute(grouped_mma<P>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
      grouped_mma<P><<<grouped_blocks<P>(g, kMmaBM, kMmaBN), kMmaThreads, smem, stream>>>(g);
      DSK_CUDA_CHECK_LAUNCH();
      return;
    }
  }
  grouped_simt<P, T><<<grouped_blocks<P>(g, kSimtBM, kSimtBN), kSimtThreads, 0, stream>>>(g);
  DSK_CUDA_CHECK_LAUNCH();
}

template <typename T>
Grouped<T> grouped(const int32_t* offsets, int E, int rows, int C, int OC, int64_t expert_stride) {
  Grouped<T> g{};
  g.offsets = offsets;
  g.E = E;
  g.rows = rows;
  g.C = C;
  g.OC = OC;
  g.expert_stride = expert_stride;
  return g;
}

}  // namespace

template <typename T>
void grouped_matmul_forward(T* out, const T* inp, const T* weight, int64_t expert_stride, const int32_t* offsets,
                            int E, int rows, int C, int OC, cudaStream_t stream) {
  Grouped<T> g = grouped<T>(offsets, E, rows, C, OC, expert_stride);
  g.out = out;
  g.inp = inp;
  g.weight = weight;
  launch_grouped<Product::forward>(g, stream);
}

template <typename T>
void grouped_matmul_backward_input(T* dinp, const T* dout, const T* weight, int64_t expert_stride,
                                   const int32_t* offsets, int E, int rows, int C, int OC, cudaStream_t stream) {
  Grouped<T> g = grouped<T>(offsets, E, rows, C, OC, expert_stride);
  g.dinp = dinp;
  g.dout = dout;
  g.weight = weight;
  launch_grouped<Product::backward_input>(g, stream);
}

template <typename T>
void grouped_matmul_backward_weight(float* dweight, int64_t expert_stride, const T* dout, const T* inp,
                                    const int32_t* offsets, int E, int rows, int C, int OC, cudaStream_t stream) {
  Grouped<T> g = grouped<T>(offsets, E, rows, C, OC, expert_stride);
  g.dweight = dweight;
  g.dout = dout;
  g.inp = inp;
  launch_grouped<Product::backward_weight>(g, stream);
}

#define DSK_INSTANTIATE_GROUPED(T)                                                                                \
  template void grouped_matmul_forward<T>(T*, const T*, const T*, int64_t, const int32_t*, int, int, int, int,   \
                                          cudaStream_t);                                                          \
  template void grouped_matmul_backward_input<T>(T*, const T*, const T*, int64_t, const int32_t*, int, int, int,  \
                                                 int, cudaStream_t);                                              \
  template void grouped_matmul_backward_weight<T>(float*, int64_t, const T*, const T*, const int32_t*, int, int,  \
                                                  int, int, cudaStream_t);
DSK_INSTANTIATE_GROUPED(float)
DSK_INSTANTIATE_GROUPED(bf16)
#undef DSK_INSTANTIATE_GROUPED

}  // namespace dsk::kernels::cuda
