// Packed rows (AttentionShape::segment_start) in kernels/cuda/attention.cu against the CPU
// reference (cpu::attention_forward/backward with the same starts): out, lse (a double-precision
// log-sum-exp over each query's visible keys, computed here), and dq, dk, dv, which start at
// random values so that += is checked too. Rows hold examples of random lengths (some shorter
// than a tile, some spanning several), and some cases have keys before the query part (prefix
// tuning's, visible to every example). Tolerances, relative L2 over each tensor (parity.cuh), as
// attention_test.cu: T = float (SIMT fp32 path) 1e-5; T = bf16 (tensor cores, or SIMT for
// unaligned rows) 2e-2, lse 1e-4. Every case runs twice and must give the same bits; and starts
// that are all 0 (one example a row) must give the bits of plain causal attention (null starts).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "attention_parity.cuh"

namespace dsk::gpu_test {
namespace {

namespace cpu = kernels::cpu;
namespace cuda = kernels::cuda;
using cuda::AttentionShape;

// {B, Tq, prefix (Tk - Tq), H, KVH, Dk, Dv, q/k/v row padding, longest example}.
struct Case {
  int B, Tq, prefix, H, KVH, Dk, Dv;
  int q_padding = 0, k_padding = 0, v_padding = 0;
  int longest = 200;
};

AttentionShape shape_of(const Case& c) {
  return AttentionShape{c.B,         c.Tq,
                        c.Tq + c.prefix, c.H,
                        c.KVH,       c.Dk,
                        c.Dv,        c.H * c.Dk + c.q_padding,
                        c.KVH * c.Dk + c.k_padding, c.KVH * c.Dv + c.v_padding,
                        1.0f / std::sqrt(float(c.Dk))};
}

// Each row cut into examples of 1..longest positions: segment_start [B, Tq].
std::vector<int32_t> random_starts(int B, int Tq, int longest, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> length(1, longest);
  std::vector<int32_t> starts;
  for (int b = 0; b < B; b++) {
    int first = 0, end = 0;
    for (int t = 0; t < Tq; t++) {
      if (t == end) {
        first = t;
        end = t + length(rng);
      }
      starts.push_back(first);
    }
  }
  return starts;
}

AttentionTensors random_inputs(const AttentionShape& s, uint64_t seed) {
  AttentionTensors in;
  in.q = random_floats(size_t(s.B) * s.Tq * s.q_stride, seed);
  in.k = random_floats(size_t(s.B) * s.Tk * s.k_stride, seed + 1);
  in.v = random_floats(size_t(s.B) * s.Tk * s.v_stride, seed + 2);
  in.dout = random_floats(size_t(s.B) * s.Tq * s.H * s.Dv, seed + 3);
  return in;
}

template <typename T>
void check_case(const Case& c, uint64_t seed) {
  AttentionShape s = shape_of(c);
  INFO("B=" << s.B << " Tq=" << s.Tq << " Tk=" << s.Tk << " H=" << s.H << " KVH=" << s.KVH << " Dk=" << s.Dk
            << " Dv=" << s.Dv << " strides " << s.q_stride << "/" << s.k_stride << "/" << s.v_stride
            << " longest example " << c.longest << " T=" << (sizeof(T) == 4 ? "float" : "bf16") << " seed " << seed);
  const std::vector<int32_t> starts = random_starts(s.B, s.Tq, c.longest, seed + 7);
  AttentionTensors in = random_inputs(s, seed);
  for (std::vector<float>* x : {&in.q, &in.k, &in.v, &in.dout}) *x = rounded<T>(*x);

  AttentionShape host = s;
  host.segment_start = starts.data();
  std::vector<float> out(in.dout.size()), probs(size_t(s.B) * s.H * s.Tq * s.Tk);
  cpu::attention_forward(out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), host);
  std::vector<float> dq(in.q.size(), 0.0f), dk(in.k.size(), 0.0f), dv(in.v.size(), 0.0f);
  cpu::attention_backward(dq.data(), dk.data(), dv.data(), in.dout.data(), probs.data(), in.q.data(), in.k.data(),
                          in.v.data(), host);
  in.dq = rounded<T>(random_floats(in.q.size(), seed + 4, float(0.25 * rms(dq))));
  in.dk = rounded<T>(random_floats(in.k.size(), seed + 5, float(0.25 * rms(dk))));
  in.dv = rounded<T>(random_floats(in.v.size(), seed + 6, float(0.25 * rms(dv))));

