// A first-in first-out queue of at most `capacity` items from one producer thread to one
// consumer: push() waits while it is full (so a fast reader cannot run ahead of the writer
// by more than `capacity` items of memory), pop() waits while it is empty. The producer calls
// close() when it has no more; pop() then drains and returns nullopt. The consumer calls
// cancel() when it gives up (an error); push() then returns false at once and drops the item.
// push_made(make) builds the item under the queue's lock, and not at all once cancelled: a
// producer that outlives its consumer never calls make() after cancel() has returned.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

namespace dsk::tokenize {

template <typename Item>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  bool push(Item item) {
    return push_made([&item] { return std::move(item); });
  }

  template <typename Make>
  bool push_made(Make make) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [this] { return cancelled_ || items_.size() < capacity_; });
    if (cancelled_) return false;
    items_.push_back(make());
    not_empty_.notify_one();
    return true;
  }

  std::optional<Item> pop() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [this] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    Item item = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return item;
  }

  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    not_empty_.notify_all();
  }

  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    not_full_.notify_all();
  }

 private:
  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Item> items_;
  bool closed_ = false;
  bool cancelled_ = false;
};

}  // namespace dsk::tokenize
