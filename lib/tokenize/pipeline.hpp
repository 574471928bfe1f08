// dsk-tokenize's work: documents in, token shards out.
//
//   reader (this thread) -> batches of documents -> TaskPool (N threads: UTF-8 already checked,
//   encode) -> futures in submission order -> split by document number -> ShardSetWriter
//   "train" / "val" -> index.yaml (last) -> the directory renamed into place.
//
// Each document becomes [BOS] tokens EOS. The output bytes depend only on the inputs, the
// tokenizer and the options, never on the thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/token_shard.hpp"
#include "tokenize/document_reader.hpp"
#include "tokenizer/tokenizer.hpp"

namespace dsk::tokenize {

enum class BosMode { tokenizer_default, always, never };
BosMode parse_bos_mode(const std::string& name);  // auto, always, never

struct TokenizeOptions {
  std::vector<std::string> inputs;  // paths or "-"; empty reads stdin
  ReaderOptions reader;
  std::filesystem::path output;
  bool force = false;                    // replace an existing output directory
  uint64_t shard_tokens = 100ull << 20;  // at most this many tokens per shard (unless one document is longer)
  double val_fraction = 0;
  uint64_t seed = 0;
  BosMode bos = BosMode::tokenizer_default;
  int threads = 1;
  std::string tokenizer_path;  // as given (relative to the working directory)
};

struct TokenizeResult {
  io::ShardIndex index;
  InputErrorCounts errors;
  bool add_bos = false;
};

TokenizeResult tokenize_to_shards(const TokenizeOptions& options, const tokenizer::Tokenizer& tokenizer);

}  // namespace dsk::tokenize
