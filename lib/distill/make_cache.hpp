// `dsk-distill cache`: runs the teacher (distill.teacher) over the windows a student run of the
// same config will draw and writes the teacher cache (teacher_cache.hpp) to distill.cache.
// Rerunning the same command after an interruption (a signal, a crash) keeps the whole parts and
// makes the missing ones; a cache directory made with other settings is refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/config.hpp"

namespace dsk::distill {

struct CacheOutcome {
  std::filesystem::path path;
  std::string teacher_sha256, tokenizer_sha256;
  uint64_t windows = 0, parts = 0, parts_made = 0;
  int64_t top_k = 0, seq_len = 0;
  uint64_t bytes = 0;  // of the parts on disk
};

// config follows distill_schema(). Throws Interrupted (exit 130/143) on a stop signal, after the
// part under way is written.
CacheOutcome make_teacher_cache(const Config& config);

}  // namespace dsk::distill
