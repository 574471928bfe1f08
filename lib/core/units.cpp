#include "core/units.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "core/error.hpp"

namespace dsk {
namespace {
// Splits "1.5GiB" into 1.5 and "gib" (lower case); false when the number part is missing.
bool split_number(const std::string& text, double& number, std::string& suffix) {
  const char* begin = text.c_str();
  char* end = nullptr;
  number = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(number) || number < 0) return false;
  suffix.clear();
  for (const char* p = end; *p; ++p) {
    if (std::isspace(static_cast<unsigned char>(*p))) continue;
    suffix += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
  }
  return true;
}
}  // namespace

uint64_t parse_size(const std::string& text, const std::string& what) {
  double number = 0;
  std::string suffix;
  if (!split_number(text, number, suffix)) throw UsageError(str(what, ": expected a size like 64M or 8GiB, got '", text, "'"));
  double scale = 0;
  if (suffix.empty() || suffix == "b") scale = 1;
  else if (suffix == "k" || suffix == "kb" || suffix == "kib") scale = 1024.0;
  else if (suffix == "m" || suffix == "mb" || suffix == "mib") scale = 1024.0 * 1024;
  else if (suffix == "g" || suffix == "gb" || suffix == "gib") scale = 1024.0 * 1024 * 1024;
  else if (suffix == "t" || suffix == "tb" || suffix == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else throw UsageError(str(what, ": unknown size unit '", suffix, "' in '", text, "'"));
  double bytes = number * scale;
  if (bytes > 1.8e19) throw UsageError(str(what, ": size '", text, "' is too large"));
  return static_cast<uint64_t>(std::llround(bytes));
}

double parse_duration(const std::string& text, const std::string& what) {
  double number = 0;
  std::string suffix;
  if (!split_number(text, number, suffix)) throw UsageError(str(what, ": expected a duration like 30s, 5m or 7d, got '", text, "'"));
  if (suffix.empty() || suffix == "s") return number;
  if (suffix == "ms") return number / 1000;
  if (suffix == "m" || suffix == "min") return number * 60;
  if (suffix == "h") return number * 3600;
  if (suffix == "d") return number * 86400;
  throw UsageError(str(what, ": unknown duration unit '", suffix, "' in '", text, "'"));
}

std::string count_of(uint64_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

}  // namespace dsk
