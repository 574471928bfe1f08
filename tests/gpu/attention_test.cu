// Parity of kernels/cuda/attention.cu with cpu::attention_forward/backward on the same inputs
// (rounded to T first): out, lse (against a double-precision log-sum-exp computed here), and the
// gradients dq, dk, dv, which start at random non-zero values so that += is checked too.
// Tolerances, relative L2 over each tensor (parity.cuh): T = float (the SIMT fp32 path) 1e-5;
// T = bf16 (tensor cores, P and dS rounded to bf16 before their products) 2e-2, lse 1e-4.
// Every case also runs twice and must give the same bits, and leaves the padding columns of
// strided gradient rows untouched. bf16 with Dk = Dv = 64 and no packed rows runs the wgmma
// backward (attention_wgmma.cuh) on an sm_90a build and device, the mma.sync one elsewhere.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "attention_parity.cuh"

namespace dsk::gpu_test {
namespace {

namespace cpu = kernels::cpu;
namespace cuda = kernels::cuda;
using cuda::AttentionShape;

// Written positionally in the tests: {B, Tq, Tk, H, KVH, Dk, Dv[, q/k/v padding[, scale factor]]}.
struct Case {
  int B, Tq, Tk, H, KVH, Dk, Dv;
  int q_padding = 0, k_padding = 0, v_padding = 0;  // extra elements per row beyond the heads
  float scale_factor = 1.0f;                         // scale = scale_factor / sqrt(Dk)
};

AttentionShape shape_of(const Case& c) {
  return AttentionShape{c.B,
                        c.Tq,
                        c.Tk,
                        c.H,
                        c.KVH,
                        c.Dk,
                        c.Dv,
                        c.H * c.Dk + c.q_padding,
                        c.KVH * c.Dk + c.k_padding,
                        c.KVH * c.Dv + c.v_padding,
                        c.scale_factor / std::sqrt(float(c.Dk))};
}

// Elements of `got` in the columns [width, stride) of each row must equal `start` exactly.
void check_padding_untouched(const char* what, const std::vector<float>& got, const std::vector<float>& start,
                             int width, int stride) {
  size_t changed = 0;
  for (size_t i = 0; i < got.size(); i++)
    if (int(i % size_t(stride)) >= width && std::memcmp(&got[i], &start[i], sizeof(float)) != 0) changed++;
  INFO(what << ": " << changed << " padding elements written");
  CHECK(changed == 0);
}

template <typename T>
void check_case(const Case& c, uint64_t seed) {
  const AttentionShape s = shape_of(c);
  INFO("B=" << s.B << " Tq=" << s.Tq << " Tk=" << s.Tk << " H=" << s.H << " KVH=" << s.KVH << " Dk=" << s.Dk
            << " Dv=" << s.Dv << " strides " << s.q_stride << "/" << s.k_stride << "/" << s.v_stride
            << " T=" << (sizeof(T) == 4 ? "float" : "bf16") << " seed " << seed);
  const size_t q_size = size_t(s.B) * s.Tq * s.q_stride, k_size = size_t(s.B) * s.Tk * s.k_stride,
               v_size = size_t(s.B) * s.Tk * s.v_stride, out_size = size_t(s.B) * s.Tq * s.H * s.Dv;

  AttentionTensors in;
  in.q = rounded<T>(random_floats(q_size, seed));
  in.k = rounded<T>(random_floats(k_size, seed + 1));
  in.v = rounded<T>(random_floats(v_size, seed + 2));
  in.dout = rounded<T>(random_floats(out_size, seed + 3));

  std::vector<float> out(out_size), probs(size_t(s.B) * s.H * s.Tq * s.Tk);
  cpu::attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), s);
  std::vector<float> dq(q_size, 0.0f), dk(k_size, 0.0f), dv(v_size, 0.0f);
  cpu::attention_backward(dq.data(), dk.data(), dv.data(), in.dout.data(), probs.data(), in.q.data(), in.k.data(),
                          in.v.data(), s);

  // Starting gradients at a quarter of each gradient's size: a kernel that wrote instead of
  // adding would be off by about 25%, far outside both tolerances.
  in.dq = rounded<T>(random_floats(q_size, seed + 4, float(0.25 * rms(dq))));
  in.dk = rounded<T>(random_floats(k_size, seed + 5, float(0.25 * rms(dk))));
  in.dv = rounded<T>(random_floats(v_size, seed + 6, float(0.25 * rms(dv))));

  const double tolerance = sizeof(T) == 4 ? 1e-5 : 2e-2;
  const double lse_tolerance = sizeof(T) == 4 ? 1e-5 : 1e-4;
  const AttentionTensors first = run_attention_gpu<T>(in, s);
  check_close("out", first.out, out, tolerance);
  check_close("lse", first.lse, reference_lse(in, s), lse_tolerance);
  check_close("dq", first.dq, plus(in.dq, dq), tolerance);
  check_close("dk", first.dk, plus(in.dk, dk), tolerance);
  check_close("dv", first.dv, plus(in.dv, dv), tolerance);
  check_padding_untouched("dq", first.dq, in.dq, s.H * s.Dk, s.q_stride);
  check_padding_untouched("dk", first.dk, in.dk, s.KVH * s.Dk, s.k_stride);
  check_padding_untouched("dv", first.dv, in.dv, s.KVH * s.Dv, s.v_stride);

  const AttentionTensors second = run_attention_gpu<T>(in, s);
  CHECK_MESSAGE(same_bits(first.out, second.out), "out differs between two runs");
  CHECK_MESSAGE(same_bits(first.lse, second.lse), "lse differs between two runs");
  CHECK_MESSAGE(same_bits(first.dq, second.dq), "dq differs between two runs");
  CHECK_MESSAGE(same_bits(first.dk, second.dk), "dk differs between two runs");
  CHECK_MESSAGE(same_bits(first.dv, second.dv), "dv differs between two runs");
}

