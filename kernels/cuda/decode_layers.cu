// The persistent decode kernel of decode_layers.cuh. One block an SM: kConsumerWarps warps that
// compute and one producer warp whose first lane streams weights.
//
// Every block walks the same schedule: for each layer, four products (q/k/v as one run of
// columns; o; gate and up, whose rows sit side by side in a stage; down), the block taking the
// columns [b * OC / G, (b + 1) * OC / G) of each, a stage holding as many of its rows as fit. The
// producer issues the stages in that order into the ring as slots come free; the consumers take
// them in the same order. Between the products the consumers meet at a grid barrier, then copy
// the product's input rows into shared memory (RMSNorm'd before q/k/v and gate/up). Attention
// runs between q/k/v and o: an item per (token, head, key partition), spread over the blocks; the
// last item of a head to finish merges its partitions.
#include <cuda/ptx>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/error.hpp"
#include "cuda/decode_layers.cuh"
#include "cuda/gemv_stream.cuh"
#include "cuda/mma.cuh"
#include "cuda/rope_rotation.cuh"

namespace dsk::kernels::cuda {

namespace {

namespace ptx = ::cuda::ptx;  // libcu++'s PTX wrappers; dsk's own (mma.cuh) are named in full
using ::dsk::kernels::cuda::ptx::mma_bf16;
using gemv::Chunk;

// Consumer warps a block and keys in flight a lane group: scripts/bench/decode_layers_bench.cu
// times other values by defining these. On the H200 (llama-1b, one sequence, rows known at compile
// time) 8 warps and 2 keys took 0.80 ms a step, 12 warps 0.89 and 4 warps 0.91 (traced builds);
// a block of 9 warps (8 consumers and the producer) gets at most 168 registers a thread (each
// scheduler has a quarter of the register file, and one of them holds three warps).
#ifndef DSK_DECODE_CONSUMER_WARPS
#define DSK_DECODE_CONSUMER_WARPS 8
#endif
#ifndef DSK_DECODE_KEYS_IN_FLIGHT
#define DSK_DECODE_KEYS_IN_FLIGHT 2
#endif
constexpr int kConsumerWarps = DSK_DECODE_CONSUMER_WARPS;
constexpr int kConsumers = kConsumerWarps * 32;
constexpr int kThreads = kConsumers + 32;  // and the producer warp
// Stages in the ring (the shared memory left after the work area, split evenly); the bench times
// other counts by defining this.
#ifndef DSK_DECODE_STAGES
#define DSK_DECODE_STAGES 4
#endif
constexpr int kStages = DSK_DECODE_STAGES;
// Stages the producer has in flight at most (issued, not landed), by the step's tokens. Bulk
// copies in flight to an SM delay its other loads: every round trip of a grid barrier, the input
// rows and attention waits behind them. On the H200 (llama-1b, one token, 2026-12-02) one stage
// of 48 KB in flight took 678-686 us a step against 764-766 with all four (two 745-749, three
// 758; 24-39 KB stages, one in flight, 694-725); four tokens, whose products take longer, ran
// 972-980 us with four and 982-987 with one. The bench times others by defining
// DSK_DECODE_IN_FLIGHT (for every token count).
template <int ROWS>
constexpr int stages_in_flight() {
#ifdef DSK_DECODE_IN_FLIGHT
  return DSK_DECODE_IN_FLIGHT;
#else
  return ROWS == 1 ? 1 : kStages;
#endif
}
constexpr int kBarrierBytes = 256;  // full[kStages], empty[kStages], then the norm's factors
static_assert(2 * kStages * 8 <= 128, "the stages' mbarriers overlap the norm's factors");
constexpr int kNormOffset = 128;
constexpr int kMaxPartitions = 8;
constexpr int kTurnCounters = 2;  // counters: the grid barrier's arrivals and exits, then the heads' turns
constexpr int kKeysInFlight = DSK_DECODE_KEYS_IN_FLIGHT;  // keys a lane group loads before it uses the first

enum Product { kQkv, kO, kGateUp, kDown, kProducts };

// Ablation (scripts/bench/decode_layers_bench.cu built with these, for where the time goes; the
// results are then wrong): DSK_DECODE_ABLATE_BARRIERS makes the grid barriers block-local,
// _ATTENTION skips the attention items, _PRODUCTS takes each stage and frees it undotted,
// _LOADS completes each stage without copying into it.

// Profiling (scripts/bench/decode_layers_bench.cu built with -DDSK_DECODE_TRACE): the SM clock at
// the end of each phase of one layer, per block, and the clocks the consumers spent waiting for
// each product's stages.
#ifdef DSK_DECODE_TRACE
constexpr int kTraceLayer = 8, kTraceEvents = 16, kTraceBlocks = 1024;
const char* const kTraceNames[kTraceEvents] = {
    "layer start",       "barrier (x)",        "load + norm", "q/k/v",          "barrier (q/k/v)",
    "attention",         "barrier (attention)", "load attention", "o",              "barrier (o)",
    "load + norm",       "gate/up",             "barrier (act)", "load act",     "down",
    "-"};
__device__ long long trace_clock[kTraceBlocks][kTraceEvents];
__device__ long long trace_wait[kTraceBlocks][kProducts];
#define DSK_TRACE(layer, event)                                                                \
  do {                                                                                         \
    if ((layer) == kTraceLayer && threadIdx.x == 0) trace_clock[blockIdx.x][event] = clock64(); \
  } while (0)
#else
#define DSK_TRACE(layer, event) \
  do {                          \
  } while (0)
#endif

// The shape of one product of a layer: rows of `K` inputs, `columns` outputs, `sources` weight
// rows a column (gate and up: 2).
struct ProductShape {
  int K;
  int64_t columns;
  int sources;
};

template <typename T>
__host__ __device__ ProductShape product_shape(const DecodeLayersArgs<T>& a, int product) {
  const int hd = a.H * a.D, kvd = a.KVH * a.D;
  switch (product) {
    case kQkv: return {a.C, int64_t(hd) + 2 * kvd, 1};
    case kO: return {hd, a.C, 1};
    case kGateUp: return {a.C, a.I, 2};
    default: return {a.I, a.C, 1};
  }
}

template <typename T>
__host__ __device__ int rows_per_stage(const ProductShape& p, int stage_bytes) {
  return int(stage_bytes / (int64_t(p.sources) * p.K * int64_t(sizeof(T))));
}

// This block's columns [begin, end) of a product.
struct ColumnRange {
  int64_t begin, end;
};
__device__ __forceinline__ ColumnRange block_columns(int64_t columns) {
  return {int64_t(blockIdx.x) * columns / gridDim.x, (int64_t(blockIdx.x) + 1) * columns / gridDim.x};
}

__device__ __forceinline__ void consumers_sync() { asm volatile("bar.sync 1, %0;" ::"n"(kConsumers) : "memory"); }

// ---- the producer

// The weight copies of one stage, rows [first, first + rows) of a product's columns: for q/k/v a
// run that may span the three weights, for gate/up the gate rows then the up rows (at row
// stage_rows of the stage). visit(row in the stage, source rows, row count) for each.
template <typename T, typename Visit>
__device__ void for_each_copy(const DecodeLayersArgs<T>& a, const DecodeLayer<T>* layer, int product, int64_t first,
                              int rows, int stage_rows, Visit&& visit) {
  const int K = product_shape(a, product).K;
  if (product == kQkv) {
    const int64_t widths[3] = {int64_t(a.H) * a.D, int64_t(a.KVH) * a.D, int64_t(a.KVH) * a.D};
    int64_t start = 0, done = 0;
#pragma unroll
    for (int part = 0; part < 3; part++) {
      const int64_t from = max(first + done, start), to = min(first + rows, start + widths[part]);
      if (to > from) {
        visit(done, layer->qkv[part] + (from - start) * K, to - from);
        done += to - from;
      }
      start += widths[part];
    }
  } else if (product == kGateUp) {
    visit(0, layer->gate + first * K, rows);
    visit(stage_rows, layer->up + first * K, rows);
  } else {
    visit(0, (product == kO ? layer->o : layer->down) + first * K, rows);
  }
}

// A walk over this block's stages in the schedule's order: layers, their products, the block's
// rows of each a stage at a time.
template <typename T>
struct StageWalk {
  int layer = 0, product = 0, stage_rows = 0;
  int64_t first = 0, end = 0;

