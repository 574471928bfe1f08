// The watchdog's message names the rank waited for when it can tell (2 ranks); waits that end in
// time never trip it (a timeout that fired would end the test process with exit 5).
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "dist/watchdog.hpp"

using dsk::dist::Watchdog;

TEST_CASE("the watchdog's message names the other rank of two, and no rank of more") {
  const std::string two = Watchdog::timeout_message(0, 2, "MPI_Allreduce", 5);
  CHECK(two.find("rank 0 waited 5 s (dist.timeout) in MPI_Allreduce") != std::string::npos);
  CHECK(two.find("rank 1 is stuck or gone") != std::string::npos);
  const std::string four = Watchdog::timeout_message(2, 4, "ncclAllGather", 300);
  CHECK(four.find("one of the other ranks is stuck or gone") != std::string::npos);
}

TEST_CASE("waits shorter than the timeout, one after another, pass") {
  Watchdog watchdog(1.0, 0, 2);
  for (int i = 0; i < 5; ++i) {
    auto waiting = watchdog.watch("a short wait");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  // Idle longer than the timeout between waits: not a wait, so not a timeout.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(true);
}
