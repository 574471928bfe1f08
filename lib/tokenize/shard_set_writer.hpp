// One split's shards ("train-00000.tok", "train-00001.tok", ...) in a directory: whole
// documents, a new shard started when the next document would take the open one past
// shard_tokens (a document longer than that gets a shard of its own).
//
// A shard's sha256 covers its header, which is known only when the shard closes, so the hash
// cannot be taken as the tokens are written; each closed shard is hashed on a thread of its
// own (started before the shard's fsync, not after it) while writing goes on, and finish()
// collects the digests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/token_shard.hpp"

namespace dsk::tokenize {

class ShardSetWriter {
 public:
  ShardSetWriter(std::filesystem::path directory, std::string prefix, uint64_t shard_tokens, uint64_t vocab_size,
                 uint32_t eos_id, uint32_t bos_id);

  // `tokens` is the document without its EOS (BOS included when one is added); text_bytes is
  // the size of its text, for the index's bytes-per-token.
  void add_document(std::span<const uint32_t> tokens, uint64_t text_bytes);
  // Commits the open shard and returns the split's entry for the index (sha256 of each file).
  io::ShardSplit finish();
  ~ShardSetWriter();  // waits for the hashes still running

  static std::string shard_name(const std::string& prefix, size_t number);

 private:
  void close_shard();
  void collect_oldest_hash();

  std::filesystem::path directory_;
  std::string prefix_;
  uint64_t shard_tokens_;
  uint64_t vocab_size_;
  uint32_t eos_id_;
  uint32_t bos_id_;
  std::unique_ptr<io::ShardWriter> open_;
  io::ShardSplit split_;
  std::vector<std::future<std::string>> hashes_;  // of split_.shards, in order
  size_t hashes_collected_ = 0;
};

}  // namespace dsk::tokenize
