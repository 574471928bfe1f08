// The bf16 tensor-core path of causal attention (FlashAttention-2's structure): forward with an
// online softmax over key tiles, backward as one kernel owning dK/dV per key tile and one owning
// dQ per query tile, both recomputing the probabilities from the forward's log-sum-exps. Included
// only by attention.cu, which checks shapes and alignment and picks the padded head dims.
//
// Each warp owns MT m16 tiles, 16 * MT rows (queries in forward and dQ, keys in dK/dV), in
// registers; warps per block, MT and the other tile sizes are the kernels' tile configuration
// (ForwardConfig, KeyConfig, QueryConfig below), chosen per head-dim pair in attention.cu. DKP
// and DVP are the head dims padded to a multiple of 16; the padding is zero in shared memory and
// never stored. Scores are kept in base 2 (scaled by scale * log2 e) so exp2 does the softmax; lse
// is written in natural-log units, as the CPU reference would compute it. The default tile sizes
// below keep each kernel's accumulators within the 255 registers a thread has. Packed rows (s.segment_start) add a mask bound per query and skip
// the key tiles no query of a block sees (attention_segments.cuh).
#pragma once

#include "cpu/kernels.hpp"
#include "cuda/attention_mma.cuh"
#include "cuda/attention_segments.cuh"

namespace dsk::kernels::cuda::flash {

using AttentionShape = cpu::AttentionShape;

// Tile configurations, the kernels' template arguments. A 0 asks for what the head dims give by
// the heuristics in ForwardTiles, KeyTiles and QueryTiles (the only choice before these were
// parameters, e.g. ForwardConfig<4>); MIN_BLOCKS is __launch_bounds__'s minimum blocks per SM (it
// caps the registers per thread; 0 leaves it out, which is not the same as 1: with 1, ptxas takes
// up to 255 registers where without it may take fewer, e.g. 184 instead of 241 for dK/dV at
// 64/64). Forward and dQ: WARPS warps of 16 * WARP_TILES queries each, BLOCK_N keys per step.
// dK/dV: WARPS warps of 16 * WARP_TILES keys each, BLOCK_M queries per step.
template <int WARPS, int WARP_TILES = 0, int BLOCK_N = 0, int MIN_BLOCKS = 0>
struct ForwardConfig {
  static constexpr int kWarps = WARPS, kWarpTiles = WARP_TILES, kBlockN = BLOCK_N, kMinBlocks = MIN_BLOCKS;
};
// ORDERED_DQ: the dK/dV kernel computes dQ too (one pass: S, P and dS once instead of twice) and
// adds each step's dQ part into an fp32 accumulator in key-tile order (DqTurns below), so the sum
// is the same in every run; then no dQ kernel runs.
template <int WARPS, int WARP_TILES = 0, int BLOCK_M = 0, int MIN_BLOCKS = 0, bool ORDERED_DQ = false>
struct KeyConfig {
  static constexpr int kWarps = WARPS, kWarpTiles = WARP_TILES, kBlockM = BLOCK_M, kMinBlocks = MIN_BLOCKS;
  static constexpr bool kOrderedDq = ORDERED_DQ;
};
template <int WARPS, int WARP_TILES = 0, int BLOCK_N = 0, int MIN_BLOCKS = 0>
struct QueryConfig {
  static constexpr int kWarps = WARPS, kWarpTiles = WARP_TILES, kBlockN = BLOCK_N, kMinBlocks = MIN_BLOCKS;
};

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Where a block of the query-tiled kernels (forward, dQ) sits. Grid: (B * H, query tiles), the
// last query tiles (most keys to visit) first. Query m sits at position offset + m and sees keys
// 0..offset + m, so the block needs the key tiles below key_end. With packed rows it visits them
// through skip (the tiles before its first query's example left out); the starts of the warp's
// queries' examples are read again where needed (L1-cached) rather than kept in registers, which
// the largest tiles have none to spare for. kSegments: the kernels are compiled twice, so that
// plain causal launches keep the code (and registers) they had without packing.
template <int BM, int BN, int WARP_ROWS, bool kSegments>
struct QueryBlock {
  int b, h, kvh, m0, warp_m0, offset, n_tiles;
  segments::KeyTileSkip skip;  // kSegments only

