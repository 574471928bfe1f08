// The few-row products streamed through shared memory (gemv_stream.cuh) against the register
// kernels (gemv_kernels.cuh), bit for bit: both sum each dot product in the same order. Then
// against the CPU reference: relative L2 1e-2 for bf16 outputs, 1e-5 for fp32. Shapes where a
// block's stages wrap around the ring several times and end on a partial stage, a row too wide
// for more than two rows a stage (llama's down projection), fewer columns than blocks in a wave,
// q/k/v parts of different widths, and gate/up with SwiGLU.
#include <memory>

#include "cpu/kernels.hpp"
#include "cuda/gemv_stream.cuh"
#include "cuda/elementwise.cuh"
#include "parity.cuh"

using namespace dsk;
using namespace dsk::gpu_test;
namespace kcuda = dsk::kernels::cuda;  // not `cuda`: libcu++ (gemv_stream.cuh) has a ::cuda
namespace cpu = dsk::kernels::cpu;
namespace gemv = dsk::kernels::cuda::gemv;

namespace {

using Registers = gemv::GemvSplit<1, 4, 8>;
using Stream = gemv::StreamSplit<8, 4, 32 * 1024>;
using SmallStream = gemv::StreamSplit<4, 3, 8 * 1024>;  // another split: more stages a block, rows per stage

// out = inp @ weight^T (+ bias), then += the same again, by each kernel; all equal, and near the CPU.
template <typename T>
void check_product(int N, int C, int OC, bool with_bias, uint64_t seed) {
  INFO("N=" << N << " C=" << C << " OC=" << OC << " bias=" << with_bias << " fp32=" << (sizeof(T) == 4));
  const std::vector<float> inp = rounded<T>(random_floats(size_t(N) * C, seed));
  const std::vector<float> weight = rounded<T>(random_floats(size_t(OC) * C, seed + 1, 0.05f));
  const std::vector<float> bias = rounded<T>(random_floats(OC, seed + 2));
  DeviceBuffer<T> d_inp(inp.size()), d_weight(weight.size()), d_bias(bias.size()), want(size_t(N) * OC),
      streamed(size_t(N) * OC), small(size_t(N) * OC);
  upload(d_inp, inp);
  upload(d_weight, weight);
  upload(d_bias, bias);
  const T* b = with_bias ? d_bias.get() : nullptr;
  for (bool accumulate : {false, true}) {
    if (!accumulate) {
      want.poison();
      streamed.poison();
      small.poison();
    }
    gemv::launch_gemv<T, Registers>(want.get(), d_inp.get(), d_weight.get(), b, N, C, OC, accumulate, nullptr);
    REQUIRE(gemv::stream_gemv<T, Stream>(streamed.get(), d_inp.get(), d_weight.get(), b, N, C, OC, accumulate,
                                         nullptr));
    REQUIRE(gemv::stream_gemv<T, SmallStream>(small.get(), d_inp.get(), d_weight.get(), b, N, C, OC, accumulate,
                                              nullptr));
    CHECK(download(streamed) == download(want));
    CHECK(download(small) == download(want));
  }
  std::vector<float> reference(size_t(N) * OC);
  cpu::matmul_forward(reference.data(), inp.data(), weight.data(), with_bias ? bias.data() : nullptr, N, C, OC);
  for (float& x : reference) x *= 2;  // accumulated once onto itself
  check_close("streamed", download(streamed), reference, default_tolerance<T>());
}

template <typename T>
void check_parts(int N, int C, uint64_t seed) {
  INFO("N=" << N << " C=" << C << " fp32=" << (sizeof(T) == 4));
  const int widths[3] = {C, C / 4 + 8, C / 4 + 8};
  const std::vector<float> inp = rounded<T>(random_floats(size_t(N) * C, seed));
  DeviceBuffer<T> d_inp(inp.size());
  upload(d_inp, inp);
  std::vector<std::vector<float>> weights;
  std::vector<std::unique_ptr<DeviceBuffer<T>>> d_weights, want, streamed;
  std::vector<kcuda::GemvPart<T>> register_parts, stream_parts;
  for (int p = 0; p < 3; p++) {
    weights.push_back(rounded<T>(random_floats(size_t(widths[p]) * C, seed + 1 + p, 0.05f)));
    d_weights.push_back(std::make_unique<DeviceBuffer<T>>(weights[p].size()));
    upload(*d_weights[p], weights[p]);
    want.push_back(std::make_unique<DeviceBuffer<T>>(size_t(N) * widths[p]));
    streamed.push_back(std::make_unique<DeviceBuffer<T>>(size_t(N) * widths[p]));
    streamed[p]->poison();
    register_parts.push_back({want[p]->get(), d_weights[p]->get(), nullptr, widths[p]});
    stream_parts.push_back({streamed[p]->get(), d_weights[p]->get(), nullptr, widths[p]});
  }
  gemv::launch_gemv_parts<T, Registers>(register_parts.data(), 3, d_inp.get(), N, C, nullptr);
  REQUIRE(gemv::stream_gemv_parts<T, Stream>(stream_parts.data(), 3, d_inp.get(), N, C, nullptr));
  for (int p = 0; p < 3; p++) {
    const std::vector<float> got = download(*streamed[p]);
    CHECK(got == download(*want[p]));
    std::vector<float> reference(size_t(N) * widths[p]);
    cpu::matmul_forward(reference.data(), inp.data(), weights[p].data(), nullptr, N, C, widths[p]);
    check_close("part", got, reference, default_tolerance<T>());
  }
}

template <typename T>
void check_swiglu(int N, int C, int I, uint64_t seed) {
  INFO("N=" << N << " C=" << C << " I=" << I << " fp32=" << (sizeof(T) == 4));
  const std::vector<float> inp = rounded<T>(random_floats(size_t(N) * C, seed));
  const std::vector<float> gate = rounded<T>(random_floats(size_t(I) * C, seed + 1, 0.05f));
  const std::vector<float> up = rounded<T>(random_floats(size_t(I) * C, seed + 2, 0.05f));
  DeviceBuffer<T> d_inp(inp.size()), d_gate(gate.size()), d_up(up.size()), want(size_t(N) * I),
      streamed(size_t(N) * I);
  upload(d_inp, inp);
  upload(d_gate, gate);
  upload(d_up, up);
  streamed.poison();
  gemv::launch_gemv_swiglu<T, Registers>(want.get(), d_inp.get(), d_gate.get(), d_up.get(), N, C, I, nullptr);
  REQUIRE(gemv::stream_gemv_swiglu<T, Stream>(streamed.get(), d_inp.get(), d_gate.get(), d_up.get(), N, C, I, nullptr));
  const std::vector<float> got = download(streamed);
  CHECK(got == download(want));
  std::vector<float> g(size_t(N) * I), u(size_t(N) * I), reference(size_t(N) * I);
  cpu::matmul_forward(g.data(), inp.data(), gate.data(), nullptr, N, C, I);
  cpu::matmul_forward(u.data(), inp.data(), up.data(), nullptr, N, C, I);
  cpu::swiglu_forward(reference.data(), g.data(), u.data(), int64_t(N) * I);
  check_close("swiglu", got, reference, default_tolerance<T>());
}

// RMSNorm folded into each streamed kernel: the bits of rmsnorm_forward followed by the product.
template <typename T>
void check_norm_folded(int N, int C, int OC, uint64_t seed) {
  INFO("N=" << N << " C=" << C << " OC=" << OC << " fp32=" << (sizeof(T) == 4));
  constexpr float kEps = 1e-6f;
  const std::vector<float> inp = rounded<T>(random_floats(size_t(N) * C, seed));
  const std::vector<float> norm_weight = rounded<T>(random_floats(C, seed + 1));
  const std::vector<float> weight = rounded<T>(random_floats(size_t(OC) * C, seed + 2, 0.05f));
  const std::vector<float> up = rounded<T>(random_floats(size_t(OC) * C, seed + 3, 0.05f));
  DeviceBuffer<T> d_inp(inp.size()), d_norm_weight(C), d_weight(weight.size()), d_up(up.size()), normed(inp.size()),
      want(size_t(N) * OC), got(size_t(N) * OC);
  DeviceBuffer<float> rstd(N);
  upload(d_inp, inp);
  upload(d_norm_weight, norm_weight);
  upload(d_weight, weight);
  upload(d_up, up);
  kcuda::rmsnorm_forward<T>(normed.get(), rstd.get(), d_inp.get(), d_norm_weight.get(), N, C, kEps, nullptr);

  gemv::launch_gemv<T, Registers>(want.get(), normed.get(), d_weight.get(), nullptr, N, C, OC, false, nullptr);
  got.poison();
  REQUIRE(gemv::stream_gemv<T, Stream>(got.get(), d_inp.get(), d_weight.get(), nullptr, N, C, OC, false, nullptr,
                                       d_norm_weight.get(), kEps));
  CHECK(download(got) == download(want));

  const kcuda::GemvPart<T> register_part{want.get(), d_weight.get(), nullptr, OC}, stream_part{got.get(), d_weight.get(),
                                                                                               nullptr, OC};
  gemv::launch_gemv_parts<T, Registers>(&register_part, 1, normed.get(), N, C, nullptr);
  got.poison();
  REQUIRE(gemv::stream_gemv_parts<T, Stream>(&stream_part, 1, d_inp.get(), N, C, nullptr, d_norm_weight.get(), kEps));
  CHECK(download(got) == download(want));

  gemv::launch_gemv_swiglu<T, Registers>(want.get(), normed.get(), d_weight.get(), d_up.get(), N, C, OC, nullptr);
  got.poison();
  REQUIRE(gemv::stream_gemv_swiglu<T, Stream>(got.get(), d_inp.get(), d_weight.get(), d_up.get(), N, C, OC, nullptr,
                                              d_norm_weight.get(), kEps));
  CHECK(download(got) == download(want));
}

}  // namespace

