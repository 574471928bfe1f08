// The teacher cache: a teacher's top-K distribution at every position of the training windows a
// student run will draw, computed once (`dsk-distill cache`) so that a student run, or a sweep of
// them, never reruns the teacher. man dsk-formats(5) describes the layout:
//
//   CACHE/cache.yaml          what it was made from and how (TeacherCacheSpec), written first
//   CACHE/part-000000.zst     windows [0, P): their tokens, then per position the teacher's K ids,
//   CACHE/part-000001.zst     K log-probabilities (at the temperature, in `dtype`) and rest mass
//   ...
//
// Window k is window k of the run's loader (train/token_windows.hpp: data.train, data.seq_len,
// seed), so windows come in the order a run consumes them. Each part is written whole under a
// temporary name and renamed, from whole micro-batches, so an interrupted cache resumes at its
// first missing part and ends with the same bytes as one never interrupted.
//
// A student run finds a batch's windows by their tokens (a hash, then the stored tokens compared),
// so a resumed run, whatever its cursor, reads the right teacher rows, and a cache made from other
// data (or another tokenizer's shards) is refused rather than misread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/dtype.hpp"

namespace dsk::distill {

struct TeacherCacheSpec {
  std::string teacher;            // the teacher checkpoint's path when made (information only)
  std::string teacher_sha256;     // model_identity.hpp: checkpoint_sha256
  std::string tokenizer_sha256;   // of the shards' tokenizer.json ("none" when unknown)
  int64_t vocab_size = 0;
  int64_t seq_len = 0;
  uint64_t seed = 0;
  uint64_t windows = 0;           // windows 0 .. windows - 1 of the loader
  uint64_t windows_per_part = 0;
  int64_t top_k = 0;
  double temperature = 1.0;
  std::string dtype = "BF16";     // of the log-probabilities: F32, BF16 or F16

  uint64_t parts() const { return (windows + windows_per_part - 1) / windows_per_part; }
  uint64_t windows_in_part(uint64_t part) const;
  io::DType logprob_dtype() const;
  size_t bytes_per_position() const;  // ids, log-probabilities, rest
};

// One window's teacher rows, host memory: ids [T,K], logprobs [T,K] (f32), rest [T].
struct TeacherRowsView {
  int32_t* ids;
  float* logprobs;
  float* rest;
};

std::filesystem::path cache_manifest_path(const std::filesystem::path& cache);
std::filesystem::path cache_part_path(const std::filesystem::path& cache, uint64_t part);

// cache.yaml: written atomically; read with a DataError naming the file and key when malformed.
void write_cache_manifest(const std::filesystem::path& cache, const TeacherCacheSpec& spec);
TeacherCacheSpec read_cache_manifest(const std::filesystem::path& cache);
// The first setting in which two specs differ, as "key: a (cache) vs b (now)", or "".
std::string first_difference(const TeacherCacheSpec& cache, const TeacherCacheSpec& now);

// 64-bit FNV-1a of a window's T + 1 tokens: the cache's lookup key.
uint64_t window_hash(const uint32_t* tokens, size_t count);

// Writes one part: tokens [n, T + 1] then, per window and position, K ids (u32), K log-probs
// (spec.dtype) and the rest mass (f32), zstd-compressed, renamed into place when whole.
void write_cache_part(const std::filesystem::path& cache, uint64_t part, const TeacherCacheSpec& spec,
                      const std::vector<uint32_t>& tokens, const std::vector<int32_t>& ids,
                      const std::vector<float>& logprobs, const std::vector<float>& rest);

// Reads a whole cache: checks that every part is there, indexes the windows by their tokens and
// loads one part at a time as windows are asked for (a run asks for them in order).
class TeacherCache {
 public:
  explicit TeacherCache(const std::filesystem::path& cache);
  ~TeacherCache();
  const TeacherCacheSpec& spec() const { return spec_; }
  const std::filesystem::path& path() const { return path_; }

  // Fills `out` with the teacher rows of the window whose T + 1 tokens are `tokens`; DataError
  // when the cache holds no such window (other data, seed, seq_len, or a longer run).
  void rows_of_window(const uint32_t* tokens, const TeacherRowsView& out);

 private:
  struct Part;
  void load_part(uint64_t part);

  std::filesystem::path path_;
  TeacherCacheSpec spec_;
  std::unordered_multimap<uint64_t, uint64_t> window_of_hash_;
  std::unique_ptr<Part> part_;
};

}  // namespace dsk::distill
