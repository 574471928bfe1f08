// A watchdog over the waits of one rank on the others (dist.timeout): a collective that has not
// finished after the timeout means another rank is stuck or gone (a hung GPU, a stopped process,
// a lost node), and waiting on would hang the whole job. The watchdog's thread then says so on
// stderr, naming the ranks that did not answer as far as this rank can tell, runs the backend's
// abort (ncclCommAbort, say) and ends this process with exit 5 (ExitCode::remote): the launcher
// (mpirun, srun, --nproc-per-node) sees a rank exit non-zero and stops the others.
//
//   Watchdog watchdog(timeout, rank, ranks, [&] { ncclCommAbort(comm); });
//   { auto waiting = watchdog.watch("MPI_Allreduce"); MPI_Allreduce(...); }
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace dsk::dist {

class Watchdog {
 public:
  // abort: run on the watchdog's thread before the process ends (may be empty).
  Watchdog(double timeout_seconds, int rank, int ranks, std::function<void()> abort = {});
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // A wait on the other ranks, watched from construction to destruction. Waits do not nest.
  class Wait {
   public:
    Wait() = default;  // nothing watched (one rank)
    Wait(Wait&& other) noexcept : watchdog_(std::exchange(other.watchdog_, nullptr)) {}
    Wait& operator=(Wait&&) = delete;
    ~Wait() {
      if (watchdog_) watchdog_->finish();
    }

   private:
    friend class Watchdog;
    explicit Wait(Watchdog* watchdog) : watchdog_(watchdog) {}
    Watchdog* watchdog_ = nullptr;
  };
  [[nodiscard]] Wait watch(const char* what);

  // The line the watchdog prints: who waited, for how long, in what, and who did not answer.
  static std::string timeout_message(int rank, int ranks, const std::string& what, double seconds);

 private:
  void finish();
  void run();

  const std::chrono::duration<double> timeout_;
  const int rank_, ranks_;
  const std::function<void()> abort_;
  std::mutex mutex_;
  std::condition_variable changed_;
  const char* waiting_in_ = nullptr;  // the wait in progress, if any
  std::chrono::steady_clock::time_point since_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace dsk::dist