uint64_t fresh_seed() { return std::random_device{}(); }

#define ATTENTION_TYPES float, bf16

TEST_CASE_TEMPLATE("attention: MHA, T not a multiple of any tile", T, ATTENTION_TYPES) {
  check_case<T>({2, 77, 77, 3, 3, 64, 64}, fresh_seed());
}

TEST_CASE_TEMPLATE("attention: GQA, two query heads per K/V head, T = 130", T, ATTENTION_TYPES) {
  check_case<T>({2, 130, 130, 4, 2, 32, 32}, fresh_seed());
}

TEST_CASE_TEMPLATE("attention: MQA, one K/V head, head dim 128", T, ATTENTION_TYPES) {
  check_case<T>({2, 65, 65, 4, 1, 128, 128}, fresh_seed());
}

TEST_CASE_TEMPLATE("attention: MLA head dims Dk = 96, Dv = 64", T, ATTENTION_TYPES) {
  check_case<T>({2, 130, 130, 2, 2, 96, 64, 0, 0, 0, 0.7f},
                fresh_seed());
}

TEST_CASE_TEMPLATE("attention: the fixtures' tiny head dims", T, ATTENTION_TYPES) {
  SUBCASE("Dk = 16, Dv = 8") { check_case<T>({2, 33, 33, 2, 2, 16, 8}, fresh_seed()); }
  SUBCASE("Dk = Dv = 8, GQA") { check_case<T>({2, 20, 20, 4, 2, 8, 8}, fresh_seed()); }
  SUBCASE("Dk = 8, Dv = 16") { check_case<T>({1, 9, 9, 1, 1, 8, 16}, fresh_seed()); }
}

TEST_CASE_TEMPLATE("attention: the widest head dims (dK and dV in separate passes)", T, ATTENTION_TYPES) {
  SUBCASE("Dk = 192, Dv = 128") { check_case<T>({1, 70, 70, 2, 1, 192, 128}, fresh_seed()); }
  SUBCASE("Dk = Dv = 256") { check_case<T>({1, 70, 70, 2, 2, 256, 256}, fresh_seed()); }
  SUBCASE("Dk = 40, Dv = 200") { check_case<T>({1, 40, 40, 1, 1, 40, 200}, fresh_seed()); }
}

TEST_CASE_TEMPLATE("attention: queries are the last Tq of Tk positions (KV cache)", T, ATTENTION_TYPES) {
  SUBCASE("Tq = 20, Tk = 77") { check_case<T>({2, 20, 77, 4, 2, 64, 64}, fresh_seed()); }
  SUBCASE("Tq = 70, Tk = 200") { check_case<T>({1, 70, 200, 2, 2, 96, 64}, fresh_seed()); }
  SUBCASE("decode, Tq = 1, Tk = 300") { check_case<T>({3, 1, 300, 4, 1, 64, 64}, fresh_seed()); }
  SUBCASE("decode, Tq = 1, Tk = 4096") { check_case<T>({1, 1, 4096, 2, 2, 96, 64}, fresh_seed()); }
}

TEST_CASE_TEMPLATE("attention: strided q, k, v rows (padding columns left alone)", T, ATTENTION_TYPES) {
  SUBCASE("strides multiples of 8") {
    check_case<T>({2, 50, 50, 2, 1, 64, 32, 16, 24, 8},
                  fresh_seed());
  }
  SUBCASE("64-wide heads (the wgmma backward on sm_90a), strides multiples of 8") {
    check_case<T>({2, 50, 50, 2, 1, 64, 64, 16, 24, 8}, fresh_seed());
  }
  // bf16 rows not 16-byte aligned go to the SIMT kernels instead of the tensor cores.
  SUBCASE("strides not multiples of 8") {
    check_case<T>({2, 45, 45, 2, 2, 32, 16, 4, 2, 6},
                  fresh_seed());
  }
}

TEST_CASE_TEMPLATE("attention: many tiles (bench head dims, shorter)", T, ATTENTION_TYPES) {
  SUBCASE("D = 64, T = 1024") { check_case<T>({1, 1024, 1024, 2, 2, 64, 64}, fresh_seed()); }
  SUBCASE("Dk = 96, Dv = 64, T = 1024") { check_case<T>({1, 1024, 1024, 2, 2, 96, 64}, fresh_seed()); }
  SUBCASE("D = 128, T = 512, B = 2") { check_case<T>({2, 512, 512, 2, 1, 128, 128}, fresh_seed()); }
}

TEST_CASE("attention: shapes the kernels do not support are errors naming the shape") {
  DeviceBuffer<float> buffer(1024);
  float* p = buffer.get();
  AttentionShape s{1, 8, 8, 2, 2, 12, 16, 24, 24, 32, 0.25f};  // Dk = 12: not a multiple of 8
  CHECK_THROWS_WITH_AS(cuda::attention_forward<float>(p, p, p, p, p, s, nullptr), doctest::Contains("Dk=12"),
                       std::exception);
  s = AttentionShape{1, 9, 8, 2, 2, 16, 16, 32, 32, 32, 0.25f};  // Tq > Tk
  CHECK_THROWS_AS(cuda::attention_forward<float>(p, p, p, p, p, s, nullptr), std::exception);
  s = AttentionShape{1, 8, 8, 3, 2, 16, 16, 48, 32, 32, 0.25f};  // H not a multiple of KVH
  CHECK_THROWS_AS(cuda::attention_backward<float>(p, p, p, p, p, p, p, p, p, s, p, nullptr), std::exception);
}

}  // namespace
}  // namespace dsk::gpu_test
