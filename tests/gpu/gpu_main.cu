// The main() of every GPU test binary: doctest's, after checking that a GPU is there. Without one
// the binary exits 77, which ctest reports as skipped (CI builds these tests but has no GPU).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <cstdio>

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "no CUDA device: GPU test skipped\n");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
