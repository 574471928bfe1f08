// The reader-to-writer queue: order kept, the producer held back when it is full, and both ways
// of ending (the producer closes, the consumer cancels) wake whoever waits.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tokenize/bounded_queue.hpp"

using namespace dsk::tokenize;
using namespace std::chrono_literals;

TEST_CASE("items come out in order; close() ends the stream once drained") {
  BoundedQueue<int> queue(3);
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) REQUIRE(queue.push(i));
    queue.close();
  });
  int expected = 0;
  while (auto item = queue.pop()) CHECK(*item == expected++);
  CHECK(expected == 1000);
  producer.join();
}

TEST_CASE("a full queue holds the producer back until an item is taken") {
  BoundedQueue<int> queue(2);
  std::atomic<int> pushed{0};
  std::thread producer([&] {
    for (int i = 0; i < 3; ++i) {
      queue.push(i);
      ++pushed;
    }
  });
  std::this_thread::sleep_for(50ms);
  CHECK(pushed == 2);  // the third waits: at most `capacity` items in the queue
  CHECK(queue.pop() == 0);
  producer.join();
  CHECK(pushed == 3);
}

TEST_CASE("cancel() releases a producer waiting on a full queue, and later pushes fail") {
  BoundedQueue<int> queue(1);
  REQUIRE(queue.push(1));
  std::atomic<bool> returned{false}, result{true};
  std::thread producer([&] {
    result = queue.push(2);
    returned = true;
  });
  std::this_thread::sleep_for(20ms);
  CHECK_FALSE(returned);
  queue.cancel();
  producer.join();
  CHECK_FALSE(result);
  CHECK_FALSE(queue.push(3));
}

TEST_CASE("push_made builds nothing once cancelled (a producer left behind touches nothing more)") {
  BoundedQueue<int> queue(2);
  bool made = false;
  CHECK(queue.push_made([&] { return 1; }));
  queue.cancel();
  CHECK_FALSE(queue.push_made([&] {
    made = true;
    return 2;
  }));
  CHECK_FALSE(made);
}
