// dsk-tokenize's work: documents in, token shards out.
//
//   reader thread: read, decompress, cut into chunks of whole documents (input_chunks.hpp)
//     -> TaskPool, N threads: split documents, check UTF-8, parse JSONL, encode (all the work
//        done per byte of text; chunk_documents.hpp, then the tokenizer)
//     -> a bounded queue of futures, in input order
//   this thread: number the documents, show warnings in order, split train/val by document
//     number -> ShardSetWriter "train" / "val" (each closed shard hashed on a thread of its
//     own) -> index.yaml (last) -> the directory renamed into place.
//
// Only reading and writing are serial, and both run beside the workers, not between them:
// cutting is a search for the last newline, writing a copy of the tokens (see
// docs/benchmarks.md for the throughput and what each stage costs).
//
// Each document becomes [BOS] tokens EOS. The output bytes depend only on the inputs, the
// tokenizer and the options, never on the thread count.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "io/token_shard.hpp"
#include "tokenize/input.hpp"
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
