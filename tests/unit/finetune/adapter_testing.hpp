// What the adapter tests share: a frozen tiny base and random adapter values.
#pragma once

#include <random>
#include <vector>

#include "model/model.hpp"

namespace dsk::finetune::testing {

inline model::Model frozen(const model::Architecture& arch) {
  return model::Model(arch, 7, 0.2f, nullptr, model::ModelOptions{true});
}

inline std::vector<float> random_values(size_t n, uint64_t seed, float std = 0.3f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, std);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

}  // namespace dsk::finetune::testing
