// Statistics of a shard directory, read back from the shards themselves (every token id is
// checked against the vocabulary, each header against index.yaml and each file against its
// sha256 there on the way: stats is how a user verifies a shard directory):
// documents, tokens, text bytes per token, and the unigram entropy of the tokens.
//
// The unigram entropy H = -sum_t p(t) log p(t), p the frequency of token t over every token of
// the split (BOS and EOS included), is the loss of a model that ignores context: a trained
// model's validation loss (nats) should end well below the validation split's entropy_nats.
#pragma once

#include <cstdint>
#include <filesystem>

#include "io/token_shard.hpp"

namespace dsk::tokenize {

struct SplitStats {
  uint64_t documents = 0;
  uint64_t tokens = 0;
  uint64_t text_bytes = 0;
  uint64_t distinct_tokens = 0;
  double entropy_bits = 0;

  double entropy_nats() const;
  double bytes_per_token() const { return tokens ? static_cast<double>(text_bytes) / tokens : 0; }
};

struct ShardStats {
  io::ShardIndex index;
  SplitStats train, val, all;
};

// DataError naming the shard or index.yaml on anything inconsistent.
ShardStats compute_shard_stats(const std::filesystem::path& directory);

}  // namespace dsk::tokenize