  __device__ bool done(const DecodeLayersArgs<T>& a) const { return layer >= a.layer_count; }
  __device__ int rows() const { return int(min(int64_t(stage_rows), end - first)); }
  // Onto the first stage of the current product, or of the next one this block has rows of.
  __device__ void enter(const DecodeLayersArgs<T>& a, int stage_bytes) {
    for (; layer < a.layer_count; product == kProducts - 1 ? (product = 0, layer++) : product++) {
      const ProductShape p = product_shape(a, product);
      const ColumnRange range = block_columns(p.columns);
      stage_rows = rows_per_stage<T>(p, stage_bytes);
      first = range.begin;
      end = range.end;
      if (first < end) return;
    }
  }
  __device__ void next(const DecodeLayersArgs<T>& a, int stage_bytes) {
    first += stage_rows;
    if (first < end) return;
    if (++product == kProducts) {
      product = 0;
      layer++;
    }
    enter(a, stage_bytes);
  }
};

// `bytes` of weights at `from` into shared memory at `to`, completing on `full`, with an L2 policy:
// evict first, as a step reads each weight once (on the H200, llama-1b, 2026-12-02: 671-673 us a
// step against 676-679 at one token, 962-970 against 979-983 at four). libcu++'s cp_async_bulk
// has no cache-hint form.
__device__ __forceinline__ void copy_weights(void* to, const void* from, uint32_t bytes, uint64_t* full,
                                             uint64_t policy) {
  const uint32_t to_shared = uint32_t(__cvta_generic_to_shared(to));
  const uint32_t full_shared = uint32_t(__cvta_generic_to_shared(full));
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;"
      ::"r"(to_shared), "l"(from), "r"(bytes), "r"(full_shared), "l"(policy)
      : "memory");
}

// Streams every stage of the step into the ring, in the consumers' order, as their slots come
// free, with at most stages_in_flight copies under way. (Also asking L2 for the stages past the
// ring, cp.async.bulk.prefetch, measured slower on the H200: 1.47 against 1.27 ms a llama-1b step
// with the CUDA-core products, 1.06 against 0.88 with tensor-core ones, 2 to 6 stages ahead;
// likely for the reason that fewer copies in flight are faster: more data on its way to an SM
// delays the consumers' own round trips.)
template <typename T, int ROWS>
__device__ void produce(const DecodeLayersArgs<T>& a, char* ring, int stage_bytes, uint64_t* full, uint64_t* empty) {
  constexpr int kInFlight = stages_in_flight<ROWS>();
  static_assert(kInFlight >= 1 && kInFlight <= kStages, "stages in flight: 1 to the ring's");
  StageWalk<T> fill;
  fill.enter(a, stage_bytes);
  uint64_t read_once;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(read_once));
  for (int issued = 0; !fill.done(a); issued++) {
    const int slot = issued % kStages;
    if (issued >= kStages) gemv::wait_stage(&empty[slot], uint32_t(issued / kStages - 1) & 1u);
    if (kInFlight < kStages && issued >= kInFlight) {  // the stage kInFlight back has landed
      const int landed = issued - kInFlight;
      gemv::wait_stage(&full[landed % kStages], uint32_t(landed / kStages) & 1u);
    }
    T* stage = reinterpret_cast<T*>(ring + int64_t(slot) * stage_bytes);
    const ProductShape p = product_shape(a, fill.product);
    const int64_t row_bytes = int64_t(p.K) * sizeof(T);
#ifdef DSK_DECODE_ABLATE_LOADS
    (void)stage;
    (void)row_bytes;
    (void)read_once;
    ptx::mbarrier_arrive(&full[slot]);
#else
    ptx::mbarrier_arrive_expect_tx(ptx::sem_release, ptx::scope_cta, ptx::space_shared, &full[slot],
                                   uint32_t(fill.rows() * row_bytes * p.sources));
    for_each_copy(a, a.layers + fill.layer, fill.product, fill.first, fill.rows(), fill.stage_rows,
                  [&](int64_t at, const T* from, int64_t rows) {
                    copy_weights(stage + at * p.K, from, uint32_t(rows * row_bytes), &full[slot], read_once);
                  });
#endif
    fill.next(a, stage_bytes);
  }
}

// ---- what the consumers share

// Loads of what other blocks wrote in this launch: through L2 (another SM's L1 may hold a stale
// line; __ldg's path may too).
template <typename T>
__device__ __forceinline__ T load_shared_result(const T* p) {
  return __ldcg(p);
}

// Every consumer of every block has arrived (and their writes are visible to all).
__device__ void grid_barrier(unsigned* arrivals, unsigned& target) {
  consumers_sync();
#ifdef DSK_DECODE_ABLATE_BARRIERS
  return;
#endif
  target += gridDim.x;
  if (threadIdx.x == 0) {
    // A release reduction: the block's writes (ordered before it by the bar.sync above, which
    // release is cumulative over) are visible to whoever acquires the count that includes it.
    // (A fence and a relaxed add measured the same.)
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(arrivals) : "memory");
    unsigned seen;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(arrivals) : "memory");
    } while (seen < target);
  }
  consumers_sync();
}

