// Progress on stderr: a redrawn bar when stderr is a terminal, otherwise (Slurm logs, pipes) one
// plain status line every interval (default 30 s; DSK_PROGRESS_INTERVAL=seconds overrides).
// Thread-safe: workers call add() concurrently. Silent under -q.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace dsk {

class Progress {
 public:
  // total = 0 means unknown. unit "B" prints bytes and MB/s; any other unit prints counts.
  Progress(std::string label, uint64_t total, std::string unit = "B");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void add(uint64_t amount);
  void set(uint64_t done);
  // Work done before this process started (a resumed run's steps): counted in the amount shown,
  // not in the rate, which covers only what this process did.
  void set_already_done(uint64_t done);
  void set_total(uint64_t total);
  // Short extra text shown after the rate, e.g. "loss 3.21".
  void set_note(std::string note);
  // Draws the final state once and ends the bar's line.
  void finish();

  uint64_t done() const { return done_.load(); }

 private:
  void maybe_draw(bool force);
  std::string render() const;

  std::string label_;
  std::string unit_;
  std::atomic<uint64_t> total_;
  std::atomic<uint64_t> done_{0};
  uint64_t already_done_ = 0;
  std::string note_;
  bool terminal_;
  bool enabled_;
  bool finished_ = false;
  double interval_seconds_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  mutable std::mutex mutex_;
};

// "1.5 MiB", "12.0 GiB".
std::string human_bytes(double bytes);
// "0:12", "1:02:03".
std::string human_duration(double seconds);

}  // namespace dsk
