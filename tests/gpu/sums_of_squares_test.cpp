// The CUDA backend's sums_of_squares (the expert-parallel gradient norm's pieces, one wait for the
// device per step) against sum_of_squares of each piece: the same bits, whatever the pieces' sizes
// and order (the partials' scratch is shared, each sum has its own slot).
#include <doctest/doctest.h>

#include <random>
#include <vector>

#include "tensor/device.hpp"

using namespace dsk;

TEST_CASE("sums_of_squares gives each piece's sum_of_squares bit for bit") {
  std::shared_ptr<tensor::Ops> ops = tensor::make_ops("cuda", "fp32");
  const int64_t total = (int64_t(1) << 21) + 17;
  std::vector<float> host(static_cast<size_t>(total));
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0.0f, 1e-3f);
  for (float& x : host) x = normal(rng);
  void* memory = ops->allocate(size_t(total) * sizeof(float), "test gradients");
  tensor::Buf all{memory, total, tensor::DType::f32};
  ops->copy_from_host(all, host.data());
  // A large piece between small ones, an empty one, and unaligned offsets.
  const std::vector<std::pair<int64_t, int64_t>> ranges = {{0, 1}, {1, 5}, {6, (int64_t(1) << 20) + 3},
                                                           {(int64_t(1) << 20) + 9, 0}, {(int64_t(1) << 20) + 9, 1000},
                                                           {(int64_t(1) << 20) + 2000, (int64_t(1) << 20) - 1983}};
  std::vector<tensor::Buf> pieces;
  for (const auto& [offset, numel] : ranges) pieces.push_back(all.slice(offset, numel));
  const std::vector<double> sums = ops->sums_of_squares(pieces);
  REQUIRE(sums.size() == pieces.size());
  for (size_t i = 0; i < pieces.size(); i++) {
    CAPTURE(i);
    CHECK(sums[i] == ops->sum_of_squares(pieces[i]));
  }
  CHECK(ops->sums_of_squares({}).empty());
  ops->release(memory);
}
