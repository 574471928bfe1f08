#include "core/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/log.hpp"

namespace dsk {

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int unit = 0;
  while (std::fabs(bytes) >= 1024.0 && unit < 5) {
    bytes /= 1024.0;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return buffer;
}

std::string human_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  long total = static_cast<long>(seconds + 0.5);
  char buffer[32];
  if (total >= 3600)
    std::snprintf(buffer, sizeof buffer, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
  else
    std::snprintf(buffer, sizeof buffer, "%ld:%02ld", total / 60, total % 60);
  return buffer;
}

Progress::Progress(std::string label, uint64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total) {
  terminal_ = isatty(STDERR_FILENO) == 1;
  enabled_ = log_enabled(LogLevel::info);
  interval_seconds_ = terminal_ ? 0.1 : 30.0;
  if (const char* env = std::getenv("DSK_PROGRESS_INTERVAL"); env && !terminal_) {
    double parsed = std::atof(env);
    if (parsed > 0) interval_seconds_ = parsed;
  }
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_ && terminal_ && enabled_) {
    std::lock_guard lock(stderr_mutex());
    std::fputs("\n", stderr);
  }
}

void Progress::add(uint64_t amount) {
  done_ += amount;
  maybe_draw(false);
}

void Progress::set(uint64_t done) {
  done_ = done;
  maybe_draw(false);
}

void Progress::set_already_done(uint64_t done) {
  already_done_ = done;
  set(done);
}

void Progress::set_total(uint64_t total) { total_ = total; }

void Progress::set_note(std::string note) {
  std::lock_guard lock(mutex_);
  note_ = std::move(note);
}

void Progress::finish() {
  if (finished_) return;
  maybe_draw(true);
  finished_ = true;
  if (terminal_ && enabled_) {
    std::lock_guard lock(stderr_mutex());
    std::fputs("\n", stderr);
  }
}

std::string Progress::render() const {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  uint64_t done = done_.load();
  uint64_t total = total_.load();
  // No rate until this process has done something in measurable time: a resumed run that has
  // nothing left to do would otherwise show its whole count over a microsecond.
  const uint64_t done_here = done > already_done_ ? done - already_done_ : 0;
  const bool has_rate = done_here > 0 && elapsed > 0;
  double rate = has_rate ? done_here / elapsed : 0;
  bool bytes = unit_ == "B";
  std::string amount = bytes ? human_bytes(done) : str(done);
  if (total) amount += str(" / ", bytes ? human_bytes(total) : str(total));
  // A slow count (training steps) keeps two significant decimals instead of showing "0 steps/s".
  std::string count_rate = rate >= 10 ? str(static_cast<uint64_t>(rate)) : str(std::round(rate * 100) / 100);
  std::string rate_text = bytes ? str(human_bytes(rate), "/s") : str(count_rate, " ", unit_, "/s");
  std::string line = label_ + " ";
  if (total) {
    double fraction = std::min(1.0, static_cast<double>(done) / total);
    if (terminal_) {
      const int width = 24;
      int filled = static_cast<int>(fraction * width);
      line += "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
    }
    char percent[16];
    std::snprintf(percent, sizeof percent, "%3.0f%% ", fraction * 100);
    line += percent;
  }
  line += amount + "  " + (has_rate ? rate_text + "  " : "") + human_duration(elapsed);
  if (total && has_rate && done < total) line += " eta " + human_duration((total - done) / rate);
  std::lock_guard lock(mutex_);
  if (!note_.empty()) line += "  " + note_;
  return line;
}

void Progress::maybe_draw(bool force) {
  if (!enabled_ || finished_) return;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mutex_);
    if (!force && std::chrono::duration<double>(now - last_draw_).count() < interval_seconds_) return;
    last_draw_ = now;
  }
  std::string line = render();
  std::lock_guard lock(stderr_mutex());
  if (terminal_) {
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    note_progress_bar_drawn();
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

}  // namespace dsk
