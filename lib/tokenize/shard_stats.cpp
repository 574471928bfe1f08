#include "tokenize/shard_stats.hpp"

#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/sha256.hpp"

namespace dsk::tokenize {
namespace {

using Counts = std::vector<uint64_t>;

void count_tokens(const io::ShardReader& shard, Counts& counts) {
  if (auto tokens = shard.u16_tokens(); !tokens.empty()) {
    for (uint16_t id : tokens) ++counts[id];
  } else if (auto wide = shard.u32_tokens(); !wide.empty()) {
    for (uint32_t id : wide) ++counts[id];
  } else {
    for (uint64_t i = 0; i < shard.size(); ++i) ++counts[shard.token(i)];
  }
}

void fill_entropy(const Counts& counts, SplitStats& stats) {
  double entropy = 0;
  stats.distinct_tokens = 0;
  for (uint64_t count : counts) {
    if (count == 0) continue;
    ++stats.distinct_tokens;
    double p = static_cast<double>(count) / static_cast<double>(stats.tokens);
    entropy -= p * std::log2(p);
  }
  stats.entropy_bits = entropy;
}

SplitStats split_stats(const std::filesystem::path& directory, const io::ShardIndex& index,
                       const io::ShardSplit& split, Counts& counts) {
  SplitStats stats;
  std::fill(counts.begin(), counts.end(), 0);
  for (const auto& entry : split.shards) {
    io::ShardReader shard(directory / entry.file);
    const auto& header = shard.header();
    io::check_shard_against_index(header, index, entry, shard.path().string());
    if (!entry.sha256.empty() && sha256_file(shard.path()) != entry.sha256)
      throw DataError(str(shard.path().string(), ": sha256 differs from index.yaml's (the file changed after tokenizing)"));
    shard.check_token_ids();
    count_tokens(shard, counts);
    stats.documents += header.document_count;
    stats.tokens += header.token_count;
  }
  stats.text_bytes = split.text_bytes;
  fill_entropy(counts, stats);
  return stats;
}

}  // namespace

double SplitStats::entropy_nats() const { return entropy_bits * std::log(2.0); }

ShardStats compute_shard_stats(const std::filesystem::path& directory) {
  ShardStats stats;
  stats.index = io::load_shard_index(directory);
  Counts train_counts(stats.index.vocab_size), val_counts(stats.index.vocab_size);
  stats.train = split_stats(directory, stats.index, stats.index.train, train_counts);
  stats.val = split_stats(directory, stats.index, stats.index.val, val_counts);
  for (size_t i = 0; i < train_counts.size(); ++i) train_counts[i] += val_counts[i];
  stats.all.documents = stats.train.documents + stats.val.documents;
  stats.all.tokens = stats.train.tokens + stats.val.tokens;
  stats.all.text_bytes = stats.train.text_bytes + stats.val.text_bytes;
  fill_entropy(train_counts, stats.all);
  return stats;
}

}  // namespace dsk::tokenize
