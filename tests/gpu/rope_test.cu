// RoPE on the GPU (kernels/cuda/rope.cu) against kernels/cpu/rope.cpp, forward and backward in
// place: both pairings (rotate_half and interleaved), attention_factor != 1, the rotated part at
// an offset inside a head of head_stride (MLA: nope 64 + rope 32), partial rotary, positions
// past the prompt (a KV cache), tiny fixture heads, the bench shapes and decode shapes (N = 1, 32:
// one head a thread; many rows: 4 heads a thread, also with H not a multiple of 4); and
// bit-identical reruns.
// Tolerance (relative L2, parity.cuh): 1e-5 for fp32, 1e-2 for bf16 storage.
#include <cmath>

#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

namespace {

struct Shape {
  int N, H, head_stride, offset, rot_dim;
  bool interleaved;
  float attention_factor;
  int max_position;
};
const Shape kShapes[] = {
    {5, 2, 8, 0, 8, false, 1.0f, 16},          // tiny fixture head
    {3, 3, 12, 4, 6, true, 1.0f, 4000},        // odd pair count, offset, interleaved
    {17, 4, 16, 0, 8, false, 1.0f, 300},       // partial rotary (rot_dim < head)
    {9, 2, 24, 16, 8, true, 1.3f, 9000},       // tiny MLA-like head with a yarn factor
    {16384, 12, 64, 0, 64, false, 1.0f, 1024},  // bench dense-124m q
    {8192, 16, 96, 64, 32, true, 1.2f, 1024},   // bench moe-16e: MLA q and k
    {2048, 16, 128, 0, 128, false, 1.0f, 8192}, // bench llama-1b q (fewer positions)
    {1, 16, 128, 0, 128, false, 1.0f, 4000},    // llama-1b batch-1 decode: a thread per (head, pair)
    {32, 16, 128, 0, 128, false, 1.0f, 4000},   // llama-1b decode of 32 sequences
    {1, 16, 96, 64, 32, true, 1.2f, 4000},      // MLA decode: q's rope part at an offset
    {30000, 3, 12, 4, 6, true, 1.0f, 4000},     // 4 heads a thread, H = 3: a partial head group
};

cpu::Rope make_rope(const Shape& s) {
  cpu::Rope rope;
  for (int i = 0; i < s.rot_dim / 2; i++) rope.inv_freq.push_back(std::pow(10000.0f, -2.0f * i / s.rot_dim));
  rope.attention_factor = s.attention_factor;
  rope.interleaved = s.interleaved;
  return rope;
}

std::vector<int32_t> random_positions(int N, int max_position, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> positions(N);
  for (int32_t& p : positions) p = (int32_t)(rng() % max_position);
  return positions;
}

// Applies the GPU rotation (forward or backward) to a copy of `values`.
template <typename T>
std::vector<float> rotate_on_gpu(const std::vector<float>& values, const std::vector<int32_t>& positions,
                                 const cpu::Rope& rope, const Shape& s, bool backward) {
  DeviceBuffer<T> x(values.size());
  DeviceBuffer<int32_t> pos(positions.size());
  DeviceBuffer<float> inv_freq(rope.inv_freq.size());
  upload(x, values);
  DSK_CUDA_CHECK(cudaMemcpy(pos.get(), positions.data(), positions.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  upload(inv_freq, rope.inv_freq);
  const cuda::RopeDevice device{inv_freq.get(), rope.attention_factor, rope.interleaved};
  if (backward)
    cuda::rope_backward(x.get(), pos.get(), device, s.N, s.H, s.head_stride, s.offset, s.rot_dim, nullptr);
  else
    cuda::rope_forward(x.get(), pos.get(), device, s.N, s.H, s.head_stride, s.offset, s.rot_dim, nullptr);
  return download(x);
}

}  // namespace

TEST_CASE_TEMPLATE("rope forward and backward match the CPU and repeat bit for bit", T, float, bf16) {
  uint64_t seed = 200;
  for (const Shape& s : kShapes) {
    CAPTURE(s.N);
    CAPTURE(s.H);
    CAPTURE(s.head_stride);
    CAPTURE(s.offset);
    CAPTURE(s.rot_dim);
    CAPTURE(s.interleaved);
    const cpu::Rope rope = make_rope(s);
    const std::vector<int32_t> positions = random_positions(s.N, s.max_position, seed++);
    const size_t n = (size_t)s.N * s.H * s.head_stride;
    for (const bool backward : {false, true}) {
      CAPTURE(backward);
      const std::vector<float> x = rounded<T>(random_floats(n, seed++));
      std::vector<float> want = x;
      if (backward)
        cpu::rope_backward(want.data(), positions.data(), rope, s.N, s.H, s.head_stride, s.offset, s.rot_dim);
      else
        cpu::rope_forward(want.data(), positions.data(), rope, s.N, s.H, s.head_stride, s.offset, s.rot_dim);
      const std::vector<float> got = rotate_on_gpu<T>(x, positions, rope, s, backward);
      check_close(backward ? "dx" : "x", got, want, default_tolerance<T>());
      CHECK(rotate_on_gpu<T>(x, positions, rope, s, backward) == got);
    }
  }
}

TEST_CASE_TEMPLATE("rope gives a row the same bits alone as inside a large batch", T, float, bf16) {
  // 20000 x 16 x 64 rotations take 4 heads a thread; the single row one head a thread.
  const Shape batch{20000, 16, 128, 0, 128, false, 1.0f, 4000};
  const cpu::Rope rope = make_rope(batch);
  const std::vector<int32_t> positions = random_positions(batch.N, batch.max_position, 77);
  const size_t row_size = (size_t)batch.H * batch.head_stride;
  const std::vector<float> x = rounded<T>(random_floats(batch.N * row_size, 78));
  const std::vector<float> all = rotate_on_gpu<T>(x, positions, rope, batch, false);
  const int row = 4321;
  Shape single = batch;
  single.N = 1;
  const std::vector<float> one_row(x.begin() + row * row_size, x.begin() + (row + 1) * row_size);
  const std::vector<float> alone = rotate_on_gpu<T>(one_row, {positions[row]}, rope, single, false);
  CHECK(alone == std::vector<float>(all.begin() + row * row_size, all.begin() + (row + 1) * row_size));
}
