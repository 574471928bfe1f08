// paged_kv_write and paged_attention_forward (kernels/cuda/paged_attention.cu) against
// kernels/cpu/paged_attention.cpp on ragged batches: decodes and prefill chunks mixed, block
// tables scattered over the pool, GQA / MHA / MLA's absorbed shape (one K/V head, values = the
// first Dv columns of the key rows), odd head sizes (the scalar path), and long contexts with few
// queries (the key partitions and their merge); batch-1 and small-batch decodes over short and long
// contexts (1, 31, 130, 1000 keys), whose keys are split over partitions of 128, and decodes whose
// grid is sized for a far longer context than they see (a CUDA graph's replays: most partitions
// empty).
// Tolerances: the write is exact (a copy); attention ||gpu - cpu|| / ||cpu|| <= 1e-5 in fp32 and
// 1e-2 in bf16 (inputs rounded to bf16 on both sides; the GPU rounds its output to bf16).
#include <algorithm>
#include <numeric>

#include "core/error.hpp"
#include "cpu/kernels.hpp"
#include "cuda/paged_attention.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

struct Case {
  const char* name;
  int H, KVH, Dk, Dv, block_size;
  std::vector<int> lengths;  // each sequence's total length after the step
  std::vector<int> news;     // its new tokens in the step (1: decode)
  bool mla = false;          // v is the k pool, v_stride = k_stride
  int grid_keys = 0;         // > 0: max_keys as a graph replay passes it (the plan's longest)
};

// The step's per-token arrays and the block tables, over a shuffled pool.
struct Ragged {
  std::vector<int32_t> sequence, positions, tables;
  int N = 0, blocks = 0, max_blocks = 0, max_keys = 0;
};

