// Learning-rate schedules: linear warmup from 0 to lr over warmup_steps, then one of
//   constant  lr
//   cosine    lr -> min_lr along half a cosine by total_steps
//   linear    lr -> min_lr on a straight line by total_steps
//   wsd       warmup-stable-decay: lr held until the last decay_fraction of the steps, then linear to min_lr
// Steps count from 0; step s uses lr_at(s).
#pragma once

#include <cstdint>
#include <string>

namespace dsk::train {

enum class DecayShape { constant, cosine, linear, wsd };

// Parses "constant", "cosine", "linear" or "wsd"; a UsageError names `where` otherwise.
DecayShape parse_decay_shape(const std::string& name, const std::string& where);

struct Schedule {
  DecayShape shape = DecayShape::cosine;
  double lr = 3e-4;
  double min_lr = 3e-5;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 1;
  double decay_fraction = 0.2;  // wsd only

  double lr_at(std::int64_t step) const;
};

}  // namespace dsk::train
