// cuBLASLt Linear layers against cpu::matmul_forward/backward on the same (rounded) inputs.
// Tolerances (relative L2): fp32 1e-5 (strict fp32, no TF32); bf16 1e-2 for outputs stored in
// bf16, 5e-3 for the fp32 weight and bias gradients of bf16 inputs. The decode step's fused
// few-row kernels (q/k/v parts, gate/up with SwiGLU) must equal the unfused kernels bit for bit.
#include <deque>

#include "cpu/kernels.hpp"
#include "cuda/elementwise.cuh"
#include "cuda/gemv.cuh"
#include "cuda/matmul.cuh"
#include "parity.cuh"

using namespace dsk;
using namespace dsk::gpu_test;
namespace cuda = dsk::kernels::cuda;
namespace cpu = dsk::kernels::cpu;

namespace {

template <typename T>
void check_linear(int N, int C, int OC, bool with_bias, uint64_t seed) {
  INFO("N=" << N << " C=" << C << " OC=" << OC << " bias=" << with_bias << " fp32=" << (sizeof(T) == 4));
  const double tol = default_tolerance<T>(), grad_tol = sizeof(T) == 4 ? 1e-5 : 5e-3;
  std::vector<float> inp = rounded<T>(random_floats(size_t(N) * C, seed));
  std::vector<float> weight = rounded<T>(random_floats(size_t(OC) * C, seed + 1, 0.1f));
  std::vector<float> bias = rounded<T>(random_floats(OC, seed + 2));
  std::vector<float> dout = rounded<T>(random_floats(size_t(N) * OC, seed + 3));
  std::vector<float> dinp0 = rounded<T>(random_floats(size_t(N) * C, seed + 4));
  std::vector<float> dweight0 = random_floats(size_t(OC) * C, seed + 5);
  std::vector<float> dbias0 = random_floats(OC, seed + 6);

  std::vector<float> out_ref(size_t(N) * OC), dinp_ref = dinp0, dweight_ref = dweight0, dbias_ref = dbias0;
  cpu::matmul_forward(out_ref.data(), inp.data(), weight.data(), with_bias ? bias.data() : nullptr, N, C, OC);
  cpu::matmul_backward(dinp_ref.data(), dweight_ref.data(), with_bias ? dbias_ref.data() : nullptr, dout.data(),
                       inp.data(), weight.data(), N, C, OC);

  cuda::Blas blas;
  DeviceBuffer<T> d_inp(inp.size()), d_weight(weight.size()), d_bias(bias.size()), d_out(out_ref.size()),
      d_dout(dout.size()), d_dinp(dinp0.size());
  DeviceBuffer<float> d_dweight(dweight0.size()), d_dbias(dbias0.size()),
      scratch(cuda::matmul_bias_scratch_floats(N, OC));
  upload(d_inp, inp);
  upload(d_weight, weight);
  upload(d_bias, bias);
  upload(d_dout, dout);
  upload(d_dinp, dinp0);
  upload(d_dweight, dweight0);
  upload(d_dbias, dbias0);
  d_out.poison();
  cuda::matmul_forward<T>(blas, d_out.get(), d_inp.get(), d_weight.get(), with_bias ? d_bias.get() : nullptr, N, C,
                          OC, false, nullptr);
  cuda::matmul_backward_input<T>(blas, d_dinp.get(), d_dout.get(), d_weight.get(), N, C, OC, nullptr);
  cuda::matmul_backward_weight<T>(blas, d_dweight.get(), with_bias ? d_dbias.get() : nullptr, d_dout.get(),
                                  d_inp.get(), N, C, OC, scratch.get(), nullptr);
  check_close("out", download(d_out), out_ref, tol);
  check_close("dinp", download(d_dinp), dinp_ref, tol);
  check_close("dweight", download(d_dweight), dweight_ref, grad_tol);
  if (with_bias) check_close("dbias", download(d_dbias), dbias_ref, grad_tol);

  // accumulate = true adds the product to what out holds.
  std::vector<float> twice = out_ref;
  for (float& x : twice) x *= 2;
  cuda::matmul_forward<T>(blas, d_out.get(), d_inp.get(), d_weight.get(), with_bias ? d_bias.get() : nullptr, N, C,
                          OC, true, nullptr);
  check_close("out accumulated", download(d_out), twice, tol);
}

// gemv_parts_forward and gemv_swiglu_forward against the unfused kernels (bit for bit) and the CPU.
template <typename T>
void check_fused_gemv(int N, int C, int I, bool with_bias, uint64_t seed) {
  INFO("N=" << N << " C=" << C << " I=" << I << " bias=" << with_bias << " fp32=" << (sizeof(T) == 4));
  const int widths[3] = {I, I / 4 + 8, I / 4 + 8};  // q, k and v of grouped-query attention
  std::vector<float> inp = rounded<T>(random_floats(size_t(N) * C, seed));
  DeviceBuffer<T> d_inp(inp.size());
  upload(d_inp, inp);
  std::deque<DeviceBuffer<T>> weights, biases, fused, separate;  // not movable: a deque never moves them
  std::vector<std::vector<float>> host_weights, host_biases;
  std::vector<cuda::GemvPart<T>> parts;
  for (int p = 0; p < 3; p++) {
    host_weights.push_back(rounded<T>(random_floats(size_t(widths[p]) * C, seed + 1 + p, 0.1f)));
    host_biases.push_back(rounded<T>(random_floats(widths[p], seed + 4 + p)));
    weights.emplace_back(host_weights[p].size());
    biases.emplace_back(host_biases[p].size());
    fused.emplace_back(size_t(N) * widths[p]);
    separate.emplace_back(size_t(N) * widths[p]);
    upload(weights[p], host_weights[p]);
    upload(biases[p], host_biases[p]);
    fused[p].poison();
  }
  for (int p = 0; p < 3; p++) parts.push_back({fused[p].get(), weights[p].get(), with_bias ? biases[p].get() : nullptr, widths[p]});
  cuda::gemv_parts_forward<T>(parts.data(), 3, d_inp.get(), N, C, nullptr);
  for (int p = 0; p < 3; p++) {
    cuda::gemv_forward<T>(separate[p].get(), d_inp.get(), weights[p].get(), with_bias ? biases[p].get() : nullptr, N, C,
                          widths[p], false, nullptr);
    const std::vector<float> got = download(fused[p]);
    CHECK(got == download(separate[p]));
    std::vector<float> want(size_t(N) * widths[p]);
    cpu::matmul_forward(want.data(), inp.data(), host_weights[p].data(), with_bias ? host_biases[p].data() : nullptr, N,
                        C, widths[p]);
    check_close("part", got, want, default_tolerance<T>());
  }

  // SwiGLU: weights[0] as the gate, another [I, C] matrix as up.
  const std::vector<float> up = rounded<T>(random_floats(size_t(I) * C, seed + 7, 0.1f));
  DeviceBuffer<T> d_up(up.size()), d_gate_out(size_t(N) * I), d_up_out(size_t(N) * I), d_act(size_t(N) * I),
      d_fused(size_t(N) * I);
  upload(d_up, up);
  d_fused.poison();
  cuda::gemv_swiglu_forward<T>(d_fused.get(), d_inp.get(), weights[0].get(), d_up.get(), N, C, I, nullptr);
  cuda::gemv_forward<T>(d_gate_out.get(), d_inp.get(), weights[0].get(), nullptr, N, C, I, false, nullptr);
  cuda::gemv_forward<T>(d_up_out.get(), d_inp.get(), d_up.get(), nullptr, N, C, I, false, nullptr);
  cuda::swiglu_forward<T>(d_act.get(), d_gate_out.get(), d_up_out.get(), int64_t(N) * I, nullptr);
  const std::vector<float> got = download(d_fused);
  CHECK(got == download(d_act));
  std::vector<float> gate_ref(size_t(N) * I), up_ref(size_t(N) * I), act_ref(size_t(N) * I);
  cpu::matmul_forward(gate_ref.data(), inp.data(), host_weights[0].data(), nullptr, N, C, I);
  cpu::matmul_forward(up_ref.data(), inp.data(), up.data(), nullptr, N, C, I);
  cpu::swiglu_forward(act_ref.data(), gate_ref.data(), up_ref.data(), int64_t(N) * I);
  check_close("swiglu", got, act_ref, default_tolerance<T>());
}

}  // namespace

