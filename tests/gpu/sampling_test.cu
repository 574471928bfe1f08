// argmax_rows (kernels/cuda/sampling.cu) against kernels/cpu/sampling.cpp: exact ids on random
// rows of LM-head widths, on rows with ties (the lower index wins) and on a row of -inf only.
#include <cmath>

#include "cpu/kernels.hpp"
#include "cuda/sampling.cuh"
#include "parity.cuh"

using namespace dsk::gpu_test;
namespace cpu = dsk::kernels::cpu;
namespace cuda = dsk::kernels::cuda;

TEST_CASE("argmax_rows picks the CPU's ids: the first of the largest values") {
  for (int V : {7, 128, 32000, 129280}) {
    CAPTURE(V);
    const int rows = 33;
    std::vector<float> logits = random_floats(size_t(rows) * V, 300 + V);
    // Row 1: its max appears three times; row 2: every value equal; row 3: -inf everywhere.
    for (int i : {V / 3, V / 2, V - 1}) logits[size_t(V) + i] = 100.0f;
    for (int i = 0; i < V; i++) logits[2 * size_t(V) + i] = 0.5f;
    for (int i = 0; i < V; i++) logits[3 * size_t(V) + i] = -INFINITY;
    std::vector<int32_t> want(rows);
    cpu::argmax_rows(want.data(), logits.data(), rows, V);
    DeviceBuffer<float> device_logits(logits.size());
    DeviceBuffer<int32_t> ids(rows);
    upload(device_logits, logits);
    cuda::argmax_rows(ids.get(), device_logits.get(), rows, V, nullptr);
    std::vector<int32_t> got(rows);
    DSK_CUDA_CHECK(cudaMemcpy(got.data(), ids.get(), rows * sizeof(int32_t), cudaMemcpyDeviceToHost));
    CHECK(got == want);
    CHECK(got[1] == V / 3);
    CHECK(got[2] == 0);
    CHECK(got[3] == 0);
  }
}