  __device__ explicit QueryBlock(const AttentionShape& s) {
    b = int(blockIdx.x) / s.H;
    h = int(blockIdx.x) % s.H;
    kvh = h / (s.H / s.KVH);
    m0 = int(gridDim.y - 1 - blockIdx.y) * BM;
    warp_m0 = m0 + int(threadIdx.x) / 32 * WARP_ROWS;
    offset = s.Tk - s.Tq;
    n_tiles = (min(s.Tk, offset + m0 + BM) + BN - 1) / BN;
    if constexpr (kSegments) skip = segments::KeyTileSkip(s, b, m0, BN, n_tiles);
  }
  // The key tiles in visiting order: first_tile(), next_tile(...) while below n_tiles.
  __device__ int first_tile() const { return kSegments && skip.from == 0 ? skip.to : 0; }
  __device__ int next_tile(int tile) const { return kSegments && tile + 1 == skip.from ? skip.to : tile + 1; }
  // Nothing in key tile n0.. is visible to this warp's queries (or it has none): past them, or
  // (with segments) before the example of the first of them.
  __device__ bool warp_skips(int n0, int Tq) const { return warp_m0 >= Tq || n0 > offset + warp_m0 + WARP_ROWS - 1; }
  __device__ bool warp_before_examples(const AttentionShape& s, int n0) const {
    return n0 >= offset && n0 + BN <= offset + segments::start_of(s, b, warp_m0);
  }
  // Some key of tile n0.. is later than one of this warp's queries: the causal mask applies.
  __device__ bool warp_on_diagonal(int n0) const { return n0 + BN - 1 > offset + warp_m0; }
  // Some key of tile n0.. may come before the example of one of this warp's queries (the last
  // query's example begins last).
  __device__ bool warp_on_segment_edge(const AttentionShape& s, int n0) const {
    return kSegments && n0 + BN > offset &&
           n0 < offset + segments::start_of(s, b, min(warp_m0 + WARP_ROWS, s.Tq) - 1);
  }
  // Key n comes before the example of the warp's query `row` (edge tiles only).
  __device__ bool before_example(const AttentionShape& s, int row, int n) const {
    const int m = min(warp_m0 + row, s.Tq - 1);  // rows past Tq are never stored
    return segments::hidden(offset, segments::start_of(s, b, m), n);
  }
};

// Starts the cp.async of key tile `tile` of K and V (rows of the block's b and kvh) into stage
// tile % 2 of the double-buffered k_tiles [2][BN][DKP + pad] and v_tiles [2][BN][DVP + pad]
// (consecutive visits alternate stages: segments::KeyTileSkip skips an even number of tiles).
template <int BN, int DKP, int DVP, int THREADS>
__device__ __forceinline__ void load_key_tile(bf16* k_tiles, bf16* v_tiles, const bf16* k, const bf16* v,
                                              const AttentionShape& s, int b, int kvh, int tile) {
  constexpr int KP = DKP + kRowPadding, VP = DVP + kRowPadding;
  const int n0 = tile * BN, stage = tile % 2;
  const int64_t row = int64_t(b) * s.Tk + n0;
  load_tile_async<BN, DKP, THREADS>(k_tiles + stage * BN * KP, k + row * s.k_stride + int64_t(kvh) * s.Dk,
                                    s.k_stride, s.Tk - n0, s.Dk);
  load_tile_async<BN, DVP, THREADS>(v_tiles + stage * BN * VP, v + row * s.v_stride + int64_t(kvh) * s.Dv,
                                    s.v_stride, s.Tk - n0, s.Dv);
}

// ---- forward: one block per (b, h, WARPS * 16 * MT queries); K/V tiles double-buffered via cp.async.
template <int DKP, int DVP, class Config>
struct ForwardTiles {
  static constexpr int kWarps = Config::kWarps, kThreads = 32 * kWarps;
  // o is 16 x DVP floats per tile
  static constexpr int kWarpTiles = Config::kWarpTiles ? Config::kWarpTiles : DKP <= 128 && DVP <= 128 ? 2 : 1;
  static constexpr int kWarpRows = 16 * kWarpTiles;
  static constexpr int kBlockM = kWarps * kWarpRows;
  static constexpr int kBlockN = Config::kBlockN ? Config::kBlockN : DVP > 64 ? 32 : 64;
  static constexpr int kKPitch = DKP + kRowPadding, kVPitch = DVP + kRowPadding;
  static constexpr int kSmemBytes = (kBlockM * kKPitch + 2 * kBlockN * (kKPitch + kVPitch)) * int(sizeof(bf16));
};

// Online softmax over one key tile for the thread's two rows of one m16 tile: turns scores (in
// base-2 units, masked ones -inf) into weights exp2(s - running max), and rescales the running
// sum and the output accumulator by exp2(old max - new max). row_sum stays a per-thread partial
// sum until the end (the four threads of a row share every rescale).
template <int BN, int DVP>
__device__ __forceinline__ void online_softmax_update(float (&scores)[BN / 8][4], float (&o)[DVP / 8][4],
                                                      float (&row_max)[2], float (&row_sum)[2]) {
#pragma unroll
  for (int half = 0; half < 2; half++) {
    float new_max = row_max[half];
#pragma unroll
    for (int i = 0; i < BN / 8; i++) new_max = fmaxf(new_max, fmaxf(scores[i][2 * half], scores[i][2 * half + 1]));
    new_max = fmaxf(new_max, __shfl_xor_sync(0xffffffffu, new_max, 1));
    new_max = fmaxf(new_max, __shfl_xor_sync(0xffffffffu, new_max, 2));
    const float base = new_max == -INFINITY ? 0.0f : new_max;  // a row with nothing visible yet
    const float rescale = exp2f(row_max[half] - base);
    row_max[half] = new_max;
    float tile_sum = 0.0f;
#pragma unroll
    for (int i = 0; i < BN / 8; i++) {
#pragma unroll
      for (int e = 2 * half; e < 2 * half + 2; e++) {
        scores[i][e] = exp2f(scores[i][e] - base);
        tile_sum += scores[i][e];
      }
    }
    row_sum[half] = row_sum[half] * rescale + tile_sum;
#pragma unroll
    for (int i = 0; i < DVP / 8; i++) {
      o[i][2 * half] *= rescale;
      o[i][2 * half + 1] *= rescale;
    }
  }
}

// out [B, Tq, H, Dv] (=), lse [B, H, Tq].
template <int DKP, int DVP, class Config, bool kSegments>
__global__ void __launch_bounds__(Config::kWarps * 32, Config::kMinBlocks)
    forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, AttentionShape s) {
  using Tiles = ForwardTiles<DKP, DVP, Config>;
  constexpr int kThreads = Tiles::kThreads;
  constexpr int MT = Tiles::kWarpTiles, BM = Tiles::kBlockM, BN = Tiles::kBlockN;
  constexpr int KP = Tiles::kKPitch, VP = Tiles::kVPitch;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* q_tile = reinterpret_cast<bf16*>(shared);  // [BM][KP]
  bf16* k_tiles = q_tile + BM * KP;                  // [2][BN][KP]
  bf16* v_tiles = k_tiles + 2 * BN * KP;             // [2][BN][VP]

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
  const QueryBlock<BM, BN, Tiles::kWarpRows, kSegments> block(s);
  load_tile_async<BM, DKP, kThreads>(q_tile, q + (int64_t(block.b) * s.Tq + block.m0) * s.q_stride +
                                                 int64_t(block.h) * s.Dk,
                                     s.q_stride, s.Tq - block.m0, s.Dk);
  load_key_tile<BN, DKP, DVP, kThreads>(k_tiles, v_tiles, k, v, s, block.b, block.kvh, block.first_tile());
  cp_async_commit();

  const uint32_t q_warp = shared_address(q_tile + warp * Tiles::kWarpRows * KP);
  float o[MT][DVP / 8][4] = {};
  float row_max[MT][2], row_sum[MT][2] = {};
#pragma unroll
  for (int mt = 0; mt < MT; mt++) row_max[mt][0] = row_max[mt][1] = -INFINITY;
  const float scale_log2 = s.scale * kLog2e;
  for (int tile = block.first_tile(); tile < block.n_tiles; tile = block.next_tile(tile)) {
    cp_async_wait_all();
    __syncthreads();  // tile is in; every warp is done with the previous one, whose buffer the prefetch reuses
    if (block.next_tile(tile) < block.n_tiles) {
      load_key_tile<BN, DKP, DVP, kThreads>(k_tiles, v_tiles, k, v, s, block.b, block.kvh, block.next_tile(tile));
      cp_async_commit();
    }
    const int n0 = tile * BN;
    if (block.warp_skips(n0, s.Tq)) continue;
    if constexpr (kSegments)
      if (block.warp_before_examples(s, n0)) continue;

    float scores[MT][BN / 8][4] = {};
    warp_product_abt<MT, DKP, BN, KP, KP>(scores, q_warp, shared_address(k_tiles + (tile % 2) * BN * KP));
    const bool diagonal = block.warp_on_diagonal(n0), segment_edge = block.warp_on_segment_edge(s, n0);
    for_each_accumulator<MT, BN>([&](int mt, int i, int e, int row, int column) {
      bool hidden = diagonal && n0 + column > block.offset + block.warp_m0 + row;
      if constexpr (kSegments) hidden = hidden || (segment_edge && block.before_example(s, row, n0 + column));
      scores[mt][i][e] = hidden ? -INFINITY : scores[mt][i][e] * scale_log2;
    });
#pragma unroll
    for (int mt = 0; mt < MT; mt++) online_softmax_update<BN, DVP>(scores[mt], o[mt], row_max[mt], row_sum[mt]);
    warp_product_pb<MT, BN, DVP, VP>(o, scores, shared_address(v_tiles + (tile % 2) * BN * VP));
  }

#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
      float sum = row_sum[mt][half];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int m = block.warp_m0 + 16 * mt + g + half * 8;
      if (m >= s.Tq) continue;
      const float inverse = 1.0f / sum;  // > 0: every query sees its own key
      bf16* out_row = out + ((int64_t(block.b) * s.Tq + m) * s.H + block.h) * s.Dv;
#pragma unroll
      for (int i = 0; i < DVP / 8; i++) {
        const int column = i * 8 + 2 * t;
        if (column < s.Dv)
          *reinterpret_cast<__nv_bfloat162*>(out_row + column) =
              __floats2bfloat162_rn(o[mt][i][2 * half] * inverse, o[mt][i][2 * half + 1] * inverse);
      }
      if (t == 0) lse[(int64_t(block.b) * s.H + block.h) * s.Tq + m] = (row_max[mt][half] + log2f(sum)) * kLn2;
    }
  }
}