  const double tolerance = sizeof(T) == 4 ? 1e-5 : 2e-2;
  const double lse_tolerance = sizeof(T) == 4 ? 1e-5 : 1e-4;
  const AttentionTensors first = run_attention_gpu<T>(in, s, starts);
  check_close("out", first.out, out, tolerance);
  check_close("lse", first.lse, reference_lse(in, s, starts), lse_tolerance);
  check_close("dq", first.dq, plus(in.dq, dq), tolerance);
  check_close("dk", first.dk, plus(in.dk, dk), tolerance);
  check_close("dv", first.dv, plus(in.dv, dv), tolerance);
  const AttentionTensors second = run_attention_gpu<T>(in, s, starts);
  CHECK_MESSAGE(same_bits(first.out, second.out), "out differs between two runs");
  CHECK_MESSAGE(same_bits(first.dq, second.dq), "dq differs between two runs");
  CHECK_MESSAGE(same_bits(first.dk, second.dk), "dk differs between two runs");
  CHECK_MESSAGE(same_bits(first.dv, second.dv), "dv differs between two runs");
}

// Starts all 0 (one example a row) against null starts: the very same bits.
template <typename T>
void check_one_example_a_row(const Case& c, uint64_t seed) {
  const AttentionShape s = shape_of(c);
  INFO("Tq=" << s.Tq << " Tk=" << s.Tk << " Dk=" << s.Dk << " T=" << (sizeof(T) == 4 ? "float" : "bf16"));
  AttentionTensors in = random_inputs(s, seed);
  in.dq.assign(in.q.size(), 0.0f);
  in.dk.assign(in.k.size(), 0.0f);
  in.dv.assign(in.v.size(), 0.0f);
  const AttentionTensors plain = run_attention_gpu<T>(in, s);
  const AttentionTensors packed = run_attention_gpu<T>(in, s, std::vector<int32_t>(size_t(s.B) * s.Tq, 0));
  CHECK(same_bits(plain.out, packed.out));
  CHECK(same_bits(plain.lse, packed.lse));
  CHECK(same_bits(plain.dq, packed.dq));
  CHECK(same_bits(plain.dk, packed.dk));
  CHECK(same_bits(plain.dv, packed.dv));
}

uint64_t fresh_seed() { return std::random_device{}(); }

#define ATTENTION_TYPES float, bf16

TEST_CASE_TEMPLATE("packed attention: GQA, examples up to 200 positions in rows of 700", T, ATTENTION_TYPES) {
  check_case<T>({2, 700, 0, 4, 2, 64, 64}, fresh_seed());
}

TEST_CASE_TEMPLATE("packed attention: short examples (up to 20) and long ones (up to 600)", T, ATTENTION_TYPES) {
  SUBCASE("short") { check_case<T>({2, 300, 0, 2, 1, 64, 64, 0, 0, 0, 20}, fresh_seed()); }
  SUBCASE("long") { check_case<T>({1, 1024, 0, 2, 2, 128, 128, 0, 0, 0, 600}, fresh_seed()); }
}

TEST_CASE_TEMPLATE("packed attention: MLA head dims, the tiny fixture dims, the widest", T, ATTENTION_TYPES) {
  SUBCASE("Dk = 96, Dv = 64") { check_case<T>({2, 400, 0, 2, 2, 96, 64}, fresh_seed()); }
  SUBCASE("Dk = 16, Dv = 8") { check_case<T>({2, 150, 0, 2, 2, 16, 8, 0, 0, 0, 40}, fresh_seed()); }
  SUBCASE("Dk = 192, Dv = 128") { check_case<T>({1, 300, 0, 2, 1, 192, 128}, fresh_seed()); }
  SUBCASE("Dk = Dv = 256") { check_case<T>({1, 300, 0, 2, 2, 256, 256}, fresh_seed()); }
}

TEST_CASE_TEMPLATE("packed attention: keys before the query part (prefix) are seen by every example", T,
                   ATTENTION_TYPES) {
  SUBCASE("prefix 16") { check_case<T>({2, 500, 16, 4, 2, 64, 64}, fresh_seed()); }
  SUBCASE("prefix 70, not a tile multiple") { check_case<T>({1, 400, 70, 2, 1, 96, 64, 0, 0, 0, 90}, fresh_seed()); }
}

TEST_CASE_TEMPLATE("packed attention: strided rows (bf16 not 16-byte aligned: the SIMT path)", T, ATTENTION_TYPES) {
  check_case<T>({2, 250, 0, 2, 2, 32, 16, 4, 2, 6, 60}, fresh_seed());
}

TEST_CASE_TEMPLATE("packed attention: one example a row gives the bits of plain causal attention", T,
                   ATTENTION_TYPES) {
  check_one_example_a_row<T>({2, 300, 0, 4, 2, 64, 64}, fresh_seed());
  check_one_example_a_row<T>({1, 200, 30, 2, 2, 96, 64}, fresh_seed());
}

}  // namespace
}  // namespace dsk::gpu_test
