// The dsk-train config: defaults, file:line errors, and --print-config output that loads again.
#include <doctest/doctest.h>

#include "core/error.hpp"
#include "train/train_schema.hpp"

using namespace dsk;
using namespace dsk::train;

TEST_CASE("a dsk-train config loads, and its printed form loads to the same config") {
  auto config = Config::from_text(train_schema(), "data:\n  train: [shards]\n  seq_len: 64\nsteps: 100\n"
                                  "schedule:\n  type: wsd\n  warmup_steps: 10\n", "run.yaml", {"optim.lr=0.01"});
  CHECK(config.get_int("data.seq_len") == 64);
  CHECK(config.get_double("optim.lr") == doctest::Approx(0.01));
  auto schedule = schedule_from(config, 100);
  CHECK(schedule.shape == DecayShape::wsd);
  CHECK(schedule.lr_at(50) == doctest::Approx(0.01));

  auto again = Config::from_text(train_schema(), config.to_yaml(), "printed");
  CHECK(again.to_yaml() == config.to_yaml());
}

TEST_CASE("unknown keys and wrong types name the file and line") {
  CHECK_THROWS_WITH_AS(Config::from_text(train_schema(), "data:\n  train: [x]\noptim:\n  lrr: 1\n", "run.yaml"),
                       doctest::Contains("run.yaml:4"), UsageError);
  CHECK_THROWS_WITH_AS(Config::from_text(train_schema(), "data:\n  train: [x]\n  seq_len: long\n", "run.yaml"),
                       doctest::Contains("run.yaml:3"), UsageError);
  CHECK_THROWS_AS(Config::from_text(train_schema(), "data:\n  train: [x]\nschedule:\n  type: step\n", "run.yaml"),
                  UsageError);
}
