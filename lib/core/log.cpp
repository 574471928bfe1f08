#include "core/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace dsk {
namespace {
std::string g_tool_name = "dsk";
std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::mutex g_stderr_mutex;
std::atomic<bool> g_bar_on_line{false};

std::string clock_stamp() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[16];
  std::strftime(buffer, sizeof buffer, "%H:%M:%S", &local);
  return buffer;
}
}  // namespace

void set_tool_name(std::string name) { g_tool_name = std::move(name); }
const std::string& tool_name() { return g_tool_name; }
void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
bool log_enabled(LogLevel level) { return static_cast<int>(level) <= g_level.load(); }

void note_progress_bar_drawn() { g_bar_on_line = true; }
std::mutex& stderr_mutex() { return g_stderr_mutex; }

void log_line(LogLevel level, std::string_view message) {
  std::string line;
  switch (level) {
    case LogLevel::error: line = str(g_tool_name, ": error: ", message); break;
    case LogLevel::warn: line = str(g_tool_name, ": warning: ", message); break;
    case LogLevel::info: line = str("[", clock_stamp(), "] ", message); break;
    case LogLevel::debug: line = str("[", clock_stamp(), "] debug: ", message); break;
  }
  line += '\n';
  std::lock_guard lock(g_stderr_mutex);
  // A progress bar may own the current terminal line: erase it; it is redrawn on its next update.
  if (g_bar_on_line.exchange(false)) std::fputs("\r\033[K", stderr);
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

}  // namespace dsk