// ---- backward, dK and dV: one block per (b, kv head, WARPS * 16 * MT keys), looping over the query
// heads of the group in order and over the query tiles that see its keys; each warp owns its
// keys' dK and dV rows, so nothing is shared and no atomics are needed. When dK and dV together
// would not fit in registers (DKP + DVP > 256), the launcher runs the kernel twice, once per
// gradient (kDV, kDK).
//
// With KeyConfig's ORDERED_DQ, each step also writes dS (bf16, [BM queries][BN keys]) to shared
// memory, the warps split dQ part = dS K (BM x DKP) between them, and the block adds it into the
// fp32 accumulator dq_accum [B, H, Tq, DKP] when its turn comes: the blocks of key tiles 0, 1, ..
// of a (b, kv head) add to each query tile in that order, every block of key tile j after exactly
// j others (a tile's keys are seen by all query tiles its predecessors' keys are, and with
// ORDERED_DQ a block visits every query tile from its first, packed rows or not). A block only
// ever waits for blocks of lower index, which the GPU starts first, so the turns cannot deadlock.
// The launcher zeroes dq_accum and the turns first and adds dq_accum * scale to dq after.
struct DqTurns {
  // Spins (thread 0 of the block) until `turn` reaches `mine`; the acquire makes the previous
  // adder's writes visible. A wait of 10 s (the whole backward takes milliseconds) means a broken
  // schedule: trap (a launch error) rather than hang.
  __device__ static void wait(const int* turn, int mine) {
    uint64_t start = 0;
    for (unsigned spins = 0;; spins++) {
      int seen;
      asm volatile("ld.acquire.gpu.s32 %0, [%1];" : "=r"(seen) : "l"(turn) : "memory");
      if (seen >= mine) return;
      if (spins % 1024 == 0) {
        uint64_t now;
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
        if (spins == 0) start = now;
        if (now - start > 10'000'000'000ull) __trap();
      }
      __nanosleep(32);
    }
  }
  // After the block's writes (and a __syncthreads), thread 0 hands the query tile on.
  __device__ static void pass(int* turn, int next) {
    __threadfence();
    asm volatile("st.release.gpu.s32 [%0], %1;" : : "l"(turn), "r"(next) : "memory");
  }
};

template <int DKP, int DVP, bool kDV, bool kDK, class Config>
struct KeyTiles {
  static constexpr int kWarps = Config::kWarps, kThreads = 32 * kWarps;
  static constexpr int kAccumulated = (kDV ? DVP : 0) + (kDK ? DKP : 0);  // floats per key row
  // by default two only for the tiny fixture dims
  static constexpr int kWarpTiles = Config::kWarpTiles ? Config::kWarpTiles : kAccumulated <= 32 ? 2 : 1;
  static constexpr int kWarpRows = 16 * kWarpTiles;
  static constexpr int kBlockN = kWarps * kWarpRows;
  static constexpr int kBlockM = Config::kBlockM ? Config::kBlockM
                                 : kWarpTiles * kAccumulated > 128 ? 32
                                                                   : 64;  // bounds the score registers
  static constexpr int kKPitch = DKP + kRowPadding, kVPitch = DVP + kRowPadding;
  static constexpr bool kOrderedDq = Config::kOrderedDq;
  static_assert(!kOrderedDq || (kDV && kDK), "dQ in the key blocks needs dK and dV in one pass");
  // ORDERED_DQ: the warps split the BM x DKP dQ part into m16 tiles of rows, then into columns.
  static constexpr int kDqRowTiles = kBlockM / 16;
  static constexpr int kDqWarpTiles = kDqRowTiles >= kWarps ? kDqRowTiles / kWarps : 1;
  static constexpr int kDqColumnSplits = kDqRowTiles >= kWarps ? 1 : kWarps / kDqRowTiles;
  static constexpr int kDqColumns = DKP / kDqColumnSplits;
  static_assert(!kOrderedDq || (kDqWarpTiles * kWarps == kDqRowTiles || kDqColumnSplits * kDqRowTiles == kWarps) &&
                                   kDqColumns % 16 == 0 && kDqColumns * kDqColumnSplits == DKP,
                "the dQ part does not split evenly between the warps");
  static constexpr int kDsPitch = kBlockN + kRowPadding;
  // Shared memory, in bf16 elements then floats: K [BN][KP], V [BN][VP] (for dP, kDK only),
  // Q [2][BM][KP], dO [2][BM][VP], dS [BM][kDsPitch] (ORDERED_DQ only), then lse [2][BM], D [2][BM]
  // (floats), and with segments the example starts [2][BM] (i32, kSegmentBytes more).
  static constexpr int kVOffset = kBlockN * kKPitch;
  static constexpr int kQOffset = kVOffset + (kDK ? kBlockN * kVPitch : 0);
  static constexpr int kDOOffset = kQOffset + 2 * kBlockM * kKPitch;
  static constexpr int kDsOffset = kDOOffset + 2 * kBlockM * kVPitch;
  static constexpr int kBf16Elements = kDsOffset + (kOrderedDq ? kBlockM * kDsPitch : 0);
  static constexpr int kSmemBytes = kBf16Elements * int(sizeof(bf16)) + 4 * kBlockM * int(sizeof(float));
  static constexpr int kSegmentBytes = 2 * kBlockM * int(sizeof(int32_t));
};

// dk, dv (layouts of k, v) +=. dsum [B, H, Tq] = rowsum(dout * out). Grid: (B * KVH, key tiles).
// ORDERED_DQ only: dq_accum [B, H, Tq, DKP] +=, dq_turns [B, H, query tiles] (zeroed before).
template <int DKP, int DVP, class Config, bool kDV, bool kDK, bool kSegments>
__global__ void __launch_bounds__(Config::kWarps * 32, Config::kMinBlocks)
    backward_kv_kernel(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
                       const bf16* k, const bf16* v, AttentionShape s, float* dq_accum, int* dq_turns) {
  using Tiles = KeyTiles<DKP, DVP, kDV, kDK, Config>;
  constexpr int kThreads = Tiles::kThreads;
  constexpr int MT = Tiles::kWarpTiles, BM = Tiles::kBlockM, BN = Tiles::kBlockN;
  constexpr int KP = Tiles::kKPitch, VP = Tiles::kVPitch;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* const shared_bf16 = reinterpret_cast<bf16*>(shared);
  bf16* k_tile = shared_bf16;
  bf16* v_tile = shared_bf16 + Tiles::kVOffset;
  bf16* q_tiles = shared_bf16 + Tiles::kQOffset;
  bf16* dout_tiles = shared_bf16 + Tiles::kDOOffset;
  float* lse_tiles = reinterpret_cast<float*>(shared_bf16 + Tiles::kBf16Elements);  // [2][BM]
  float* dsum_tiles = lse_tiles + 2 * BM;                                            // [2][BM]
  int32_t* start_tiles = reinterpret_cast<int32_t*>(dsum_tiles + 2 * BM);            // [2][BM]
  bf16* ds_tile = shared_bf16 + Tiles::kDsOffset;                                    // [BM][kDsPitch]

  const int warp = int(threadIdx.x) / 32;
  const int b = int(blockIdx.x) / s.KVH, kvh = int(blockIdx.x) % s.KVH, group = s.H / s.KVH;
  const int n0 = int(blockIdx.y) * BN;
  const int warp_n0 = n0 + warp * Tiles::kWarpRows;
  const int offset = s.Tk - s.Tq;
  const int first_tile = max(0, n0 - offset) / BM;  // query m sees key n when m >= n - offset
  const int query_end =
      kSegments && !Tiles::kOrderedDq ? segments::query_end(s, b, n0, min(n0 + BN, s.Tk) - 1) : s.Tq;
  const int tiles_per_head = (query_end + BM - 1) / BM - first_tile;
  const int steps = group * tiles_per_head;
  const int64_t dout_stride = int64_t(s.H) * s.Dv;

  auto step_head = [&](int step) { return kvh * group + step / tiles_per_head; };
  // ORDERED_DQ visits a head's query tiles last first: key tile j then waits for key tile j - 1 at
  // the same step, not one step further (which would add a step of lag per key tile).
  auto step_m0 = [&](int step) {
    const int tile = step % tiles_per_head;
    return (first_tile + (Tiles::kOrderedDq ? tiles_per_head - 1 - tile : tile)) * BM;
  };
  auto load_queries = [&](int step) {
    const int h = step_head(step), m0 = step_m0(step), stage = step % 2;
    const int64_t row = int64_t(b) * s.Tq + m0;
    load_tile_async<BM, DKP, kThreads>(q_tiles + stage * BM * KP, q + row * s.q_stride + int64_t(h) * s.Dk, s.q_stride,
                                       s.Tq - m0, s.Dk);
    load_tile_async<BM, DVP, kThreads>(dout_tiles + stage * BM * VP, dout + row * dout_stride + int64_t(h) * s.Dv,
                                       dout_stride, s.Tq - m0, s.Dv);
    const int64_t vector = (int64_t(b) * s.H + h) * s.Tq + m0;
    load_floats_async<kThreads>(lse_tiles + stage * BM, lse + vector, BM, s.Tq - m0);
    if (kDK) load_floats_async<kThreads>(dsum_tiles + stage * BM, dsum + vector, BM, s.Tq - m0);
    if (kSegments)  // 4-byte words copied as they are
      load_floats_async<kThreads>(reinterpret_cast<float*>(start_tiles + stage * BM),
                                  reinterpret_cast<const float*>(s.segment_start + int64_t(b) * s.Tq + m0), BM,
                                  s.Tq - m0);
  };
  load_tile_async<BN, DKP, kThreads>(k_tile, k + (int64_t(b) * s.Tk + n0) * s.k_stride + int64_t(kvh) * s.Dk,
                                     s.k_stride, s.Tk - n0, s.Dk);
  if (kDK)
    load_tile_async<BN, DVP, kThreads>(v_tile, v + (int64_t(b) * s.Tk + n0) * s.v_stride + int64_t(kvh) * s.Dv,
                                       s.v_stride, s.Tk - n0, s.Dv);
  load_queries(0);
  cp_async_commit();

  const uint32_t k_warp = shared_address(k_tile + warp * Tiles::kWarpRows * KP);  // this warp's keys
  const uint32_t v_warp = shared_address(v_tile + warp * Tiles::kWarpRows * VP);
  float dk_acc[MT][kDK ? DKP / 8 : 1][4] = {};
  float dv_acc[MT][kDV ? DVP / 8 : 1][4] = {};
  const float scale_log2 = s.scale * kLog2e;
  // One step's dV and dK for the warp's keys (and dS in shared memory for ORDERED_DQ); false when
  // no query of the step sees them.
  auto accumulate_step = [&](int m0, int stage) {
    if (warp_n0 >= s.Tk || offset + m0 + BM - 1 < warp_n0) return false;  // no query of the tile sees these keys
    const int32_t* start_stage = start_tiles + stage * BM;
    // With segments: the warp's keys all precede the tile's first example, or some may precede one.
    const bool segmented = kSegments && warp_n0 + Tiles::kWarpRows > offset;
    if (segmented && warp_n0 >= offset && warp_n0 + Tiles::kWarpRows <= offset + start_stage[0]) return false;
    const bool segment_edge = segmented && warp_n0 < offset + start_stage[min(BM, s.Tq - m0) - 1];
    const uint32_t q_stage = shared_address(q_tiles + stage * BM * KP);
    const uint32_t dout_stage = shared_address(dout_tiles + stage * BM * VP);
    const float* lse_stage = lse_tiles + stage * BM;
    const float* dsum_stage = dsum_tiles + stage * BM;

    // Transposed scores S^T [keys][BM queries] and, for dK, dP^T = V dO^T.
    float p[MT][BM / 8][4] = {};
    warp_product_abt<MT, DKP, BM, KP, KP>(p, k_warp, q_stage);
    float ds[MT][kDK ? BM / 8 : 1][4] = {};
    if constexpr (kDK) warp_product_abt<MT, DVP, BM, VP, VP>(ds, v_warp, dout_stage);
    const bool edge = warp_n0 + Tiles::kWarpRows - 1 > offset + m0 || m0 + BM > s.Tq;
    for_each_accumulator<MT, BM>([&](int mt, int i, int e, int row, int column) {  // row: key, column: query
      const int m = m0 + column;
      const bool hidden = (edge && (m >= s.Tq || warp_n0 + row > offset + m)) ||
                          (segment_edge && segments::hidden(offset, start_stage[column], warp_n0 + row));
      p[mt][i][e] = hidden ? 0.0f : exp2f(p[mt][i][e] * scale_log2 - lse_stage[column] * kLog2e);
      if constexpr (kDK) ds[mt][i][e] = p[mt][i][e] * (ds[mt][i][e] - dsum_stage[column]);
    });
    if constexpr (kDV) warp_product_pb<MT, BM, DVP, VP>(dv_acc, p, dout_stage);  // dV += P^T dO
    if constexpr (kDK) warp_product_pb<MT, BM, DKP, KP>(dk_acc, ds, q_stage);    // dK += dS^T Q (x scale below)
    if constexpr (Tiles::kOrderedDq)  // dS [queries][keys], this warp's keys
      for_each_accumulator<MT, BM>([&](int mt, int i, int e, int row, int column) {
        ds_tile[column * Tiles::kDsPitch + warp * Tiles::kWarpRows + row] = __float2bfloat16_rn(ds[mt][i][e]);
      });
    return true;
  };
  // ORDERED_DQ: dQ part = dS K of the step, added into dq_accum in key-tile order. (Generic, so
  // that only ORDERED_DQ kernels compile it.)
  auto add_dq_part = [&](auto step, int m0, bool worked) {
    if (!worked)  // the warp's columns of dS are zero
      for (int i = int(threadIdx.x) % 32; i < BM * Tiles::kWarpRows; i += 32)
        ds_tile[i / Tiles::kWarpRows * Tiles::kDsPitch + warp * Tiles::kWarpRows + i % Tiles::kWarpRows] = bf16(0.0f);
    __syncthreads();  // dS is whole
    constexpr int DMT = Tiles::kDqWarpTiles, DN = Tiles::kDqColumns;
    const int row0 = 16 * (Tiles::kDqColumnSplits == 1 ? warp * DMT : warp % Tiles::kDqRowTiles);
    const int column0 = Tiles::kDqColumnSplits == 1 ? 0 : warp / Tiles::kDqRowTiles * DN;
    float dq_part[DMT][DN / 8][4] = {};
    warp_product_ab<DMT, BN, DN, Tiles::kDsPitch, KP>(dq_part, shared_address(ds_tile + row0 * Tiles::kDsPitch),
                                                      shared_address(k_tile + column0));
    const int64_t head_row = int64_t(b) * s.H + step_head(step);
    int* turn = dq_turns + head_row * ((s.Tq + BM - 1) / BM) + m0 / BM;
    if (threadIdx.x == 0) DqTurns::wait(turn, int(blockIdx.y));
    __syncthreads();
    add_accumulator_rows_f32<DMT, DN>(dq_accum + (head_row * s.Tq + m0 + row0) * DKP + column0, DKP,
                                      s.Tq - m0 - row0, dq_part);
    __syncthreads();  // every thread's adds are issued
    if (threadIdx.x == 0) DqTurns::pass(turn, int(blockIdx.y) + 1);
  };
  for (int step = 0; step < steps; step++) {
    cp_async_wait_all();
    __syncthreads();  // step's queries are in; every warp is done with step - 1's buffers
    if (step + 1 < steps) {
      load_queries(step + 1);
      cp_async_commit();
    }
    const int m0 = step_m0(step), stage = step % 2;
    [[maybe_unused]] const bool worked = accumulate_step(m0, stage);
    if constexpr (Tiles::kOrderedDq) add_dq_part(step, m0, worked);
  }

  const int valid_keys = s.Tk - warp_n0;
  if constexpr (kDK)
    add_accumulator_rows<MT, DKP>(dk + (int64_t(b) * s.Tk + warp_n0) * s.k_stride + int64_t(kvh) * s.Dk, s.k_stride,
                                  valid_keys, s.Dk, dk_acc, s.scale);
  if constexpr (kDV)
    add_accumulator_rows<MT, DVP>(dv + (int64_t(b) * s.Tk + warp_n0) * s.v_stride + int64_t(kvh) * s.Dv, s.v_stride,
                                  valid_keys, s.Dv, dv_acc, 1.0f);
}

// ---- backward, dQ: one block per (b, h, WARPS * 16 * MT queries), looping over key tiles like the forward.
template <int DKP, int DVP, class Config>
struct QueryTiles {
  static constexpr int kWarps = Config::kWarps, kThreads = 32 * kWarps;
  // dq is 16 x DKP floats per tile
  static constexpr int kWarpTiles = Config::kWarpTiles ? Config::kWarpTiles : DKP <= 96 && DVP <= 96 ? 2 : 1;
  static constexpr int kWarpRows = 16 * kWarpTiles;
  static constexpr int kBlockM = kWarps * kWarpRows;
  static constexpr int kBlockN = Config::kBlockN ? Config::kBlockN : kWarpTiles == 2 || DKP > 128 ? 32 : 64;
  static constexpr int kKPitch = DKP + kRowPadding, kVPitch = DVP + kRowPadding;
  // Q [BM][KP], dO [BM][VP], K [2][BN][KP], V [2][BN][VP]
  static constexpr int kSmemBytes =
      (kBlockM * (kKPitch + kVPitch) + 2 * kBlockN * (kKPitch + kVPitch)) * int(sizeof(bf16));
};

// dq (layout of q) +=.
template <int DKP, int DVP, class Config, bool kSegments>
__global__ void __launch_bounds__(Config::kWarps * 32, Config::kMinBlocks)
    backward_q_kernel(bf16* dq, const bf16* dout, const float* lse, const float* dsum, const bf16* q, const bf16* k,
                      const bf16* v, AttentionShape s) {
  using Tiles = QueryTiles<DKP, DVP, Config>;
  constexpr int kThreads = Tiles::kThreads;
  constexpr int MT = Tiles::kWarpTiles, BM = Tiles::kBlockM, BN = Tiles::kBlockN;
  constexpr int KP = Tiles::kKPitch, VP = Tiles::kVPitch;
  extern __shared__ __align__(16) unsigned char shared[];
  bf16* q_tile = reinterpret_cast<bf16*>(shared);  // [BM][KP]
  bf16* dout_tile = q_tile + BM * KP;                // [BM][VP]
  bf16* k_tiles = dout_tile + BM * VP;               // [2][BN][KP]
  bf16* v_tiles = k_tiles + 2 * BN * KP;             // [2][BN][VP]

  const int warp = int(threadIdx.x) / 32, g = int(threadIdx.x) % 32 / 4;
  const QueryBlock<BM, BN, Tiles::kWarpRows, kSegments> block(s);
  const int64_t row = int64_t(block.b) * s.Tq + block.m0, dout_stride = int64_t(s.H) * s.Dv;
  load_tile_async<BM, DKP, kThreads>(q_tile, q + row * s.q_stride + int64_t(block.h) * s.Dk, s.q_stride,
                                     s.Tq - block.m0, s.Dk);
  load_tile_async<BM, DVP, kThreads>(dout_tile, dout + row * dout_stride + int64_t(block.h) * s.Dv, dout_stride,
                                     s.Tq - block.m0, s.Dv);
  load_key_tile<BN, DKP, DVP, kThreads>(k_tiles, v_tiles, k, v, s, block.b, block.kvh, block.first_tile());
  cp_async_commit();

  // The thread's query rows: their lse (base 2) and D = rowsum(dout * out).
  float row_lse[MT][2], row_dsum[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int m = block.warp_m0 + 16 * mt + g + half * 8;
      const int64_t index = (int64_t(block.b) * s.H + block.h) * s.Tq + m;
      row_lse[mt][half] = m < s.Tq ? lse[index] * kLog2e : 0.0f;
      row_dsum[mt][half] = m < s.Tq ? dsum[index] : 0.0f;
    }
  }