TEST_CASE("gemv stream: RMSNorm folded in gives rmsnorm_forward's bits, then the product's") {
  for (int N = 1; N <= kcuda::kGemvMaxRows; N++) {
    check_norm_folded<bf16>(N, 2048, 3000, 300 + N);
    check_norm_folded<float>(N, 512, 700, 310 + N);
  }
}

TEST_CASE("gemv stream: products equal the register kernels' bits and the CPU") {
  for (int N = 1; N <= kcuda::kGemvMaxRows; N++) {
    check_product<bf16>(N, 2048, 20000, N % 2 == 0, 100 + N);  // many stages a block; the last one partial
    check_product<bf16>(N, 5504, 2048, N % 2 == 1, 110 + N);   // two 11 KB rows a stage
    check_product<float>(N, 1000, 3000, N % 2 == 0, 120 + N);  // fp32, 4 elements a chunk
    check_product<bf16>(N, 64, 24, true, 130 + N);             // fewer columns than a wave has blocks
  }
}

TEST_CASE("gemv stream: q/k/v parts and SwiGLU equal the register kernels' bits and the CPU") {
  for (int N = 1; N <= kcuda::kGemvMaxRows; N++) {
    check_parts<bf16>(N, 2048, 200 + N);
    check_parts<float>(N, 512, 210 + N);
    check_swiglu<bf16>(N, 2048, 5504, 220 + N);
    check_swiglu<float>(N, 256, 1000, 230 + N);
  }
}

TEST_CASE("gemv stream: declines what it cannot stream, launching nothing") {
  DeviceBuffer<bf16> inp(40), weight(4 * 40), out(4);
  // 36 bf16 elements a row is not whole 16-byte chunks; an input 2 bytes off alignment neither.
  CHECK_FALSE(gemv::stream_gemv<bf16, Stream>(out.get(), inp.get(), weight.get(), nullptr, 1, 36, 4, false, nullptr));
  CHECK_FALSE(gemv::stream_gemv<bf16, Stream>(out.get(), inp.get() + 1, weight.get(), nullptr, 1, 32, 4, false,
                                              nullptr));
}
