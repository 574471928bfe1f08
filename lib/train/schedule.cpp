#include "train/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace dsk::train {

DecayShape parse_decay_shape(const std::string& name, const std::string& where) {
  if (name == "constant") return DecayShape::constant;
  if (name == "cosine") return DecayShape::cosine;
  if (name == "linear") return DecayShape::linear;
  if (name == "wsd") return DecayShape::wsd;
  throw UsageError(where + ": unknown schedule '" + name + "' (expected constant, cosine, linear or wsd)");
}

double Schedule::lr_at(std::int64_t step) const {
  if (step < warmup_steps) return lr * double(step + 1) / double(warmup_steps);
  if (shape == DecayShape::constant) return lr;
  // progress in [0, 1] over the steps after warmup (or, for wsd, over the decay tail).
  std::int64_t decay_start = warmup_steps;
  if (shape == DecayShape::wsd)
    decay_start = std::max(warmup_steps, total_steps - std::int64_t(std::llround(decay_fraction * total_steps)));
  if (step < decay_start) return lr;
  std::int64_t span = std::max<std::int64_t>(1, total_steps - decay_start);
  double progress = std::clamp(double(step - decay_start) / double(span), 0.0, 1.0);
  if (shape == DecayShape::cosine) return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
  return lr + (min_lr - lr) * progress;  // linear and wsd's tail
}

}  // namespace dsk::train