// rows [N, K] of `from` (global, written in this launch) into x (shared).
template <typename T>
__device__ void load_rows(T* x, const T* from, int N, int K) {
  const int64_t chunks = int64_t(N) * K * int64_t(sizeof(T)) / 16;
  for (int64_t i = threadIdx.x; i < chunks; i += kConsumers)
    reinterpret_cast<uint4*>(x)[i] = __ldcg(reinterpret_cast<const uint4*>(from) + i);
}

// The consumers' walk over the stages, in the producer's order.
struct StageCursor {
  int taken = 0;
};

// Where a product's outputs go: the part written (out, bias, width) for each column.
template <typename T>
struct ProductOutputs {
  const DecodeLayersArgs<T>& a;
  int product;
  const T* bias[3] = {};

  __device__ ProductOutputs(const DecodeLayersArgs<T>& args, const DecodeLayer<T>* layer, int p) : a(args), product(p) {
    if (product == kQkv) {
      for (int part = 0; part < 3; part++) bias[part] = layer->qkv_bias[part];
    } else if (product != kGateUp) {
      bias[0] = product == kO ? layer->o_bias : layer->down_bias;
    }
  }
  __device__ bool accumulates() const { return product == kO || product == kDown; }
  // Column `column` of the product is column `local` of the returned part.
  __device__ GemvPart<T> part(int64_t column, int64_t& local) const {
    local = column;
    if (product == kGateUp) return {a.act, nullptr, nullptr, a.I};
    if (product != kQkv) return {a.x, nullptr, bias[0], a.C};
    const int hd = a.H * a.D, kvd = a.KVH * a.D;
    if (column < hd) return {a.q, nullptr, bias[0], hd};
    if (column < hd + kvd) {
      local = column - hd;
      return {a.k, nullptr, bias[1], kvd};
    }
    local = column - hd - kvd;
    return {a.v, nullptr, bias[2], kvd};
  }
};

// Waits for the consumers' next stage and returns it.
template <typename T>
__device__ __forceinline__ const T* take_stage(char* ring, int stage_bytes, uint64_t* full, const StageCursor& cursor,
                                               int l, int product) {
  (void)l;
  (void)product;
  const int slot = cursor.taken % kStages;
#ifdef DSK_DECODE_TRACE
  const long long waiting = clock64();
#endif
  gemv::wait_stage(&full[slot], uint32_t(cursor.taken / kStages) & 1u);
#ifdef DSK_DECODE_TRACE
  if (l == kTraceLayer && threadIdx.x == 0) trace_wait[blockIdx.x][product] += clock64() - waiting;
#endif
  return reinterpret_cast<const T*>(ring + int64_t(slot) * stage_bytes);
}

// This warp is done reading the cursor's stage: its slot may be refilled once every warp is.
__device__ __forceinline__ void release_stage(uint64_t* empty, const StageCursor& cursor) {
  __syncwarp();
  if (threadIdx.x % 32 == 0) ptx::mbarrier_arrive(&empty[cursor.taken % kStages]);
}

// One token's CUDA-core products, two rows a warp at a time: each input chunk is read once for
// both rows and their chains of FMAs interleave, and the column's residual or bias is requested
// before the dot, whose time then hides its latency. Each row's sum is dot_stage_row's, in its
// order, so the bits are the same. Pairs of a stage's rows go round robin over the warps, counting
// on from the product's previous stages so that every warp gets as many. On the H200 (llama-1b's
// 16 layers, one token, 2026-12-02) the products alone (no barriers, attention or weight loads)
// took 283 us a step against 335 a row at a time, and 262 with load_chunk_floats; the kernel 755
// against 798.
template <typename T, int SOURCES>
__device__ __forceinline__ void dot_stage_pair(float (&sums)[2][SOURCES], const T* stage, const T* x, int row0,
                                               int row1, int rows_per_stage, int K, int lane) {
  constexpr int kVector = 16 / sizeof(T);
  const int chunks = K / kVector;
#pragma unroll 4
  for (int k = lane; k < chunks; k += 32) {
    float xc[kVector], w[2][SOURCES][kVector];
    gemv::load_chunk_floats<T>(x + k * kVector, xc);
#pragma unroll
    for (int s = 0; s < SOURCES; s++) {
      gemv::load_chunk_floats<T>(stage + (int64_t(s) * rows_per_stage + row0) * K + k * kVector, w[0][s]);
      gemv::load_chunk_floats<T>(stage + (int64_t(s) * rows_per_stage + row1) * K + k * kVector, w[1][s]);
    }
#pragma unroll
    for (int v = 0; v < kVector; v++)
#pragma unroll
      for (int r = 0; r < 2; r++)
#pragma unroll
        for (int s = 0; s < SOURCES; s++) sums[r][s] += w[r][s][v] * xc[v];
  }
}

// What a column adds to its product before rounding: its bias and (o, down) the residual it
// accumulates into, loaded ahead of the dot.
template <typename T>
struct ColumnAddend {
  T* out = nullptr;
  const T* bias_at = nullptr;
  float residual = 0;
};

template <typename T, int SOURCES>
__device__ __forceinline__ ColumnAddend<T> column_addend(const ProductOutputs<T>& outputs, int64_t column) {
  int64_t local;
  const GemvPart<T> part = outputs.part(column, local);
  ColumnAddend<T> addend;
  addend.out = part.out + local;
  if (SOURCES == 1 && part.bias) addend.bias_at = part.bias + local;
  if (outputs.accumulates()) addend.residual = to_float(*addend.out);
  return addend;
}

