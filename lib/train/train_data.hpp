// Where dsk-train's tokens come from: data.train and data.val name shard directories written by
// dsk-tokenize (their index.yaml lists the train and validation shards), single shard files, or
// glob patterns of shard files. A directory contributes its train shards to data.train; when
// data.val is empty, the validation shards of the train directories are used for evaluation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dsk::train {

struct TrainData {
  std::vector<std::filesystem::path> train;  // shard files, in a stable order
  std::vector<std::filesystem::path> val;    // may be empty: then no evaluation
  uint64_t vocab_size = 0;                   // the largest of the shards' vocabularies
  uint32_t eos_id = 0;
  std::optional<uint32_t> bos_id;
  std::filesystem::path tokenizer;           // tokenizer.json named by an index.yaml, if any
};

// Resolves the lists; DataError naming the entry when it matches nothing or a shard is unreadable,
// and when the shards disagree on their EOS id.
TrainData resolve_train_data(const std::vector<std::string>& train, const std::vector<std::string>& val);

}  // namespace dsk::train
