// A cache of what loading a tokenizer.json builds: the BPE model's vocab and checked merges
// (merges as ids, no longer strings to look up) and the rest of the file as JSON text. Loading
// DeepSeek-V3's 7.8 MB tokenizer.json from it skips the JSON parse of the vocab and merges and
// their checks, the one part of dsk-tokenize that does not run on all threads.
//
// One file per tokenizer.json content: <dir>/<sha256 of tokenizer.json>.bin,
//   header:  "DSKTOKC\n", u32 byte-order mark 0x01020304, u32 format version,
//            64 hex digits: sha256 of tokenizer.json, 64 hex digits: sha256 of the payload,
//            u64 payload bytes;
//   payload: u64 n, n bytes: the JSON text (model.vocab and model.merges empty);
//            u64 n, n x {u32 id, u32 bytes, the token's bytes}: the vocab in file order;
//            u64 n, n x {u32 left, u32 right, u32 merged}: the merges by rank.
// A file that is short, of another format or content, fails its sha256 or holds ids out of
// range is not used (the tokenizer is loaded from its JSON and the file written again).
// tokenizer_config.json is small and always read afresh.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tokenizer/bpe.hpp"

namespace dsk::tokenizer {

// $DSK_TOKENIZER_CACHE (a directory, or "off" for none), else $XDG_CACHE_HOME/dsk/tokenizer,
// else ~/.cache/dsk/tokenizer; none without a home directory.
std::optional<std::filesystem::path> tokenizer_cache_dir();

// The cache file for tokenizer.json's text, keyed by its sha256 (`key`, hex).
std::filesystem::path tokenizer_cache_file(const std::filesystem::path& dir, const std::string& key);

struct CachedTokenizer {
  std::string json;  // tokenizer.json without model.vocab and model.merges
  BpeModel model;
};

// The cache's content when the file is there, whole, of this format and for `key`; nullopt
// otherwise (never an error: a cache is only ever a shortcut).
std::optional<CachedTokenizer> read_tokenizer_cache(const std::filesystem::path& file, const std::string& key);

// Writes the file (atomically: a reader never sees half of it). Throws on a write error.
void write_tokenizer_cache(const std::filesystem::path& file, const std::string& key, std::string_view json,
                           const BpeModel& model);

// The same on the file's bytes (tests, fuzzing).
std::optional<CachedTokenizer> parse_tokenizer_cache(std::string_view bytes, const std::string& key);
std::string tokenizer_cache_bytes(const std::string& key, std::string_view json, const BpeModel& model);

}  // namespace dsk::tokenizer
