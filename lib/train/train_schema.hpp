// The keys of a dsk-train config (YAML, --set, --print-config): model, data, optim, schedule,
// run length, eval, checkpoint, logging, moe. lib/core/config checks types, ranges and unknown keys.
#pragma once

#include "core/config.hpp"
#include "train/schedule.hpp"

namespace dsk::train {

const Schema& train_schema();

// The schedule section of a loaded config; total_steps is the run's step count.
Schedule schedule_from(const Config& config, std::int64_t total_steps);

}  // namespace dsk::train