TEST_CASE("matmul: the decode step's fused few-row kernels equal the unfused ones") {
  for (int N = 1; N <= cuda::kGemvMaxRows; N++) {
    check_fused_gemv<cuda::bf16>(N, 2048, 256, N % 2 == 0, 50 + N);
    check_fused_gemv<float>(N, 1000, 72, N % 2 == 1, 60 + N);   // a tail shorter than the unrolled loop
    check_fused_gemv<cuda::bf16>(N, 36, 24, true, 70 + N);      // rows not in whole 16-byte chunks
  }
}

TEST_CASE("matmul: fp32 against the CPU reference") {
  check_linear<float>(16, 32, 48, false, 1);
  check_linear<float>(77, 40, 24, true, 2);
  check_linear<float>(512, 768, 2048, false, 3);
}

TEST_CASE("matmul: few rows (the decode step's matrix-vector kernel) against the CPU reference") {
  for (int N = 1; N <= cuda::kGemvMaxRows + 1; N++) {  // kGemvMaxRows + 1 runs on cuBLASLt again
    check_linear<float>(N, 2048, 96, N % 2 == 0, 10 + N);
    check_linear<cuda::bf16>(N, 2048, 200, N % 2 == 1, 20 + N);
    check_linear<cuda::bf16>(N, 36, 16, true, 30 + N);  // rows not in whole 16-byte chunks
    check_linear<float>(N, 1000, 33, false, 40 + N);    // a tail shorter than the unrolled loop
  }
}

