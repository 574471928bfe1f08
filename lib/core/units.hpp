// Sizes and durations as people type them on a command line or in YAML, and counts as they read them.
#pragma once

#include <cstdint>
#include <string>

namespace dsk {

// "8", "8B", "64K", "64KB", "1M", "1MiB", "1.5G", "8GiB" -> bytes. K/M/G/T are powers of 1024
// (as nccl-tests and the AWS CLI read them). UsageError naming `what` when malformed.
uint64_t parse_size(const std::string& text, const std::string& what);

// "30", "30s", "5m", "2h", "7d" -> seconds.
double parse_duration(const std::string& text, const std::string& what);

// "1 document", "0 documents", "3 shards": a count and a noun with a regular plural.
std::string count_of(uint64_t count, const std::string& noun);

}  // namespace dsk