// consume_product_simt for one token, a pair of rows a warp (dot_stage_pair).
template <typename T, int SOURCES>
__device__ void consume_product_pairs(const DecodeLayersArgs<T>& a, const DecodeLayer<T>* layer, int l, int product,
                                      const T* x, char* ring, int stage_bytes, uint64_t* full, uint64_t* empty,
                                      StageCursor& cursor) {
  const ProductShape p = product_shape(a, product);
  const int R = rows_per_stage<T>(p, stage_bytes);
  const ColumnRange range = block_columns(p.columns);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const ProductOutputs<T> outputs(a, layer, product);
  int pairs_before = 0;
  for (int64_t first = range.begin; first < range.end; first += R, cursor.taken++) {
    const T* stage = take_stage<T>(ring, stage_bytes, full, cursor, l, product);
    const int rows = int(min(int64_t(R), range.end - first)), pairs = (rows + 1) / 2;
#ifdef DSK_DECODE_ABLATE_PRODUCTS
    for (int pair = pairs; pair < pairs; pair++) {
#else
    for (int pair = (warp - pairs_before % kConsumerWarps + kConsumerWarps) % kConsumerWarps; pair < pairs;
         pair += kConsumerWarps) {
#endif
      const int row0 = 2 * pair, row1 = min(row0 + 1, rows - 1);
      const ColumnAddend<T> addend0 = column_addend<T, SOURCES>(outputs, first + row0);
      const ColumnAddend<T> addend1 = row1 != row0 ? column_addend<T, SOURCES>(outputs, first + row1) : addend0;
      float sums[2][SOURCES] = {};
      if (row1 != row0) {
        dot_stage_pair<T, SOURCES>(sums, stage, x, row0, row1, R, p.K, lane);
      } else {  // a lone last row
        float row_sums[SOURCES][kGemvMaxRows] = {};
        gemv::dot_stage_row<T, SOURCES, 1>(row_sums, stage, x, row0, R, 1, p.K, lane);
#pragma unroll
        for (int s = 0; s < SOURCES; s++) sums[0][s] = row_sums[s][0];
      }
      float totals[2][SOURCES];
#pragma unroll
      for (int r = 0; r < 2; r++)
#pragma unroll
        for (int s = 0; s < SOURCES; s++) totals[r][s] = gemv::warp_sum(sums[r][s]);
      const bool adds = outputs.accumulates();
      if (lane == 0) {
        *addend0.out = gemv::column_output<T, SOURCES>(totals[0], addend0.bias_at, adds, addend0.residual);
        if (row1 != row0)
          *addend1.out = gemv::column_output<T, SOURCES>(totals[1], addend1.bias_at, adds, addend1.residual);
      }
    }
    pairs_before += pairs;
    release_stage(empty, cursor);
  }
}

// Dots this block's columns of a product with the input rows x, writing each column as the op
// would (write_column: the product + bias, += the residual, or SwiGLU of gate and up). The rows go
// round robin over the warps across stages, so that stages of fewer rows than warps (gate/up,
// down) still keep every warp busy. The outputs are picked without arrays: an array indexed at
// run time would live in local memory, which the ring leaves almost no L1 to cache. ROWS is a.N,
// known at compile time (dot_stage_row). The CUDA-core path of steps of 2 to 4 tokens: fp32, and
// bf16 widths that are not whole tiles (consume_product_mma); one token takes the pairs above.
template <typename T, int SOURCES, int ROWS>
__device__ void consume_product_simt(const DecodeLayersArgs<T>& a, const DecodeLayer<T>* layer, int l, int product,
                                     const T* x, char* ring, int stage_bytes, uint64_t* full, uint64_t* empty,
                                     StageCursor& cursor) {
  if constexpr (ROWS == 1)
    return consume_product_pairs<T, SOURCES>(a, layer, l, product, x, ring, stage_bytes, full, empty, cursor);
  const ProductShape p = product_shape(a, product);
  const int R = rows_per_stage<T>(p, stage_bytes);
  const ColumnRange range = block_columns(p.columns);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const ProductOutputs<T> outputs(a, layer, product);
  for (int64_t first = range.begin; first < range.end; first += R, cursor.taken++) {
    const T* stage = take_stage<T>(ring, stage_bytes, full, cursor, l, product);
    const int rows = int(min(int64_t(R), range.end - first));
    const int offset = int((first - range.begin) % kConsumerWarps);
#ifdef DSK_DECODE_ABLATE_PRODUCTS
    for (int row = rows; row < rows; row++) {
#else
    for (int row = (warp - offset + kConsumerWarps) % kConsumerWarps; row < rows; row += kConsumerWarps) {
#endif
      float sums[SOURCES][kGemvMaxRows] = {};
      gemv::dot_stage_row<T, SOURCES, ROWS>(sums, stage, x, row, R, ROWS, p.K, lane);
      int64_t local;
      const GemvPart<T> part = outputs.part(first + row, local);
      gemv::write_column<T, SOURCES>(part, sums, local, a.N, outputs.accumulates(), lane);
    }
    release_stage(empty, cursor);
  }
}

// The tensor-core path (bf16 steps of 2 to 4 tokens, every width a whole number of kTileK): a
// stage's rows go in tiles of kTileColumns, each one mma.m16n8k16's n, with the input rows as its m
// (rows past N zero). The warps split the K of every tile (a warp its kTileK blocks
// [w * B / W, (w + 1) * B / W)), so that every warp works on every stage; their partial sums meet
// in shared memory (`reduce`) a group of kTileGroup tiles at a time, where warp i adds tile i's in
// warp order and writes its columns as write_column would.
// Its cost hardly depends on N, where the CUDA-core path's grows with it: on the H200 (llama-1b's
// 16 layers, 2026-12-02) 4 tokens took 976-992 us a step against 1337 (groups of 1, 2, 4 or 8
// tiles within 1.5% of each other); one token 781-797 us against the CUDA cores' 754-756 (their
// pairs of rows), and 375 against 262 us with the barriers, attention and weight loads left out,
// so one token stays on the CUDA cores.
//
// Fragments (PTX's m16n8k16 layouts; lane = 4 g + t): a lane loads the 16 bytes at elements
// [8t, 8t + 8) of a kTileK block of weight row g and of input row g, and gives elements 8t..8t+3
// to one mma (as its k = 2t, 2t+1, 2t+8, 2t+9) and 8t+4..8t+7 to the other. A and B take the same
// k order, so the dot is that of the rows, in another summation order than the CUDA-core path's.
constexpr int kTileColumns = 8, kTileK = 32;
// Tiles whose partial sums wait for one block barrier: the warps dot kTileGroup tiles one after
// the other, each into its own slot of `reduce`, then meet once; warp i finishes tile i of the
// group while the others start the next group (which writes the other half).
#ifndef DSK_DECODE_TILE_GROUP
#define DSK_DECODE_TILE_GROUP 4
#endif
constexpr int kTileGroup = DSK_DECODE_TILE_GROUP;
// The fewest tokens a step must have to take the tensor-core path.
#ifndef DSK_DECODE_MMA_MIN_ROWS
#define DSK_DECODE_MMA_MIN_ROWS 2
#endif
constexpr int kMmaMinRows = DSK_DECODE_MMA_MIN_ROWS;
static_assert(kTileGroup <= kConsumerWarps, "a warp finishes each tile of a group");
constexpr int kTileFloats = kConsumerWarps * 2 * kGemvMaxRows * kTileColumns;  // a tile's partials, up to 2 sources
constexpr int kReduceBytes = 2 * kTileGroup * kTileFloats * int(sizeof(float));

template <int SOURCES, int ROWS>
__device__ void consume_product_mma(const DecodeLayersArgs<bf16>& a, const DecodeLayer<bf16>* layer, int l,
                                    int product, const bf16* x, char* ring, int stage_bytes, uint64_t* full,
                                    uint64_t* empty, float* reduce, StageCursor& cursor) {
  const ProductShape p = product_shape(a, product);
  const int R = rows_per_stage<bf16>(p, stage_bytes);
  const ColumnRange range = block_columns(p.columns);
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32, g = lane / 4, t = lane % 4;
  const ProductOutputs<bf16> outputs(a, layer, product);
  const int k_blocks = p.K / kTileK;
#ifdef DSK_DECODE_ABLATE_PRODUCTS
  const int k_begin = 0, k_end = 0;
#else
  const int k_begin = warp * k_blocks / kConsumerWarps, k_end = (warp + 1) * k_blocks / kConsumerWarps;
#endif
  const bf16* x_lane = x + int64_t(min(g, ROWS - 1)) * p.K + t * 8;
  const int n = lane / kTileColumns, column = lane % kTileColumns;
  // The group's tiles: their first column in the product and their width (this warp finishes
  // tile `warp` of a group, if it has one).
  int64_t finish_first = 0;
  int finish_width = 0;
  int in_group = 0, groups = 0;
  // Meets the other warps and finishes this warp's tile of the group that just ended.
  auto close_group = [&]() {
    consumers_sync();
    const float* partials = reduce + ((groups % 2) * kTileGroup + warp) * kTileFloats;
    if (warp < in_group && n < ROWS && column < finish_width) {
      float totals[SOURCES];
#pragma unroll
      for (int s = 0; s < SOURCES; s++) {
        totals[s] = 0;
#pragma unroll
        for (int w = 0; w < kConsumerWarps; w++)
          totals[s] += partials[((w * SOURCES + s) * kGemvMaxRows + n) * kTileColumns + column];
      }
      int64_t local;
      const GemvPart<bf16> part = outputs.part(finish_first + column, local);
      bf16* out = part.out + int64_t(n) * part.OC + local;
      const bf16* bias_at = SOURCES == 1 && part.bias ? part.bias + local : nullptr;
      const bool adds = outputs.accumulates();
      *out = gemv::column_output<bf16, SOURCES>(totals, bias_at, adds, adds ? to_float(*out) : 0.0f);
    }
    in_group = 0;
    groups++;
  };
  for (int64_t first = range.begin; first < range.end; first += R, cursor.taken++) {
    const bf16* stage = take_stage<bf16>(ring, stage_bytes, full, cursor, l, product);
    const int rows = int(min(int64_t(R), range.end - first));
    for (int tile = 0; tile < rows; tile += kTileColumns) {
      // Lanes past the stage's rows read its last one; their columns are dropped.
      const bf16* w_lane = stage + int64_t(tile + min(g, rows - tile - 1)) * p.K + t * 8;
      float sums[SOURCES][2][4] = {};  // two accumulators a source: two chains of mma, not one
      for (int kb = k_begin; kb < k_end; kb++) {
        uint4 in = {0, 0, 0, 0};
        if (g < ROWS) in = *reinterpret_cast<const uint4*>(x_lane + kb * kTileK);
        const uint32_t low[4] = {in.x, 0, in.y, 0}, high[4] = {in.z, 0, in.w, 0};
#pragma unroll
        for (int s = 0; s < SOURCES; s++) {
          const uint4 w = *reinterpret_cast<const uint4*>(w_lane + int64_t(s) * R * p.K + kb * kTileK);
          mma_bf16(sums[s][0], low, w.x, w.y);
          mma_bf16(sums[s][1], high, w.z, w.w);
        }
      }
      if (tile + kTileColumns >= rows) release_stage(empty, cursor);  // the stage's last read
      // c0, c1 of lane (g, t): input row g, columns 2t and 2t + 1 of the tile.
      float* partials = reduce + ((groups % 2) * kTileGroup + in_group) * kTileFloats;
      if (g < ROWS) {
#pragma unroll
        for (int s = 0; s < SOURCES; s++)
          *reinterpret_cast<float2*>(partials + ((warp * SOURCES + s) * kGemvMaxRows + g) * kTileColumns + 2 * t) =
              make_float2(sums[s][0][0] + sums[s][1][0], sums[s][0][1] + sums[s][1][1]);
      }
      if (in_group == warp) {
        finish_first = first + tile;
        finish_width = min(kTileColumns, rows - tile);
      }
      if (++in_group == kTileGroup) close_group();
    }
  }
  if (in_group > 0) close_group();
}

template <typename T, int SOURCES, int ROWS>
__device__ void consume_product(const DecodeLayersArgs<T>& a, const DecodeLayer<T>* layer, int l, int product,
                                const T* x, char* ring, int stage_bytes, uint64_t* full, uint64_t* empty,
                                float* reduce, StageCursor& cursor) {
  if constexpr (std::is_same_v<T, bf16> && ROWS >= kMmaMinRows) {
    if (product_shape(a, product).K % kTileK == 0)
      return consume_product_mma<SOURCES, ROWS>(a, layer, l, product, x, ring, stage_bytes, full, empty, reduce,
                                                cursor);
  }
  (void)reduce;
  consume_product_simt<T, SOURCES, ROWS>(a, layer, l, product, x, ring, stage_bytes, full, empty, cursor);
}

// x [N, K] (shared) in place to RMSNorm(x) * weight, rmsnorm_forward's bits (gemv_stream.cuh).
template <typename T>
__device__ void normalize_input(T* x, const T* weight, float eps, int N, int K, float* inverse_rms) {
  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  if (warp < N) {
    const float r = gemv::row_inverse_rms<T>(x + int64_t(warp) * K, K, eps, lane);
    if (lane == 0) inverse_rms[warp] = r;
  }
  consumers_sync();
  gemv::scale_rows<T>(x, weight, inverse_rms, N, K, int(threadIdx.x), kConsumers);
  consumers_sync();
}

// ---- attention

// Partitions of each (token, head)'s keys: enough items to give every block one.
__host__ __device__ inline int attention_partitions(int N, int H, int blocks) {
  return max(1, min(kMaxPartitions, blocks / max(1, N * H)));
}

// The sum of `value` over the `group` lanes (a power of two) of this lane's group.
__device__ __forceinline__ float group_sum(float value, int group) {
  const unsigned mask = group == 32 ? 0xffffffffu : ((1u << group) - 1) << (int(threadIdx.x) % 32 / group * group);
  for (int offset = group / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(mask, value, offset);
  return value;
}

// One key position's row of a head in the pool.
template <typename T>
__device__ __forceinline__ const T* pool_row(const T* pool, const DecodeLayersArgs<T>& a, int sequence, int key,
                                             int kv_head) {
  const int block = a.block_tables[int64_t(sequence) * a.table_width + key / a.block_size];
  return pool + (int64_t(block) * a.block_size + key % a.block_size) * a.KVH * a.D + int64_t(kv_head) * a.D;
}

// The last of a (token, head)'s partition items to finish merges their partials, in partition
// order whichever block it is (so the bits do not depend on timing), and writes the head's output
// rounded to T (paged_attention.cuh merges alike). Its loads are all issued before their first
// use: one round trip to L2, not one each.
template <typename T>
__device__ void merge_partitions(const DecodeLayersArgs<T>& a, int n, int h, int partitions) {
  const int D = a.D;
  const float* part = a.partials + (int64_t(n) * a.H + h) * partitions * (D + 2);
  for (int d = int(threadIdx.x); d < D; d += kConsumers) {
    float maxima[kMaxPartitions], sums[kMaxPartitions], outs[kMaxPartitions];
#pragma unroll
    for (int p = 0; p < kMaxPartitions; p++) {
      if (p >= partitions) continue;
      maxima[p] = __ldcg(part + p * (D + 2));
      sums[p] = __ldcg(part + p * (D + 2) + 1);
      outs[p] = __ldcg(part + p * (D + 2) + 2 + d);
    }
    float most = -INFINITY;
#pragma unroll
    for (int p = 0; p < kMaxPartitions; p++)
      if (p < partitions) most = fmaxf(most, maxima[p]);
    float sum = 0, total = 0;
#pragma unroll
    for (int p = 0; p < kMaxPartitions; p++) {
      if (p >= partitions) continue;
      const float w = maxima[p] == -INFINITY ? 0.0f : expf(maxima[p] - most);
      sum += sums[p] * w;
      total += outs[p] * w;
    }
    a.attention[(int64_t(n) * a.H + h) * D + d] = from_float<T>(total / sum);
  }
}

// A lane's share (its 16-byte chunk) of kKeysInFlight keys' rows, key0, key0 + streams, ...:
// requested together, ahead of their use. The new key (at `position`) is not in the pool yet:
// the caller takes it from shared memory.
template <typename T>
struct KeyBatch {
  static constexpr int V = 16 / sizeof(T);
  Chunk<T, V> k[kKeysInFlight], v[kKeysInFlight];
};

template <typename T>
__device__ __forceinline__ void load_keys(KeyBatch<T>& batch, const DecodeLayersArgs<T>& a, const T* k_pool,
                                          const T* v_pool, int sequence, int kv_head, int key0, int last, int position,
                                          int streams, int chunk) {
  constexpr int V = KeyBatch<T>::V;
#pragma unroll
  for (int u = 0; u < kKeysInFlight; u++) {
    const int key = key0 + u * streams;
    if (key < last && key != position) {
      batch.k[u] = gemv::load_aligned_chunk<T, V>(pool_row(k_pool, a, sequence, key, kv_head) + chunk * V);
      batch.v[u] = gemv::load_aligned_chunk<T, V>(pool_row(v_pool, a, sequence, key, kv_head) + chunk * V);
    }
  }
}

// Item (n, h, partition): softmax(q k^T * scale) v over the partition's keys of token n, head h,
// as (max, sum, unnormalized output) in partials. Lane groups of D / V lanes (a 16-byte chunk
// each) take the keys round robin, each keeping an online softmax; they merge in shared memory.
// The partition with the new key takes it (rotated, and its value) from the step's k and v, and
// the first query head of each key head writes both to the pool, as rope_paged_kv_write would.
// A lane's first keys are requested before the rotation, whose latency then hides theirs.
template <typename T>
__device__ void attention_item(const DecodeLayersArgs<T>& a, const DecodeLayer<T>* layer, int n, int h, int partition,
                               int partitions, float* work) {
  constexpr int V = 16 / sizeof(T);
  const int D = a.D, group = D / V, groups = 32 / group, streams = kConsumerWarps * groups;
  float* q_rot = work;
  float* k_new = q_rot + D;
  float* v_new = k_new + D;
  float* stream_max = v_new + D;
  float* stream_sum = stream_max + streams;
  float* stream_out = stream_sum + streams;  // [streams, D]
  T* const k_pool = layer->k_pool;
  T* const v_pool = layer->v_pool;
  const int position = a.positions[n], keys = position + 1, sequence = a.sequence[n];
  const int kv_head = h / (a.H / a.KVH);
  const int first = int(int64_t(partition) * keys / partitions), last = int(int64_t(partition + 1) * keys / partitions);
  const int lane = int(threadIdx.x) % 32, chunk = lane % group;
  const int stream = int(threadIdx.x) / 32 * groups + lane / group;
  KeyBatch<T> batch;
  load_keys(batch, a, k_pool, v_pool, sequence, kv_head, first + stream, last, position, streams, chunk);

  const bool holds_new = last == keys;
  const bool writes_pool = holds_new && h % (a.H / a.KVH) == 0;
  const int half = D / 2;
  for (int i = int(threadIdx.x); i < half; i += kConsumers) {
    const PairRotation r = pair_rotation(a.rope, position, i, half, 1.0f);
    const T* qh = a.q + (int64_t(n) * a.H + h) * D;
    const float2 q2 = rotate_pair(to_float(load_shared_result(qh + r.ia)), to_float(load_shared_result(qh + r.ib)), r);
    q_rot[r.ia] = to_float(from_float<T>(q2.x));
    q_rot[r.ib] = to_float(from_float<T>(q2.y));
    if (!holds_new) continue;
    const int64_t kv = int64_t(n) * a.KVH * D + int64_t(kv_head) * D;
    const float2 k2 = rotate_pair(to_float(load_shared_result(a.k + kv + r.ia)),
                                  to_float(load_shared_result(a.k + kv + r.ib)), r);
    const T ka = from_float<T>(k2.x), kb = from_float<T>(k2.y);
    const T va = load_shared_result(a.v + kv + r.ia), vb = load_shared_result(a.v + kv + r.ib);
    k_new[r.ia] = to_float(ka);
    k_new[r.ib] = to_float(kb);
    v_new[r.ia] = to_float(va);
    v_new[r.ib] = to_float(vb);
    if (writes_pool) {
      const int64_t slot_row = int64_t(a.slots[n]) * a.KVH * D + int64_t(kv_head) * D;
      k_pool[slot_row + r.ia] = ka;
      k_pool[slot_row + r.ib] = kb;
      v_pool[slot_row + r.ia] = va;
      v_pool[slot_row + r.ib] = vb;
    }
  }
  consumers_sync();

  float q[V];
#pragma unroll
  for (int v = 0; v < V; v++) q[v] = q_rot[chunk * V + v];
  float running_max = -INFINITY, running_sum = 0, out[V] = {};
  for (int key0 = first + stream; key0 < last; key0 += kKeysInFlight * streams) {
    const KeyBatch<T> current = batch;
    load_keys(batch, a, k_pool, v_pool, sequence, kv_head, key0 + kKeysInFlight * streams, last, position, streams,
              chunk);
#pragma unroll
    for (int u = 0; u < kKeysInFlight; u++) {
      const int key = key0 + u * streams;
      if (key >= last) continue;
      float k[V], val[V];
#pragma unroll
      for (int v = 0; v < V; v++) {
        k[v] = key == position ? k_new[chunk * V + v] : to_float(current.k[u].values[v]);
        val[v] = key == position ? v_new[chunk * V + v] : to_float(current.v[u].values[v]);
      }
      float score = 0;
#pragma unroll
      for (int v = 0; v < V; v++) score += q[v] * k[v];
      score = group_sum(score, group) * a.scale;
      const float new_max = fmaxf(running_max, score);
      const float keep = expf(running_max - new_max), weight = expf(score - new_max);
      running_sum = running_sum * keep + weight;
#pragma unroll
      for (int v = 0; v < V; v++) out[v] = out[v] * keep + weight * val[v];
      running_max = new_max;
    }
  }
#pragma unroll
  for (int v = 0; v < V; v++) stream_out[int64_t(stream) * D + chunk * V + v] = out[v];
  if (chunk == 0) {
    stream_max[stream] = running_max;
    stream_sum[stream] = running_sum;
  }
  consumers_sync();
  float* partial = a.partials + ((int64_t(n) * a.H + h) * partitions + partition) * (D + 2);
  for (int d = int(threadIdx.x); d < D; d += kConsumers) {
    float most = -INFINITY;
    for (int s = 0; s < streams; s++) most = fmaxf(most, stream_max[s]);
    float sum = 0, total = 0;
    for (int s = 0; s < streams; s++) {
      const float w = stream_max[s] == -INFINITY ? 0.0f : expf(stream_max[s] - most);
      sum += stream_sum[s] * w;
      total += stream_out[int64_t(s) * D + d] * w;
    }
    partial[2 + d] = total;
    if (d == 0) {
      partial[0] = most;
      partial[1] = sum;
    }
  }
  consumers_sync();
  unsigned* turn = a.counters + kTurnCounters + n * a.H + h;
  int* merges = reinterpret_cast<int*>(stream_max);  // the streams' maxima are read: reuse
  if (threadIdx.x == 0) {
    __threadfence();  // this partial, before the arrival that may let another block read it
    *merges = atomicAdd(turn, 1u) == unsigned(partitions - 1);
  }
  consumers_sync();
  if (*merges) {
    __threadfence();
    merge_partitions(a, n, h, partitions);
    if (threadIdx.x == 0) *turn = 0;  // for the next layer and launch: every item of this head has arrived
  }
  consumers_sync();  // the work area is the next item's
}

// ---- the kernel

// The residual stream's rows into x (shared), RMSNorm'd with `weight`.
template <typename T>
__device__ void load_normalized(T* x, const DecodeLayersArgs<T>& a, const T* weight, float* inverse_rms) {
  load_rows(x, a.x, a.N, a.C);
  consumers_sync();
  normalize_input<T>(x, weight, a.eps, a.N, a.C, inverse_rms);
}

template <typename T, int ROWS>
__device__ void consume(const DecodeLayersArgs<T>& a, char* ring, int stage_bytes, uint64_t* full, uint64_t* empty,
                        float* inverse_rms, char* work, float* reduce) {
  T* x = reinterpret_cast<T*>(work);
  const int partitions = attention_partitions(a.N, a.H, int(gridDim.x));
  const int items = a.N * a.H * partitions;
  StageCursor cursor;
  unsigned target = 0;
  for (int l = 0; l < a.layer_count; l++) {
    const DecodeLayer<T>* layer = a.layers + l;
    DSK_TRACE(l, 0);
    if (l > 0) grid_barrier(a.counters, target);  // x is the previous layer's
    DSK_TRACE(l, 1);
    load_normalized(x, a, layer->input_norm, inverse_rms);
    DSK_TRACE(l, 2);
    consume_product<T, 1, ROWS>(a, layer, l, kQkv, x, ring, stage_bytes, full, empty, reduce, cursor);
    DSK_TRACE(l, 3);
    grid_barrier(a.counters, target);
    DSK_TRACE(l, 4);
#ifndef DSK_DECODE_ABLATE_ATTENTION
    for (int item = int(blockIdx.x); item < items; item += int(gridDim.x))
      attention_item(a, layer, item / (a.H * partitions), item / partitions % a.H, item % partitions, partitions,
                     reinterpret_cast<float*>(work));
#endif
    DSK_TRACE(l, 5);
    grid_barrier(a.counters, target);
    DSK_TRACE(l, 6);
    load_rows(x, a.attention, a.N, a.H * a.D);
    consumers_sync();
    DSK_TRACE(l, 7);
    consume_product<T, 1, ROWS>(a, layer, l, kO, x, ring, stage_bytes, full, empty, reduce, cursor);
    DSK_TRACE(l, 8);
    grid_barrier(a.counters, target);
    DSK_TRACE(l, 9);
    load_normalized(x, a, layer->post_norm, inverse_rms);
    DSK_TRACE(l, 10);
    consume_product<T, 2, ROWS>(a, layer, l, kGateUp, x, ring, stage_bytes, full, empty, reduce, cursor);
    DSK_TRACE(l, 11);
    grid_barrier(a.counters, target);
    DSK_TRACE(l, 12);
    load_rows(x, a.act, a.N, a.I);
    consumers_sync();
    DSK_TRACE(l, 13);
    consume_product<T, 1, ROWS>(a, layer, l, kDown, x, ring, stage_bytes, full, empty, reduce, cursor);
    DSK_TRACE(l, 14);
  }
  consumers_sync();
  // The last block out sets the counters back: every block has passed every barrier by then.
  if (threadIdx.x == 0 && atomicAdd(a.counters + 1, 1u) == gridDim.x - 1) {
    atomicExch(a.counters, 0u);
    atomicExch(a.counters + 1, 0u);
  }
}

// ROWS: the step's tokens, a.N (1 to kGemvMaxRows), a kernel each.
template <typename T, int ROWS>
__global__ void __launch_bounds__(kThreads, 1)
    decode_layers_kernel(const __grid_constant__ DecodeLayersArgs<T> a, int work_bytes, int stage_bytes) {
#if __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) char shared[];
  uint64_t* full = reinterpret_cast<uint64_t*>(shared);
  uint64_t* empty = full + kStages;
  char* work = shared + kBarrierBytes;
  float* reduce = reinterpret_cast<float*>(work + work_bytes);
  char* ring = work + work_bytes + kReduceBytes;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; s++) {
      ptx::mbarrier_init(&full[s], 1);
      ptx::mbarrier_init(&empty[s], kConsumerWarps);
    }
    ptx::fence_mbarrier_init(ptx::sem_release, ptx::scope_cluster);
  }
  __syncthreads();
  if (threadIdx.x >= kConsumers) {
    if (threadIdx.x == kConsumers) produce<T, ROWS>(a, ring, stage_bytes, full, empty);
    return;
  }
  consume<T, ROWS>(a, ring, stage_bytes, full, empty, reinterpret_cast<float*>(shared + kNormOffset), work, reduce);
#endif
}

// ---- the launch

// Bytes of the work area: the input rows of the widest product, or one attention item's scratch.
int work_area_bytes(int N, int C, int H, int D, int I, int element_bytes) {
  const int widest = std::max({C, H * D, I});
  const int group = D / (16 / element_bytes), streams = kConsumerWarps * (32 / group);
  const int attention = (3 * D + 2 * streams + streams * D) * int(sizeof(float));
  const int rows = N * widest * element_bytes;
  return (std::max(rows, attention) + 127) / 128 * 128;
}

// Whether the shape fits the kernel: whole 16-byte chunks everywhere, a key's chunks in at most a
// warp, the heads in whole groups.
bool shape_fits(int N, int C, int H, int KVH, int D, int I, int element_bytes) {
  const int V = 16 / element_bytes;
  if (N < 1 || N > kGemvMaxRows || H <= 0 || H > kDecodeMaxHeads || KVH <= 0 || H % KVH != 0 || D <= 0 ||
      D % (2 * V) != 0)
    return false;
  const int group = D / V;
  if (group > 32 || (group & (group - 1)) != 0) return false;
  for (int K : {C, H * D, I})
    if (K <= 0 || (int64_t(K) * element_bytes) % 16 != 0) return false;
  return true;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The stages' size for a shape on this device: the shared memory a block may have, less the
// barriers and the work area, in kStages; 0 when a stage would not hold a row of every product.
template <typename T>
int stage_size(const DecodeLayersArgs<T>& a, int work_bytes) {
  const DeviceTraits& traits = device_traits();
  const int64_t ring = int64_t(traits.shared_per_block_optin) - kBarrierBytes - work_bytes - kReduceBytes;
  const int stage = int(ring / kStages / 128 * 128);
  for (int product = 0; product < kProducts; product++)
    if (stage <= 0 || rows_per_stage<T>(product_shape(a, product), stage) < 1) return 0;
  return stage;
}

}  // namespace

size_t decode_layers_partial_floats(int N, int H, int D) {
  const int partitions = attention_partitions(N, H, device_traits().multiprocessors);
  return size_t(N) * H * partitions * (D + 2);
}

template <typename T>
bool decode_layers_forward(const DecodeLayersArgs<T>& a, const DecodeLayer<T>* host_layers, cudaStream_t stream) {
  const DeviceTraits& traits = device_traits();
  if (traits.major < 9 || a.layer_count <= 0 || !shape_fits(a.N, a.C, a.H, a.KVH, a.D, a.I, int(sizeof(T))))
    return false;
  for (int l = 0; l < a.layer_count; l++) {
    const DecodeLayer<T>& layer = host_layers[l];
    for (const void* w : {(const void*)layer.qkv[0], (const void*)layer.qkv[1], (const void*)layer.qkv[2],
                          (const void*)layer.o, (const void*)layer.gate, (const void*)layer.up, (const void*)layer.down,
                          (const void*)layer.input_norm, (const void*)layer.post_norm})
      if (!aligned16(w)) return false;
  }
  for (const void* p : {(const void*)a.x, (const void*)a.act, (const void*)a.q, (const void*)a.k, (const void*)a.v,
                        (const void*)a.attention})
    if (!aligned16(p)) return false;
  const int work_bytes = work_area_bytes(a.N, a.C, a.H, a.D, a.I, int(sizeof(T)));
  const int stage_bytes = stage_size(a, work_bytes);
  if (stage_bytes == 0) return false;
  const size_t shared_bytes = size_t(kBarrierBytes) + work_bytes + kReduceBytes + size_t(kStages) * stage_bytes;
  static_assert(kGemvMaxRows == 4, "a kernel for each token count");
  void (*const kernels[])(DecodeLayersArgs<T>, int, int) = {decode_layers_kernel<T, 1>, decode_layers_kernel<T, 2>,
                                                            decode_layers_kernel<T, 3>, decode_layers_kernel<T, 4>};
  const auto kernel = kernels[a.N - 1];
  // One block an SM must fit (gemv_stream.cuh's cached occupancy query, which also lets the
  // kernel have all the shared memory a block may).
  if (gemv::one_wave_blocks(reinterpret_cast<const void*>(kernel), kThreads, shared_bytes) < 1) return false;
  // Cooperative: every block resident at once, which the grid barriers need (or the launch fails).
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(unsigned(traits.multiprocessors));
  config.blockDim = dim3(unsigned(kThreads));
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  DSK_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, a, work_bytes, stage_bytes));
  return true;
}