  const uint32_t q_warp = shared_address(q_tile + warp * Tiles::kWarpRows * KP);
  const uint32_t dout_warp = shared_address(dout_tile + warp * Tiles::kWarpRows * VP);
  float dq_acc[MT][DKP / 8][4] = {};
  const float scale_log2 = s.scale * kLog2e;
  for (int tile = block.first_tile(); tile < block.n_tiles; tile = block.next_tile(tile)) {
    cp_async_wait_all();
    __syncthreads();
    if (block.next_tile(tile) < block.n_tiles) {
      load_key_tile<BN, DKP, DVP, kThreads>(k_tiles, v_tiles, k, v, s, block.b, block.kvh, block.next_tile(tile));
      cp_async_commit();
    }
    const int n0 = tile * BN;
    if (block.warp_skips(n0, s.Tq)) continue;
    if constexpr (kSegments)
      if (block.warp_before_examples(s, n0)) continue;
    const uint32_t k_tile = shared_address(k_tiles + (tile % 2) * BN * KP);

    float ds[MT][BN / 8][4] = {};  // scores, then probabilities, then dS = P (dP - D)
    warp_product_abt<MT, DKP, BN, KP, KP>(ds, q_warp, k_tile);
    float dp[MT][BN / 8][4] = {};
    warp_product_abt<MT, DVP, BN, VP, VP>(dp, dout_warp, shared_address(v_tiles + (tile % 2) * BN * VP));
    const bool diagonal = block.warp_on_diagonal(n0);
    bool segment_edge = false;
    if constexpr (kSegments) segment_edge = block.warp_on_segment_edge(s, n0);
    for_each_accumulator<MT, BN>([&](int mt, int i, int e, int row, int column) {
      bool hidden = diagonal && n0 + column > block.offset + block.warp_m0 + row;
      if constexpr (kSegments) hidden = hidden || (segment_edge && block.before_example(s, row, n0 + column));
      const float probability = hidden ? 0.0f : exp2f(ds[mt][i][e] * scale_log2 - row_lse[mt][e / 2]);
      ds[mt][i][e] = probability * (dp[mt][i][e] - row_dsum[mt][e / 2]);
    });
    warp_product_pb<MT, BN, DKP, KP>(dq_acc, ds, k_tile);  // dQ += dS K (x scale below)
  }

  add_accumulator_rows<MT, DKP>(dq + (int64_t(block.b) * s.Tq + block.warp_m0) * s.q_stride + int64_t(block.h) * s.Dk,
                                s.q_stride, s.Tq - block.warp_m0, s.Dk, dq_acc, s.scale);
}

}  // namespace dsk::kernels::cuda::flash
