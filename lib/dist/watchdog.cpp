#include "dist/watchdog.hpp"

#include <algorithm>
#include <cstdlib>

#include "core/error.hpp"
#include "core/log.hpp"

namespace dsk::dist {

Watchdog::Watchdog(double timeout_seconds, int rank, int ranks, std::function<void()> abort)
    : timeout_(timeout_seconds), rank_(rank), ranks_(ranks), abort_(std::move(abort)) {
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

Watchdog::Wait Watchdog::watch(const char* what) {
  {
    std::lock_guard lock(mutex_);
    waiting_in_ = what;
    since_ = std::chrono::steady_clock::now();
  }
  // No wake-up: the watchdog looks every second, which is precise enough for timeouts of seconds.
  return Wait(this);
}

void Watchdog::finish() {
  std::lock_guard lock(mutex_);
  waiting_in_ = nullptr;
}

std::string Watchdog::timeout_message(int rank, int ranks, const std::string& what, double seconds) {
  // A rank cannot see which of the others is missing from a collective; with two, it is the other.
  const std::string missing = ranks == 2 ? str("rank ", 1 - rank, " is") : "one of the other ranks is";
  return str("rank ", rank, " waited ", seconds, " s (dist.timeout) in ", what, " for the other ranks: ", missing,
             " stuck or gone; stopping all ranks");
}

void Watchdog::run() {
  using Clock = std::chrono::steady_clock;
  // The watchdog wakes at least every second: a longer gap between wakes means this process was
  // itself frozen (SIGSTOP, a suspended VM), time that the other ranks are not to blame for.
  const auto tick = std::chrono::seconds(1);
  std::unique_lock lock(mutex_);
  auto last_wake = Clock::now();
  while (!stopping_) {
    const auto deadline = waiting_in_ ? since_ + std::chrono::duration_cast<Clock::duration>(timeout_)
                                      : Clock::time_point::max();
    changed_.wait_until(lock, std::min(deadline, Clock::now() + tick));
    const auto now = Clock::now();
    if (now - last_wake > 3 * tick) since_ += now - last_wake - tick;
    last_wake = now;
    if (stopping_ || waiting_in_ == nullptr) continue;
    if (now - since_ < timeout_) continue;
    log_error(timeout_message(rank_, ranks_, waiting_in_, timeout_.count()));
    if (abort_) abort_();
    // Not exit(): the main thread is blocked inside the collective, and static destructors
    // (MPI's, NCCL's) could wait for it.
    std::_Exit(int(ExitCode::remote));
  }
}

}  // namespace dsk::dist