Ragged make_ragged(const Case& c, uint64_t seed) {
  Ragged r;
  r.max_blocks = (c.grid_keys + c.block_size - 1) / c.block_size;
  for (int length : c.lengths) r.max_blocks = std::max(r.max_blocks, (length + c.block_size - 1) / c.block_size);
  r.blocks = r.max_blocks * int(c.lengths.size()) + 3;
  std::vector<int32_t> pool(size_t(r.blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(pool.begin(), pool.end(), rng);
  r.tables.assign(pool.begin(), pool.begin() + int64_t(r.max_blocks) * c.lengths.size());
  for (size_t s = 0; s < c.lengths.size(); s++)
    for (int t = c.lengths[s] - c.news[s]; t < c.lengths[s]; t++) {
      r.sequence.push_back(int32_t(s));
      r.positions.push_back(t);
      r.max_keys = std::max(r.max_keys, t + 1);
    }
  r.N = int(r.sequence.size());
  r.max_keys = std::max(r.max_keys, c.grid_keys);
  return r;
}

template <typename T>
void check_case(const Case& c, uint64_t seed) {
  CAPTURE(c.name);
  const Ragged r = make_ragged(c, seed);
  const int k_stride = c.KVH * c.Dk, v_stride = c.mla ? k_stride : c.KVH * c.Dv;
  const size_t slots = size_t(r.blocks) * c.block_size;
  const cpu::PagedAttentionShape s{r.N, c.H, c.KVH, c.Dk, c.Dv, c.H * c.Dk, k_stride, v_stride, c.block_size,
                                   r.max_blocks, 1.0f / std::sqrt(float(c.Dk)), r.max_keys};
  const auto q = rounded<T>(random_floats(size_t(r.N) * c.H * c.Dk, seed + 1));
  const auto k = rounded<T>(random_floats(slots * k_stride, seed + 2));
  const auto v = rounded<T>(random_floats(slots * v_stride, seed + 3));
  std::vector<float> want(size_t(r.N) * c.H * c.Dv);
  cpu::paged_attention_forward(want.data(), q.data(), k.data(), c.mla ? k.data() : v.data(), r.tables.data(),
                               r.sequence.data(), r.positions.data(), s);
  DeviceBuffer<T> dq(q.size()), dk(k.size()), dv(v.size()), out(want.size());
  DeviceBuffer<int32_t> tables(r.tables.size()), sequence(size_t(r.N)), positions(size_t(r.N));
  upload(dq, q);
  upload(dk, k);
  upload(dv, v);
  out.poison();
  DSK_CUDA_CHECK(cudaMemcpy(tables.get(), r.tables.data(), r.tables.size() * 4, cudaMemcpyHostToDevice));
  DSK_CUDA_CHECK(cudaMemcpy(sequence.get(), r.sequence.data(), size_t(r.N) * 4, cudaMemcpyHostToDevice));
  DSK_CUDA_CHECK(cudaMemcpy(positions.get(), r.positions.data(), size_t(r.N) * 4, cudaMemcpyHostToDevice));
  DeviceBuffer<float> scratch(std::max<size_t>(cuda::paged_attention_scratch_floats(s), 1));
  DeviceBuffer<unsigned> turns(size_t(cuda::paged_attention_turns()));
  DSK_CUDA_CHECK(cudaMemset(turns.get(), 0, size_t(cuda::paged_attention_turns()) * sizeof(unsigned)));
  // Twice: a split launch's last partition merges and must leave the arrival counters at zero for
  // the next launch, which would otherwise merge early (or never) and write other numbers.
  std::vector<float> first;
  for (int launch = 0; launch < 2; launch++) {
    out.poison();
    cuda::paged_attention_forward<T>(out.get(), dq.get(), dk.get(), c.mla ? dk.get() : dv.get(), tables.get(),
                                     sequence.get(), positions.get(), s, scratch.get(), turns.get(), nullptr);
    const std::vector<float> got = download(out);
    check_close(c.name, got, want, default_tolerance<T>());
    if (launch == 0) first = got;
    else CHECK_MESSAGE(got == first, c.name, ": a second launch gave other bits");
  }
  std::vector<unsigned> left(size_t(cuda::paged_attention_turns()));
  DSK_CUDA_CHECK(cudaMemcpy(left.data(), turns.get(), left.size() * sizeof(unsigned), cudaMemcpyDeviceToHost));
  CHECK_MESSAGE(std::all_of(left.begin(), left.end(), [](unsigned t) { return t == 0; }),
                c.name, ": the arrival counters were not left at zero");
}

const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"tiny GQA, decodes and prefill chunks", 4, 2, 8, 8, 4, {23, 9, 31, 1}, {1, 9, 5, 1}},
      {"MQA, block size 1", 4, 1, 16, 16, 1, {7, 12}, {3, 1}},
      {"odd head size (scalar path)", 3, 3, 13, 11, 4, {10, 5}, {2, 5}},
      {"llama-1b decode batch 32", 16, 16, 128, 128, 16, std::vector<int>(32, 200), std::vector<int>(32, 1)},
      {"llama-1b prefill 2 x 128 + decodes", 16, 16, 128, 128, 16, {128, 128, 140, 250}, {128, 64, 1, 1}},
      {"GQA 8:1 (llama 3 8B)", 32, 4, 128, 128, 16, {300, 17}, {1, 17}},
      {"MLA absorbed, V3 (kv_rank 512 + rope 64)", 16, 1, 576, 512, 16, {100, 37}, {1, 5}, true},
      {"MLA absorbed, moe-16e (256 + 32)", 16, 1, 288, 256, 16, {64, 64}, {1, 64}, true},
      {"batch-1 decode, 3000 keys (key partitions)", 16, 16, 128, 128, 16, {3000}, {1}},
      {"MLA batch-1 decode, 1500 keys (key partitions)", 16, 1, 576, 512, 64, {1500}, {1}, true},
      {"batch-1 decode, 20000 keys (64 partitions, 3 rounds each)", 2, 2, 128, 128, 16, {20000}, {1}},
      {"llama-1b batch-1 decode, 1 key", 16, 16, 128, 128, 16, {1}, {1}},
      {"llama-1b batch-1 decode, 31 keys", 16, 16, 128, 128, 16, {31}, {1}},
      {"llama-1b batch-1 decode, 130 keys", 16, 16, 128, 128, 16, {130}, {1}},
      {"llama-1b batch-1 decode, 1000 keys", 16, 16, 128, 128, 16, {1000}, {1}},
      {"llama-1b ragged decodes (5 sequences)", 16, 16, 128, 128, 16, {1, 31, 130, 1000, 257}, {1, 1, 1, 1, 1}},
      {"llama-1b decodes + a prefill chunk, few queries", 16, 16, 128, 128, 16, {700, 45, 129}, {1, 6, 1}},
      {"batch-1 decode, 130 keys, grid for 4096 (graph replay)", 16, 16, 128, 128, 16, {130}, {1}, false, 4096},
      {"3 decodes, grid for 8192 (graph replay)", 16, 16, 64, 64, 16, {1, 300, 2000}, {1, 1, 1}, false, 8192},
      {"GQA 4:1 batch-1 decode, 1000 keys", 32, 8, 64, 64, 16, {1000}, {1}},
      {"MLA batch-1 decode, 130 keys", 16, 1, 576, 512, 64, {130}, {1}, true},
      {"odd head size batch-1 decode, 300 keys (scalar path)", 3, 3, 13, 11, 4, {300}, {1}},
  };
  return all;
}

}  // namespace

