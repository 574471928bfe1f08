// Logging to stderr, for people. stdout is reserved for records (core/record.hpp).
//   errors:   "<tool>: error: ..."     (always, unless the tool exits silently on purpose)
//   warnings: "<tool>: warning: ..."   (hidden by -q)
//   info:     "[HH:MM:SS] ..."         (hidden by -q)
//   debug:    "[HH:MM:SS] debug: ..."  (shown with -v)
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace dsk {

enum class LogLevel : int { error = 0, warn = 1, info = 2, debug = 3 };

void set_tool_name(std::string name);
const std::string& tool_name();
void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);

void log_line(LogLevel level, std::string_view message);

// For core/progress: stderr is shared by logs and the progress bar.
std::mutex& stderr_mutex();
void note_progress_bar_drawn();

template <typename... Parts>
void log_error(const Parts&... parts) { log_line(LogLevel::error, str(parts...)); }
template <typename... Parts>
void log_warn(const Parts&... parts) {
  if (log_enabled(LogLevel::warn)) log_line(LogLevel::warn, str(parts...));
}
template <typename... Parts>
void log_info(const Parts&... parts) {
  if (log_enabled(LogLevel::info)) log_line(LogLevel::info, str(parts...));
}
template <typename... Parts>
void log_debug(const Parts&... parts) {
  if (log_enabled(LogLevel::debug)) log_line(LogLevel::debug, str(parts...));
}

}  // namespace dsk
