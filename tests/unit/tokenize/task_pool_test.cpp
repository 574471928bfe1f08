// Results come back in submission order whatever the thread count; errors travel with them.
#include <doctest/doctest.h>

#include <chrono>
#include <deque>
#include <stdexcept>
#include <thread>

#include "tokenize/task_pool.hpp"

using namespace dsk::tokenize;

TEST_CASE("futures in a deque give submission order") {
  for (int threads : {1, 3, 8}) {
    TaskPool pool(threads);
    std::deque<std::future<int>> results;
    for (int i = 0; i < 64; ++i)
      results.push_back(pool.submit([i] {
        std::this_thread::sleep_for(std::chrono::microseconds((64 - i) * 20));  // later jobs finish first
        return i * i;
      }));
    for (int i = 0; i < 64; ++i) {
      CHECK(results.front().get() == i * i);
      results.pop_front();
    }
  }
}

TEST_CASE("an exception in a job comes back from get()") {
  TaskPool pool(2);
  auto failing = pool.submit([]() -> int { throw std::runtime_error("boom"); });
  auto fine = pool.submit([] { return 7; });
  CHECK_THROWS_WITH(failing.get(), "boom");
  CHECK(fine.get() == 7);
}