TEST_CASE_TEMPLATE("paged attention matches the CPU reference on ragged batches", T, float, bf16) {
  uint64_t seed = 4000;
  for (const Case& c : cases()) check_case<T>(c, seed += 10);
}

TEST_CASE("the key partitions are used where they should be") {
  cpu::PagedAttentionShape decode{1, 16, 16, 128, 128, 16 * 128, 16 * 128, 16 * 128, 16, 200, 1.0f, 3000};
  CHECK(cuda::paged_attention_scratch_floats(decode) > 0);
  cpu::PagedAttentionShape batch = decode;
  batch.N = 64;
  CHECK(cuda::paged_attention_scratch_floats(batch) == 0);  // enough blocks without splitting
  cpu::PagedAttentionShape short_context = decode;
  short_context.max_keys = 200;  // two partitions of 128 keys already help a batch-1 decode
  CHECK(cuda::paged_attention_scratch_floats(short_context) > 0);
  short_context.max_keys = 128;  // one partition's round: nothing to split
  CHECK(cuda::paged_attention_scratch_floats(short_context) == 0);
}

TEST_CASE_TEMPLATE("paged_kv_write puts each row in its slot and touches nothing else", T, float, bf16) {
  for (int row : {8, 13, 576}) {
    CAPTURE(row);
    const int slots = 40, N = 7;
    const std::vector<int32_t> targets = {5, 0, 39, 17, 18, 2, 33};
    const auto start = rounded<T>(random_floats(size_t(slots) * row, 900 + row));
    const auto rows = rounded<T>(random_floats(size_t(N) * row, 901 + row));
    std::vector<float> want = start;
    cpu::paged_kv_write(want.data(), rows.data(), targets.data(), N, row, row);
    DeviceBuffer<T> pool(start.size()), fresh(rows.size());
    DeviceBuffer<int32_t> slot_ids(targets.size());
    upload(pool, start);
    upload(fresh, rows);
    DSK_CUDA_CHECK(cudaMemcpy(slot_ids.get(), targets.data(), targets.size() * 4, cudaMemcpyHostToDevice));
    cuda::paged_kv_write<T>(pool.get(), fresh.get(), slot_ids.get(), N, row, row, nullptr);
    CHECK(download(pool) == want);
  }
}

TEST_CASE("paged attention refuses head sizes it has no room for") {
  cpu::PagedAttentionShape s{1, 2, 1, 2048, 64, 4096, 2048, 2048, 16, 1, 1.0f, 1};
  CHECK_THROWS_AS(cuda::paged_attention_forward<float>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, s,
                                                       nullptr, nullptr, nullptr),
                  dsk::InternalError);
}