TEST_CASE("matmul: bf16 against the CPU reference") {
  check_linear<cuda::bf16>(16, 32, 48, true, 4);
  check_linear<cuda::bf16>(130, 8, 16, false, 5);
  check_linear<cuda::bf16>(1024, 768, 2304, false, 6);
}

TEST_CASE("matmul: misaligned views into a flat buffer") {
  // Parameter views start wherever the previous tensor ended: odd element offsets must work.
  const int N = 33, C = 24, OC = 40;
  std::vector<float> inp = random_floats(size_t(N) * C, 7), weight = random_floats(size_t(OC) * C, 8, 0.1f);
  std::vector<float> out_ref(size_t(N) * OC);
  cpu::matmul_forward(out_ref.data(), inp.data(), weight.data(), nullptr, N, C, OC);
  cuda::Blas blas;
  DeviceBuffer<float> flat(weight.size() + 3), d_inp(inp.size()), d_out(out_ref.size());
  DSK_CUDA_CHECK(cudaMemcpy(flat.get() + 3, weight.data(), weight.size() * 4, cudaMemcpyHostToDevice));
  upload(d_inp, inp);
  cuda::matmul_forward<float>(blas, d_out.get(), d_inp.get(), flat.get() + 3, nullptr, N, C, OC, false, nullptr);
  check_close("out", download(d_out), out_ref, 1e-5);
  // The few-row kernel on the same misaligned view (element loads instead of 16-byte ones).
  cuda::matmul_forward<float>(blas, d_out.get(), d_inp.get(), flat.get() + 3, nullptr, 1, C, OC, false, nullptr);
  std::vector<float> first_row = download(d_out);
  first_row.resize(OC);
  check_close("out, one row", first_row, std::vector<float>(out_ref.begin(), out_ref.begin() + OC), 1e-5);
}
