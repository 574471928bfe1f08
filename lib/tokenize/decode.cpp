#include "tokenize/decode.hpp"

#include "core/error.hpp"
#include "io/token_shard.hpp"

namespace dsk::tokenize {

SplitSelection parse_split_selection(const std::string& name) {
  if (name == "train") return SplitSelection::train;
  if (name == "val") return SplitSelection::val;
  if (name == "all") return SplitSelection::both;
  throw UsageError(str("split '", name, "': expected train, val or all"));
}

uint64_t decode_documents(const std::filesystem::path& directory, SplitSelection selection,
                          const tokenizer::Tokenizer& tokenizer, const std::function<void(const std::string&)>& emit) {
  const io::ShardIndex index = io::load_shard_index(directory);
  std::vector<const io::ShardFileEntry*> entries;
  if (selection != SplitSelection::val)
    for (const auto& entry : index.train.shards) entries.push_back(&entry);
  if (selection != SplitSelection::train)
    for (const auto& entry : index.val.shards) entries.push_back(&entry);
  uint64_t documents = 0;
  std::vector<uint32_t> tokens;
  for (const auto* entry : entries) {
    io::ShardReader shard(directory / entry->file);
    io::check_shard_against_index(shard.header(), index, *entry, shard.path().string());
    shard.check_token_ids();
    const auto& header = shard.header();
    uint64_t begin = 0;
    for (uint64_t i = 0; i < shard.size(); ++i) {
      if (shard.token(i) != header.eos_id) continue;
      uint64_t first = begin;
      if (header.bos_id != io::kNoBos && first < i && shard.token(first) == header.bos_id) ++first;
      shard.read(first, i - first, tokens);
      emit(tokenizer.decode(tokens));
      ++documents;
      begin = i + 1;
    }
  }
  return documents;
}

}  // namespace dsk::tokenize