#ifdef DSK_DECODE_TRACE
void decode_layers_print_trace() {
  static long long clocks[kTraceBlocks][kTraceEvents], waits[kTraceBlocks][kProducts];
  DSK_CUDA_CHECK(cudaMemcpyFromSymbol(clocks, trace_clock, sizeof(clocks)));
  DSK_CUDA_CHECK(cudaMemcpyFromSymbol(waits, trace_wait, sizeof(waits)));
  int khz = 0;
  DSK_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device_traits().device));
  const int blocks = device_traits().multiprocessors;
  std::printf("  layer %d, us per phase (mean / worst block; SM clock %.2f GHz):\n", kTraceLayer, khz / 1e6);
  double total = 0;
  for (int e = 1; e <= 14; e++) {
    double sum = 0, worst = 0;
    for (int b = 0; b < blocks; b++) {
      const double us = double(clocks[b][e] - clocks[b][e - 1]) / (khz * 1e-3);
      sum += us;
      worst = std::max(worst, us);
    }
    total += sum / blocks;
    std::printf("    %-20s %7.2f %7.2f\n", kTraceNames[e], sum / blocks, worst);
  }
  std::printf("    %-20s %7.2f\n", "layer", total);
  const char* products[kProducts] = {"q/k/v", "o", "gate/up", "down"};
  for (int p = 0; p < kProducts; p++) {
    double sum = 0;
    for (int b = 0; b < blocks; b++) sum += double(waits[b][p]) / (khz * 1e-3);
    std::printf("    waiting for %-8s stages %7.2f us a block (over every timed launch)\n", products[p], sum / blocks);
  }
}
#endif

template bool decode_layers_forward<float>(const DecodeLayersArgs<float>&, const DecodeLayer<float>*, cudaStream_t);
template bool decode_layers_forward<bf16>(const DecodeLayersArgs<bf16>&, const DecodeLayer<bf16>*, cudaStream_t);

}  // namespace dsk::kernels::cuda
