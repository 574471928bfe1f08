// The teacher cache's files: cache.yaml round-trips and names the first difference; a part
// written and read gives back its rows (log-probabilities through the cache's dtype), found by the
// window's tokens; a window the cache lacks, a missing part and a malformed cache.yaml are errors.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "distill/teacher_cache.hpp"

using namespace dsk;
using namespace dsk::distill;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("dsk-cache-test-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

TeacherCacheSpec small_spec(const std::string& dtype) {
  TeacherCacheSpec spec;
  spec.teacher = "/models/teacher";
  spec.teacher_sha256 = std::string(64, 'a');
  spec.tokenizer_sha256 = "none";
  spec.vocab_size = 50;
  spec.seq_len = 3;
  spec.seed = 7;
  spec.windows = 3;
  spec.windows_per_part = 2;
  spec.top_k = 2;
  spec.temperature = 1.5;
  spec.dtype = dtype;
  return spec;
}

// Part p of the spec: window w's tokens are 10w + t, its rows' ids (w, t + 20), log-probs
// -(w + t + 1) / 4 and -(w + t + 2) / 4, rest (w + t) / 100.
void write_parts(const fs::path& dir, const TeacherCacheSpec& spec) {
  for (uint64_t part = 0; part < spec.parts(); part++) {
    std::vector<uint32_t> tokens;
    std::vector<int32_t> ids;
    std::vector<float> logprobs, rest;
    for (uint64_t i = 0; i < spec.windows_in_part(part); i++) {
      const int w = int(part * spec.windows_per_part + i);
      for (int t = 0; t <= spec.seq_len; t++) tokens.push_back(uint32_t(10 * w + t));
      for (int t = 0; t < spec.seq_len; t++) {
        ids.insert(ids.end(), {w, t + 20});
        logprobs.insert(logprobs.end(), {-(w + t + 1) / 4.0f, -(w + t + 2) / 4.0f});
        rest.push_back(float(w + t) / 100.0f);
      }
    }
    write_cache_part(dir, part, spec, tokens, ids, logprobs, rest);
  }
}

}  // namespace

TEST_CASE("cache.yaml round-trips, and first_difference names the first setting that differs") {
  TempDir dir;
  const TeacherCacheSpec spec = small_spec("BF16");
  write_cache_manifest(dir.path, spec);
  const TeacherCacheSpec back = read_cache_manifest(dir.path);
  CHECK(first_difference(back, spec).empty());
  CHECK(back.teacher == spec.teacher);
  TeacherCacheSpec other = spec;
  other.top_k = 3;
  CHECK(first_difference(spec, other) == "top_k: 2 (cache) vs 3 (now)");
  other = spec;
  other.teacher_sha256 = std::string(64, 'b');
  CHECK(first_difference(spec, other).rfind("teacher_sha256:", 0) == 0);
}

TEST_CASE("a written cache reads back by window tokens, through each dtype") {
  for (const char* dtype : {"F32", "BF16", "F16"}) {
    CAPTURE(dtype);
    TempDir dir;
    const TeacherCacheSpec spec = small_spec(dtype);
    write_cache_manifest(dir.path, spec);
    write_parts(dir.path, spec);
    TeacherCache cache(dir.path);
    std::vector<int32_t> ids(6);
    std::vector<float> logprobs(6), rest(3);
    for (int w : {2, 0, 1}) {
      std::vector<uint32_t> tokens;
      for (int t = 0; t <= 3; t++) tokens.push_back(uint32_t(10 * w + t));
      cache.rows_of_window(tokens.data(), {ids.data(), logprobs.data(), rest.data()});
      for (int t = 0; t < 3; t++) {
        CHECK(ids[2 * t] == w);
        CHECK(ids[2 * t + 1] == t + 20);
        CHECK(logprobs[2 * t] == doctest::Approx(-(w + t + 1) / 4.0).epsilon(std::string(dtype) == "F32" ? 1e-7 : 4e-3));
        CHECK(rest[t] == float(w + t) / 100.0f);
      }
    }
    std::vector<uint32_t> unknown = {1, 2, 3, 4};
    CHECK_THROWS_AS(cache.rows_of_window(unknown.data(), {ids.data(), logprobs.data(), rest.data()}), DataError);
  }
}

TEST_CASE("an incomplete cache and a malformed cache.yaml are bad data") {
  TempDir dir;
  const TeacherCacheSpec spec = small_spec("BF16");
  write_cache_manifest(dir.path, spec);
  write_parts(dir.path, spec);
  fs::remove(cache_part_path(dir.path, 1));
  CHECK_THROWS_WITH_AS(TeacherCache{dir.path}, doctest::Contains("1 of 2 parts missing"), DataError);
  std::ofstream(cache_manifest_path(dir.path)) << "format: dsk-teacher-cache\nversion: 1\nteacher: [x\n";
  CHECK_THROWS_AS(read_cache_manifest(dir.path), DataError);
  std::ofstream(cache_manifest_path(dir.path)) << "format: dsk-teacher-cache\nversion: 1\n";
  CHECK_THROWS_WITH_AS(read_cache_manifest(dir.path), doctest::Contains("no 'teacher'"), DataError);
}
